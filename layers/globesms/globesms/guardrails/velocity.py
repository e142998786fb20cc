"""OTP velocity per number: at most N OTP messages to one number in any 60 minutes and M in any 24 hours.

A rolling window is kept as fixed buckets: 5-minute buckets for the hour, hour buckets for the day. The hour is
counted over the current 5-minute bucket and the 12 before it, so it covers between 60 and 65 minutes back: every
message of the true last 60 minutes is counted, and some up to 5 minutes older may be too. The approximation is
therefore only ever strict: never more than N in any 60 minutes, and a number that reached N waits at most 5
minutes longer than an exact rolling hour would make it. The day likewise: the current hour bucket and the 24
before it (24 to 25 hours), at most one hour longer than an exact rolling day. Hand-written: no library keeps
sliding-window counters in DynamoDB items.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from globesms.guardrails.limits import OtpVelocity
from globesms.guardrails.ports import NumberCounts

FIVE_MINUTES = 300
HOUR = 3600
HOUR_BUCKETS = 13  # 12 x 5 min = 60 min, plus the current partial bucket: the window never counts short
DAY_BUCKETS = 25  # 24 x 1 h, plus the current partial bucket


def _window(counts: Mapping[int, int], current: int, size: int) -> dict[int, int]:
    """The buckets of the window ending at `current`, and any after it: a request whose clock reads a little behind
    another's (its time taken when it started; a resume plans as of its first attempt) finds buckets it calls the
    future. They are messages of the last minutes all the same: counted, and kept when the counters are written
    back (dropped, they were erased, and the limit let as many through again)."""
    return {bucket: n for bucket, n in counts.items() if current - size < bucket}


class Window(NamedTuple):
    """A number's counters at `now` (epoch seconds), pruned to the windows. A named tuple: immutable, and cheap to
    build (two per OTP recipient of an accept)."""

    five_minutes: dict[int, int]
    hours: dict[int, int]
    now: int

    @classmethod
    def of(cls, counts: NumberCounts, now: int) -> Window:
        return cls(
            _window(counts.five_minutes, now // FIVE_MINUTES, HOUR_BUCKETS),
            _window(counts.hours, now // HOUR, DAY_BUCKETS),
            now,
        )

    @property
    def last_hour(self) -> int:
        return sum(self.five_minutes.values())

    @property
    def last_day(self) -> int:
        return sum(self.hours.values())

    def refusal(self, limits: OtpVelocity) -> str | None:
        """Why one more OTP to this number is refused, or None."""
        if self.last_hour + 1 > limits.per_hour:
            return f"{self.last_hour} OTP messages to this number in the last hour: at most {limits.per_hour}"
        if self.last_day + 1 > limits.per_day:
            return f"{self.last_day} OTP messages to this number in the last 24 hours: at most {limits.per_day}"
        return None

    def plus_one(self) -> Window:
        five, hour = self.now // FIVE_MINUTES, self.now // HOUR
        return Window(
            {**self.five_minutes, five: self.five_minutes.get(five, 0) + 1},
            {**self.hours, hour: self.hours.get(hour, 0) + 1},
            self.now,
        )

    def counts(self, version: int) -> NumberCounts:
        return NumberCounts(version=version, five_minutes=self.five_minutes, hours=self.hours)
