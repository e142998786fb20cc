"""How many SMS parts a text takes: GSM-7 (160, or 153 per part when concatenated) or UCS-2 (70, or 67)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")  # each takes two septets (escape + char)


def count_segments(text: str) -> int:
    septets = 0
    for char in text:
        if char in _GSM7_BASIC:
            septets += 1
        elif char in _GSM7_EXTENDED:
            septets += 2
        else:
            return _ucs2_segments(text)
    return 1 if septets <= 160 else _parts((2 if c in _GSM7_EXTENDED else 1 for c in text), 153)


def text_encoding(text: str) -> Encoding:
    """GSM-7 when every character is in the GSM 03.38 alphabet (basic or extended table), else UCS-2."""
    return "GSM-7" if all(char in _GSM7_BASIC or char in _GSM7_EXTENDED for char in text) else "UCS-2"


def _ucs2_segments(text: str) -> int:
    # Characters outside the BMP take two UTF-16 code units.
    units = sum(2 if ord(c) > 0xFFFF else 1 for c in text)
    return 1 if units <= 70 else _parts((2 if ord(c) > 0xFFFF else 1 for c in text), 67)


def _parts(sizes: Iterable[int], capacity: int) -> int:
    """The parts of `capacity` units a concatenated message of characters of these `sizes` fills, a character never
    split across two: an extended GSM-7 character is its escape and itself, an emoji a UTF-16 surrogate pair, and
    splitters keep each whole (a plain division counted 2 parts for 152 septets, a euro sign and 152 more: 3)."""
    parts, used = 1, 0
    for size in sizes:
        if used + size > capacity:
            parts, used = parts + 1, 0
        used += size
    return parts
