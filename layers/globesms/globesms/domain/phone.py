"""E.164 parsing (with `phonenumbers`); masking numbers for logs is `domain/masking.py`."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    REGION_CODE_FOR_NON_GEO_ENTITY,
    NumberParseException,
    PhoneMetadata,
    PhoneNumberType,
    phonenumberutil,
)
from phonenumbers.phonenumberutil import ValidationResult

from globesms.domain.number_writing import NUMBER_SEPARATORS, NUMBER_WRITING
from globesms.domain.phone_metadata import UNKNOWN, number_type, region_of
from globesms.errors import RecipientCode
from globesms.models.limits import character_name

_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
# How nearly every API client writes a number: `+`, then digits only. `phonenumbers.parse` first cleans any text
# up (punctuation, letters, extensions, RFC 3966), which such a number does not need; `_plain_national` goes
# straight to the steps that decide it. Any other writing, and anything it cannot settle, takes the general path.
_PLAIN_INTERNATIONAL = re.compile(r"\+[1-9][0-9]{2,16}")
# phonenumbers' own steps for a national number after its country code: a national prefix written after the
# code ("+44 07911...") is dropped when what is left still has a possible length. Private in phonenumbers: None
# where a version lacks them, and every number takes the general path.
_strip_national_prefix = getattr(phonenumberutil, "_maybe_strip_national_prefix_carrier_code", None)
_test_number_length = getattr(phonenumberutil, "_test_number_length", None)
_KEEP_PREFIX = frozenset(
    {ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY, ValidationResult.INVALID_LENGTH}
)


def stray_character(text: str) -> str | None:
    """What in `text` (a number written with a leading `+`) is not part of a number's writing, named with its
    position; None when nothing is."""
    for position, char in enumerate(text):
        if (position == 0 and char == "+") or char in NUMBER_SEPARATORS:
            continue
        if unicodedata.category(char) not in ("Nd", "Zs"):
            return f"{character_name(char)} at position {position}: {NUMBER_WRITING}"
    return None


#: The country the guardrails, routes and prices see for a non-geographic number (+870, +881, +882...: satellite
#: and international ranges, pumping's classic targets): phonenumbers gives them the region "001", which no list of
#: countries can name (two letters), so a release of them (`pumping-release COUNTRY=ZZ`, as docs/guardrails.md
#: says) or a deny-list entry lifted or denied nothing (a review).
NON_GEOGRAPHIC = "ZZ"


def country_of_region(region: str | None) -> str | None:
    """The country for phonenumbers' region of a number: the region, `NON_GEOGRAPHIC` for its "001"."""
    return NON_GEOGRAPHIC if region == REGION_CODE_FOR_NON_GEO_ENTITY else region


@dataclass(frozen=True, slots=True)
class ParsedNumber:
    e164: str
    country_code: int  # 86 for the Chinese mainland
    region: str | None  # ISO 3166 alpha-2, e.g. "HK"; phonenumbers' "001" for a non-geographic number

    @property
    def country(self) -> str | None:
        """The record's country (`country_of_region`)."""
        return country_of_region(self.region)


class InvalidNumber(ValueError):
    def __init__(self, code: RecipientCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_mobile(raw: str) -> ParsedNumber:
    """Parse an international number written with `+` (spaces, dashes, dots and brackets allowed) into E.164.

    Only numbers that `phonenumbers` considers valid *mobile* numbers pass (FIXED_LINE_OR_MOBILE too: several
    countries, the US among them, do not tell them apart); an SMS to a landline is never delivered. The decision
    is phonenumbers' `parse`, `is_valid_number` and `number_type`, each step done once (`domain/phone_metadata.py`
    says why by hand; `tests/unit/test_phone.py` holds them equal).
    """
    text = raw.strip()
    found = _plain_national(text) if _PLAIN_INTERNATIONAL.fullmatch(text) else None
    country_code, national = found if found is not None else _parsed_national(text)
    region = region_of(country_code, national)
    kind = _valid_type(country_code, national, region)
    if kind is None:
        raise InvalidNumber(RecipientCode.INVALID_NUMBER, "not a valid number for its country")
    if kind not in _MOBILE_TYPES:
        raise InvalidNumber(RecipientCode.NOT_MOBILE, "not a mobile number")
    # E.164 is the code and the national significant number (leading zeros kept, as `format_number` writes it).
    return ParsedNumber(e164=f"+{country_code}{national}", country_code=country_code, region=region)


def _plain_national(text: str) -> tuple[int, str] | None:
    """The country code and national significant number of `+` and digits, as `phonenumbers.parse` finds them;
    None where it would refuse the number or this cannot tell (the general path then decides, and says why)."""
    if _strip_national_prefix is None or _test_number_length is None:
        return None
    digits = text[1:]
    for size in (1, 2, 3):  # country codes are prefix-free: the first known one is the code
        country_code = int(digits[:size])
        regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code)
        if regions:
            break
    else:
        return None
    national = digits[size:]
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, regions[0])
    if len(national) < 2 or metadata is None:
        return None
    _, stripped, _ = _strip_national_prefix(national, metadata)
    if _test_number_length(stripped, metadata) not in _KEEP_PREFIX:
        national = stripped
    return country_code, national


def _parsed_national(text: str) -> tuple[int, str]:
    """The country code and national significant number of any writing `phonenumbers.parse` understands."""
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
    stray = stray_character(text)
    if stray is not None:
        raise InvalidNumber(RecipientCode.INVALID_NUMBER, f"contains {stray}")
    return number.country_code or 0, phonenumbers.national_significant_number(number)


def _valid_type(country_code: int, national: str, region: str | None) -> int | None:
    """`number_type` if `is_valid_number`, else None (phonenumbers' `is_valid_number_for_region` with the
    number's own region)."""
    if region is None:
        return None
    metadata = _metadata_of(country_code, region)
    if metadata is None:
        return None
    kind = number_type(national, metadata)
    return None if kind == UNKNOWN else kind


# (country code, region) -> the region's metadata, None where the code is not the region's. Bounded: the regions.
_metadata: dict[tuple[int, str], PhoneMetadata | None] = {}


def _metadata_of(country_code: int, region: str) -> PhoneMetadata | None:
    key = (country_code, region)
    if key not in _metadata:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
        mismatched = metadata is None or (
            region != REGION_CODE_FOR_NON_GEO_ENTITY
            and country_code != phonenumbers.country_code_for_valid_region(region)
        )
        _metadata[key] = None if mismatched else metadata
    return _metadata[key]
