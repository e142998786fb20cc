"""Valid mobile numbers of many countries, as many as a benchmark needs, always the same ones.

Each country's numbers are its `phonenumbers` example mobile number with the last four digits counted up, kept
when `globesms.phone.parse_mobile` accepts them (valid, and a mobile): the numbers a real request would carry,
spread over the metadata of many regions rather than one.
"""

from __future__ import annotations

import phonenumbers

from globesms.domain.phone import InvalidNumber, parse_mobile

#: Where Alibaba carries free text (not the Chinese mainland); the US and Canada share +1.
REGIONS = (
    "HK",
    "SG",
    "MY",
    "GB",
    "DE",
    "FR",
    "US",
    "IN",
    "ID",
    "PH",
    "TH",
    "AE",
    "AU",
    "BR",
    "NG",
    "JP",
    "KR",
    "MX",
    "ZA",
)
MAINLAND = "CN"


def mobile_numbers(count: int, regions: tuple[str, ...] = REGIONS, *, skip: int = 0) -> list[str]:
    """`count` distinct E.164 mobile numbers, taken from `regions` in turn; `skip` leaves out the first numbers of
    each region (so two calls with different `skip` share none)."""
    per_region = -(-count // len(regions))
    pools = [_region_numbers(region, skip + per_region)[skip:] for region in regions]
    numbers = [pool[i] for i in range(per_region) for pool in pools]
    return numbers[:count]


def _region_numbers(region: str, count: int) -> list[str]:
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        raise ValueError(f"{region}: phonenumbers has no example mobile number")
    prefix = f"+{example.country_code}{str(example.national_number)[:-4]}"
    found = []
    for suffix in range(10_000):
        try:
            found.append(parse_mobile(f"{prefix}{suffix:04d}").e164)
        except InvalidNumber:
            continue
        if len(found) == count:
            return found
    raise ValueError(f"{region}: fewer than {count} valid mobile numbers next to its example number")
