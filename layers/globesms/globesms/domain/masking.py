"""Masking phone numbers for logs, apart from parsing them (domain/phone.py): every handler's log filter
(observability.py) masks, and importing `phonenumbers` (~15 ms) for it would add to every cold start."""

from __future__ import annotations

import re

from globesms.domain.number_writing import NUMBER_SEPARATORS

# A number written with "+" and whatever accept reads a number with (digits of any script, spaces, the separators:
# brackets, dots and slashes too, which were printed whole until 2026-12-07, a review), or a bare run of 9 to 15
# digits (national numbers, as Tencent's receipts carry them). Dates and times have no "+", and separators every few
# digits, and are left alone.
_WRITTEN = r"[\d\s" + re.escape("".join(sorted(NUMBER_SEPARATORS))) + "]"
_NUMBER = re.compile(r"\+\s*\d" + _WRITTEN + r"{6,28}\d|(?<![\w.])\d{9,15}(?![\w.])")


def mask(number: str) -> str:
    """What a log line may show of a number: the country prefix and the last two digits."""
    if len(number) <= 6:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 6) + number[-2:]


def mask_numbers(text: str) -> str:
    """Every number in `text` masked (log lines, and what the command-line tools print of stored bodies)."""
    return _NUMBER.sub(lambda match: mask(match.group(0)), text)


def mask_message_body(body: str) -> str:
    """A queue message's body as the tools list it, every number masked. JSON may write a number's separators and
    digits as escapes (json.dumps writes `+852\\u20135123\\u20134567`), which are no number to `mask_numbers`: such
    escapes are written as their characters first (a review); the rest of the body stays as it was."""
    return mask_numbers(_ESCAPE.sub(_unescaped_if_part_of_a_number, body))


#: An escape, not one whose backslash is itself escaped (`\\\\u2013` is a backslash, then text): a surrogate pair
#: (a digit outside the basic plane), a `\\uXXXX`, or `\\/` (PHP's json_encode writes every "/" so; a review).
_ESCAPE = re.compile(
    r"(?<!\\)((?:\\\\)*)\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|(/))"
)


def _unescaped_if_part_of_a_number(match: re.Match[str]) -> str:
    if match.group(5):
        return match.group(1) + "/"
    if match.group(2):
        high, low = int(match.group(2), 16), int(match.group(3), 16)
        char = chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
    else:
        char = chr(int(match.group(4), 16))
    if char == "+" or char in NUMBER_SEPARATORS or char.isdigit() or char in _WIDE_SPACES:
        return match.group(1) + char  # `+` too: .NET's JSON writer escapes it
    return match.group(0)


#: Spaces a number may be written with that JSON writes as escapes (not line breaks: a listing stays one line).
_WIDE_SPACES = frozenset(
    "\u1680\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
)
