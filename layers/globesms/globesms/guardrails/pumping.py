"""SMS-pumping detection per country, for OTP.

The rule (numbers from `limits.json`'s `pumping`, defaults in brackets): OTP to a country is held when the
recipients offered to it in the last `window_minutes` [5] (the current minute and the 4 before it), this request's
included, exceed `max(floor [20], factor [10] x baseline)`. The baseline is the mean number of recipients let
through per window over the previous `baseline_hours` [24] full hours: traffic at the hour's usual level,
even doubled at 9 a.m., stays far below ten times a day's mean, while a country never seen before has a baseline of
0 and trips at its 21st OTP within 5 minutes. Held recipients are refused with FRAUD_SUSPECTED but still counted
as offered, so the hold lasts while the burst does and lifts by itself within a window of the burst stopping;
they are not counted in the baseline, so a burst does not teach the baseline to accept it. An operator's release
(`tools/pumping.py release`) lifts the hold for a set time whatever the volume.

Counted from the counts read at the start of the request: requests racing to the same country can each let up to
the threshold through in the burst's first window (the volume is a statistic, not a limit; the per-number
velocity limit is the exact one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from globesms.guardrails.limits import Pumping
from globesms.guardrails.ports import CountryCounts

MINUTE = 60
HOUR = 3600


def minute_of(now: int) -> int:
    return now // MINUTE


def hour_of(now: int) -> int:
    return now // HOUR


@dataclass(frozen=True)
class Verdict:
    """A country's state for one request: how many of its OTP recipients may pass (`allowance`, None for all),
    and the figures that decided it."""

    country: str
    recent: int  # offered in the window before this request
    baseline: Decimal  # mean let through per window over the baseline hours
    threshold: Decimal
    released: bool

    @property
    def allowance(self) -> int | None:
        if self.released:
            return None
        return max(0, int(self.threshold) - self.recent)

    def reason(self, offered: int) -> str:
        return (
            f"OTP to {self.country} held as suspected SMS pumping: {self.recent + offered} recipients in the last "
            f"window against a baseline of {self.baseline} per window (threshold {self.threshold})"
        )


def verdict(country: str, counts: CountryCounts, rule: Pumping, now: int) -> Verdict:
    minute, hour = minute_of(now), hour_of(now)
    recent = _sum(counts.minutes, minute - rule.window_minutes + 1, minute)
    per_window = Decimal(rule.baseline_hours * 60) / rule.window_minutes
    baseline = (Decimal(_sum(counts.hours, hour - rule.baseline_hours, hour - 1)) / per_window).quantize(
        Decimal("0.01"), ROUND_HALF_UP
    )
    threshold = max(Decimal(rule.floor_of(country)), rule.factor * baseline)
    return Verdict(country, recent, baseline, threshold, released=counts.released_until > now)


def stale_buckets(counts: CountryCounts, rule: Pumping, now: int) -> list[str]:
    """The attribute names of buckets no window reads any more (removed when the country is next counted)."""
    minute, hour = minute_of(now), hour_of(now)
    old = [f"m{m}" for m in counts.minutes if m <= minute - rule.window_minutes]
    return old + [f"h{h}" for h in counts.hours if h < hour - rule.baseline_hours]


def _sum(buckets: Mapping[int, int], first: int, last: int) -> int:
    return sum(n for bucket, n in buckets.items() if first <= bucket <= last)
