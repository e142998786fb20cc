"""tools/pumping.py's view of a country, against counts given as the OTP counters read them (no table)."""

from __future__ import annotations

from typing import Any

import pytest

from globesms.guardrails import pumping as rule
from globesms.guardrails.limits import current_limits
from globesms.guardrails.ports import CountryCounts
from tools import pumping

NOW = 1_800_000_000


class Counters:
    """What `status` reads of DynamoDBOtpCounters: the counts of the countries asked for."""

    def __init__(self, counts: CountryCounts) -> None:
        self.counts = counts

    def read(self, numbers: list[str], countries: list[str]) -> tuple[dict[str, Any], dict[str, CountryCounts]]:
        return {}, {country: self.counts for country in countries}


@pytest.mark.parametrize(("recent", "held"), [(19, False), (20, True), (21, True)])
def test_held_is_the_guard_s_verdict(recent: int, held: bool) -> None:
    """No baseline: the floor, 20, is the threshold, and the guard lets through at most 20 in the window. At 20 it
    refuses the next OTP (FRAUD_SUSPECTED) while `status` said "held": false (a reviewer's finding)."""
    counts = CountryCounts(minutes={rule.minute_of(NOW): recent})
    assert (rule.verdict("HK", counts, current_limits().pumping, NOW).allowance == 0) is held
    shown = pumping.status(Counters(counts), "HK", NOW)  # type: ignore[arg-type]
    assert shown["recent"] == recent and shown["threshold"] == "20" and shown["held"] is held


def test_a_released_country_is_not_held() -> None:
    counts = CountryCounts(minutes={rule.minute_of(NOW): 500}, released_until=NOW + 60)
    assert pumping.status(Counters(counts), "HK", NOW)["held"] is False  # type: ignore[arg-type]
