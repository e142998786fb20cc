"""E.164 parsing (with `phonenumbers`); masking numbers for logs is `domain/masking.py`."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumber, PhoneNumberType, phonenumberutil

from globesms.errors import RecipientCode

_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
# `phonenumbers`' own classifier of a national number against a region's metadata. `is_valid_number` and
# `number_type` each work out the region (for +1, +44, +7... by trying every region of the code) and run it; one
# accept classifies 10,000 numbers, so `_valid_type` does both once. None (a phonenumbers without it): the public
# calls.
_number_type_helper = getattr(phonenumberutil, "_number_type_helper", None)


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
    region = phonenumbers.region_code_for_number(number)
    kind = _valid_type(number, region)
    if kind is None:
        raise InvalidNumber(RecipientCode.INVALID_NUMBER, "not a valid number for its country")
    if kind not in _MOBILE_TYPES:
        raise InvalidNumber(RecipientCode.NOT_MOBILE, "not a mobile number")
    return ParsedNumber(
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        country_code=number.country_code or 0,
        region=region,
    )


def _valid_type(number: PhoneNumber, region: str | None) -> int | None:
    """`number_type(number)` if `is_valid_number(number)`, else None; `region` is `region_code_for_number(number)`.
    The same steps as those two (phonenumbers 9), each done once (`tests/unit/test_phone.py` holds them equal)."""
    if _number_type_helper is None:
        return phonenumbers.number_type(number) if phonenumbers.is_valid_number(number) else None
    country_code = number.country_code
    if region is None or country_code is None:  # no region without a country code
        return None
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None or (
        region != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY
        and country_code != phonenumbers.country_code_for_valid_region(region)
    ):
        return None
    kind: int = _number_type_helper(phonenumbers.national_significant_number(number), metadata)
    return None if kind == PhoneNumberType.UNKNOWN else kind
