"""Load for the local stack: message specs that reach each provider, distinct mobile numbers in several countries,
and sending request bodies through the API in parallel.

Every number is used once per run, so a number names one recipient: the emulators' ledgers, keyed by our echoed
id and the number, can be matched to our records without ambiguity.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import phonenumbers

from bench._stack import Stack
from globesms.aws.dynamodb_otp import country_key

#: API request bodies (without `to`) that reach each provider: Alibaba gets free text by routing; Tencent and Huawei
#: are pinned with a template id of their own (the local emulators approve these ids).
SPECS: dict[str, dict[str, Any]] = {
    "aliyun": {"text": "Your parcel is on its way.", "type": "NOTIFY"},
    "tencent": {"template": {"id": "1234567", "params": {"code": "123456"}}, "provider": "tencent"},
    "huawei": {
        "template": {"id": "8ff55eac1d0b478ab3c06c3c6a492300", "params": {"code": "123456"}},
        "provider": "huawei",
    },
}

#: Mobile ranges (a prefix and the digits after it) that `phonenumbers` takes as valid mobiles for every value.
MOBILE_RANGES: dict[str, tuple[str, int]] = {
    "HK": ("+85251", 6),
    "SG": ("+659", 7),
    "GB": ("+447700", 6),
    "MY": ("+60123", 6),
    "ID": ("+62812", 7),
    "KR": ("+82101", 7),
    "AU": ("+61412", 6),
    "DE": ("+49151", 8),
    "FR": ("+3361", 7),
    "TH": ("+6681", 7),
    "PH": ("+63917", 7),
    "CN": ("+86138", 8),
}


class Numbers:
    """Distinct mobile numbers, drawn country by country from `MOBILE_RANGES`, never twice in one run."""

    def __init__(self) -> None:
        self._next: dict[str, Iterator[int]] = {country: itertools.count() for country in MOBILE_RANGES}

    def take(self, count: int, country: str = "HK") -> list[str]:
        prefix, digits = MOBILE_RANGES[country]
        taken = [f"{prefix}{next(self._next[country]):0{digits}d}" for _ in range(count)]
        if count and not _is_mobile(taken[-1]):
            raise ValueError(f"{taken[-1]} is past the valid mobile range {prefix}… of {country}")
        return taken


def _is_mobile(number: str) -> bool:
    parsed = phonenumbers.parse(number)
    kinds = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    return phonenumbers.is_valid_number(parsed) and phonenumbers.number_type(parsed) in kinds


def bodies_for(provider: str, numbers: Sequence[str], per_request: int = 10_000) -> list[dict[str, Any]]:
    """Request bodies sending `SPECS[provider]` to `numbers`, at most `per_request` recipients each (the API's
    limit is 10,000)."""
    return [
        {**SPECS[provider], "to": list(numbers[start : start + per_request])}
        for start in range(0, len(numbers), per_request)
    ]


POST_ATTEMPTS = 10


def post_all(stack: Stack, bodies: Sequence[dict[str, Any]], *, threads: int = 2) -> list[dict[str, Any]]:
    """POST every body to /v1/messages, `threads` at a time; returns the answers in order. Anything but 202 is
    an error: a load that was not accepted would make every figure wrong."""

    def post(body: dict[str, Any]) -> dict[str, Any]:
        # As a careful client does: an Idempotency-Key on every body, so a request the gateway timed out (504: the
        # function may still have accepted it) or one still in progress (409) is asked again, never accepted twice.
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        for _attempt in range(POST_ATTEMPTS):
            response = stack.api.post("/v1/messages", json=body, headers=headers)
            if response.status_code not in (409, 504) or _attempt == POST_ATTEMPTS - 1:
                break
            time.sleep(2)
        if response.status_code != 202:
            raise RuntimeError(f"POST /v1/messages answered {response.status_code}: {response.text[:500]}")
        answer: dict[str, Any] = response.json()
        return answer

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(post, bodies))


def seed_otp_history(stack: Stack, per_hour: Mapping[str, float], hours: int = 24) -> None:
    """Gives countries the OTP history of a deployment that has been sending for a day: `per_hour` recipients let
    through in each of the last `hours` full hours. The pumping rule (docs/guardrails.md) then takes a load at that
    rate as steady traffic, not as a burst to a country never seen (which a fresh local stack would hold)."""
    hour = int(time.time()) // 3600
    for country, count in per_hour.items():
        buckets = {f"h{hour - back}": {"N": str(max(1, round(count)))} for back in range(1, hours + 1)}
        item = {**country_key(country), **buckets, "expires_at": {"N": str(int(time.time()) + 3 * 86_400)}}
        stack.dynamodb.put_item(TableName=stack.table_name, Item=item)
