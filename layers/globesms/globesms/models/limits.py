"""The sizes the public contract allows a request: recipients, body bytes and text parts (read by the request
models, accept's planning, the body size check, the template registry and the CLI). Apart from the request models:
the body size check runs in every function that reads a body (the receipts endpoint too), and a template's text is
checked where it is sent (dispatch, failover), neither needing the request models."""

from __future__ import annotations

import re
import unicodedata

from globesms.domain.segments import count_segments

MAX_RECIPIENTS_PER_REQUEST = 10_000
# The largest body read, in bytes (UTF-8), for the API and the SQS intake alike; larger is 413 BODY_TOO_LARGE before
# any parsing. 10,000 recipients in one spec take under 0.4 MB (at most 36 bytes a number); 10,000 recipients each
# with content of their own (the CLI's per-row template parameters, or a short text with a client_ref and a
# status_callback) take about 200-400 bytes each, so 4 MiB holds the largest request the recipient cap allows in
# practice. It stays under Lambda's 6 MB synchronous payload limit with room for the event around the body (a body
# larger than that never reaches the function: AWS refuses it with its own answer), and well under API Gateway's
# 10 MB; it bounds what one call can make a 256 MB function parse. (SQS caps an intake message lower by itself: its
# MaximumMessageSize, at most 1 MiB.)
MAX_BODY_BYTES = 4 * 1024 * 1024
# A text is limited in SMS parts, the unit a phone joins and a provider bills: at most 10 (1,530 GSM-7 characters,
# or 670 UCS-2 units: 330 emoji, which take two units each and are never split across parts, 33 to a part of 67).
# Counted by domain/segments.py; refused, never cut.
MAX_TEXT_SEGMENTS = 10
MAX_TEXT_CHARS = 1_600  # a cheap first bound, checked before the parts are counted


def text_parts_problem(text: str) -> str | None:
    parts = count_segments(text)
    if parts > MAX_TEXT_SEGMENTS:
        return (
            f"at most {MAX_TEXT_SEGMENTS} SMS parts (153 GSM-7 characters, or 67 UCS-2 units, a part); "
            f"this text is {parts}"
        )
    return None


# ---- characters: refused where they can only deceive or break something (docs/security.md) ----
# In a text: C0 controls but tab, newline and carriage return (which multi-line texts are made of), DEL and the C1
# controls; the bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which reorder what
# the reader sees (an amount or a link shown reversed); and U+FEFF (a byte-order mark, invisible inside a text).
# Kept: ZWJ (emoji sequences, Indic scripts), ZWNJ (Persian and Indic spelling), LRM/RLM/ALM (they mark a direction
# without overriding it), ZWSP (the word separator of Thai, Khmer, Lao and Burmese). Lone surrogates, which no
# provider's encoding can carry, pydantic refuses in any string. A regular expression: 10,000 texts at C speed.
_TEXT_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")
_TEXT_RULE = (
    "control characters (other than tab, newline and carriage return), bidirectional overrides and isolates, "
    "and U+FEFF are refused"
)


def character_name(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def text_character_problem(text: str) -> str | None:
    """The first character of `text` that no text sent may hold, as a rule the sender can read; None when none."""
    found = _TEXT_REFUSED.search(text)
    if found is None:
        return None
    return f"must not contain {character_name(found.group())} at position {found.start()}: {_TEXT_RULE}"
