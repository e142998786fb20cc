"""Masking phone numbers for logs, apart from parsing them (domain/phone.py): every handler's log filter
(observability.py) masks, and importing `phonenumbers` (~15 ms) for it would add to every cold start."""

from __future__ import annotations

import json
import re
from typing import Any

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
    """A queue message's body as the tools list it, every number masked: a JSON body is masked as decoded and written
    again without ASCII escapes, since a number written `+852\\u20135123\\u20134567` (as json.dumps writes a dash)
    is no number to `mask_numbers` (a review); any other body is masked as text."""
    try:
        document = json.loads(body)
    except ValueError:
        return mask_numbers(body)
    return json.dumps(_masked(document), ensure_ascii=False)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_numbers(value)
    if isinstance(value, dict):
        return {mask_numbers(str(k)): _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value
