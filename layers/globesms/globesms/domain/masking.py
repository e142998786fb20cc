"""Masking phone numbers for logs, apart from parsing them (domain/phone.py): every handler's log filter
(observability.py) masks, and importing `phonenumbers` (~15 ms) for it would add to every cold start."""

from __future__ import annotations


def mask(number: str) -> str:
    """What a log line may show of a number: the country prefix and the last two digits."""
    if len(number) <= 6:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 6) + number[-2:]
