"""E.164 parsing (with `phonenumbers`) and masking for logs."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from globesms.errors import RecipientCode

_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


@dataclass(frozen=True, slots=True)
class ParsedNumber:
    e164: str
    country_code: int  # 86 for the Chinese mainland
    region: str | None  # ISO 3166 alpha-2, e.g. "HK"


class InvalidNumber(ValueError):
    def __init__(self, code: RecipientCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_mobile(raw: str) -> ParsedNumber:
    """Parse an international number written with `+` (spaces, dashes, dots and brackets allowed) into E.164.

    Only numbers that `phonenumbers` considers valid *mobile* numbers pass (FIXED_LINE_OR_MOBILE too: several
    countries, the US among them, do not tell them apart); an SMS to a landline is never delivered.
    """
    text = raw.strip()
    # phonenumbers drops these silently: a number written with them is not the number the client saw.
    hidden = next((c for c in text if unicodedata.category(c) in ("Cc", "Cf")), None)
    if hidden is not None:
        raise InvalidNumber(
            RecipientCode.INVALID_NUMBER, f"contains a control or invisible character (U+{ord(hidden):04X})"
        )
    if not text.startswith("+"):
        raise InvalidNumber(RecipientCode.INVALID_NUMBER, "must be in international format starting with '+' (E.164)")
    try:
        number = phonenumbers.parse(text, None)
    except NumberParseException as exc:
        raise InvalidNumber(RecipientCode.INVALID_NUMBER, f"not a phone number ({exc._msg})") from None
    if number.extension:
        # "+85251234567 ext 9" parses as the number and an extension: sending to the number alone reaches somebody
        # the client did not mean (an SMS cannot dial an extension).
        raise InvalidNumber(RecipientCode.INVALID_NUMBER, "has an extension: an SMS cannot be sent to one")
    if not phonenumbers.is_valid_number(number):
        raise InvalidNumber(RecipientCode.INVALID_NUMBER, "not a valid number for its country")
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidNumber(RecipientCode.NOT_MOBILE, "not a mobile number")
    return ParsedNumber(
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        country_code=number.country_code or 0,
        region=phonenumbers.region_code_for_number(number),
    )


def mask(number: str) -> str:
    """What a log line may show of a number: the country prefix and the last two digits."""
    if len(number) <= 6:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 6) + number[-2:]
