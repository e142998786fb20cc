"""A national number's region and type, read from `phonenumbers`' metadata with every pattern compiled once.

Why by hand: an accept classifies up to 10,000 numbers a request, and `phonenumbers` spends most of that time on
its own plumbing rather than on matching: `is_valid_number` and `number_type` each work the region out again (for
+1, +7, +44... by classifying the number against every region of the code in turn), every pattern goes through
`re.compile` on each use (its cache of compiled patterns is off unless enabled for the whole process), and each
pattern is matched twice (a prefix match, then a full one). These are the same steps as phonenumbers 9's
`_number_type_helper` and `_region_code_for_number_from_list`, in the same order, on the same public metadata
fields; `tests/unit/test_phone.py` holds `parse_mobile` equal to phonenumbers' public calls on every region's
example numbers and on random ones.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumberDesc, PhoneNumberType

UNKNOWN = PhoneNumberType.UNKNOWN
# The types a number is tried against before fixed line and mobile, in phonenumbers' order: the first that
# matches is the number's type.
_SPECIAL_TYPES = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)
# Patterns by their text. Bounded: they come from the (fixed) metadata, a few thousand at most.
_compiled: dict[str, re.Pattern[str]] = {}


def _pattern(text: str) -> re.Pattern[str]:
    pattern = _compiled.get(text)
    if pattern is None:
        pattern = _compiled[text] = re.compile(text)
    return pattern


class _Desc(NamedTuple):
    """A `PhoneNumberDesc` as matching needs it: its lengths (empty: any) and its pattern, compiled."""

    lengths: frozenset[int]
    pattern: re.Pattern[str]

    def matches(self, national: str) -> bool:
        """phonenumbers' `_is_number_matching_desc`: the length first, then the whole number against the pattern."""
        return (not self.lengths or len(national) in self.lengths) and self.pattern.fullmatch(national) is not None


class _Checks(NamedTuple):
    """A region's descriptions in the order `number_type` tries them; a description without a pattern matches
    nothing, so it is left out (None)."""

    general: _Desc | None
    special: tuple[tuple[_Desc, int], ...]
    fixed_line: _Desc | None
    mobile: _Desc | None
    same_pattern: bool


# By region metadata (phonenumbers keeps each region's for the process's life), kept beside it so an id is never
# read for another object.
_checks: dict[int, tuple[PhoneMetadata, _Checks]] = {}


def _desc(desc: PhoneNumberDesc | None) -> _Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return _Desc(frozenset(desc.possible_length or ()), _pattern(desc.national_number_pattern))


def _checks_of(metadata: PhoneMetadata) -> _Checks:
    found = _checks.get(id(metadata))
    if found is not None and found[0] is metadata:
        return found[1]
    special = tuple(
        (desc, kind) for field, kind in _SPECIAL_TYPES if (desc := _desc(getattr(metadata, field))) is not None
    )
    checks = _Checks(
        _desc(metadata.general_desc),
        special,
        _desc(metadata.fixed_line),
        _desc(metadata.mobile),
        bool(metadata.same_mobile_and_fixed_line_pattern),
    )
    _checks[id(metadata)] = (metadata, checks)
    return checks


def number_type(national: str, metadata: PhoneMetadata) -> int:
    """The type of a national significant number in a region (UNKNOWN: not a valid number there)."""
    checks = _checks_of(metadata)
    if checks.general is None or not checks.general.matches(national):
        return UNKNOWN
    size = len(national)
    for (lengths, pattern), kind in checks.special:  # `_Desc.matches`, inlined: up to 8 a number
        if (not lengths or size in lengths) and pattern.fullmatch(national) is not None:
            return kind
    mobile = checks.mobile
    if checks.fixed_line is not None and checks.fixed_line.matches(national):
        if checks.same_pattern or (mobile is not None and mobile.matches(national)):
            return PhoneNumberType.FIXED_LINE_OR_MOBILE
        return PhoneNumberType.FIXED_LINE
    if not checks.same_pattern and mobile is not None and mobile.matches(national):
        return PhoneNumberType.MOBILE
    return UNKNOWN


def region_of(country_code: int, national: str) -> str | None:
    """phonenumbers' `region_code_for_number`: the only region of the code, or the first of its regions whose
    leading digits begin the number (a region without them: that the number is valid there); "001" for a
    non-geographic code; None for an unknown code or a number no region of the code knows."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if not regions:
        return None
    if len(regions) == 1:
        return regions[0]
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            if _pattern(metadata.leading_digits).match(national):
                return region
        elif number_type(national, metadata) != UNKNOWN:
            return region
    return None
