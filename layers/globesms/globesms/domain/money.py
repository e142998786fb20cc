"""Amounts of money as the API, the records and the packs carry them: decimal strings, exact."""

from __future__ import annotations

from decimal import Decimal

_MICRO = Decimal("0.000001")


def money(value: Decimal) -> str:
    """A decimal amount as the API and the records show it: a string of plain digits (no exponent, no trailing
    zeros), rounded to 6 places: exact, where a JSON number would become a binary fraction in most clients."""
    return f"{value.quantize(_MICRO).normalize():f}" if value else "0"


def estimate(price: Decimal, segments: int | None) -> tuple[str, str]:
    """A recipient's price and estimated cost, as written: the price of one part times its parts. A provider's own
    template (no text: only the provider knows its parts) is estimated as one part."""
    return money(price), money(price * (segments or 1))
