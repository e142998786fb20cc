"""A quiet-hours window of local wall-clock times (pure, standard library only: config and the request models read it
without the rest of consent/quiet_hours.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

CLOCK_RULE = "a time of day written HH:MM (00:00 to 23:59)"
WINDOW_RULE = f"start and end, each {CLOCK_RULE}, and different"
CLOCK_PATTERN = r"^([01]\d|2[0-3]):([0-5]\d)$"
_CLOCK = re.compile(CLOCK_PATTERN)


def parse_clock(text: str) -> time:
    """`HH:MM` as a time; ValueError naming the rule otherwise."""
    matched = _CLOCK.fullmatch(text.strip()) if isinstance(text, str) else None
    if matched is None:
        raise ValueError(f"must be {CLOCK_RULE}")
    return time(int(matched[1]), int(matched[2]))


@dataclass(frozen=True)
class Window:
    """Quiet from `start` (included) to `end` (excluded), local time; crosses midnight when start > end."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError(f"quiet hours need {WINDOW_RULE}")

    @classmethod
    def parse(cls, text: str) -> Window:
        """`"21:00-08:00"` (the deployment setting's form)."""
        start, dash, end = text.partition("-")
        if not dash:
            raise ValueError(f"must be START-END, e.g. 21:00-08:00: {WINDOW_RULE}")
        return cls(parse_clock(start), parse_clock(end))

    def text(self) -> str:
        """The window as `parse` reads it (what a message carries to its dispatcher)."""
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def covers(self, other: Window) -> bool:
        """Whether every minute quiet under `other` is quiet under this window too (this one as wide or wider)."""
        mine = self._minute_spans()
        return all(any(a <= c and d <= b for a, b in mine) for c, d in other._minute_spans())

    def _minute_spans(self) -> list[tuple[int, int]]:
        """The window as spans [from, to) of minutes of the day: two when it crosses midnight."""
        start, end = self.start.hour * 60 + self.start.minute, self.end.hour * 60 + self.end.minute
        return [(start, end)] if start < end else [(start, 24 * 60), (0, end)]

    def quiet_at(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def end_after(self, local: datetime) -> datetime:
        """The end of the quiet spell `local` (zone-aware, inside the window) lies in, in UTC. A wall-clock end that a
        DST change skips is the change itself (the first instant whose wall clock is past the end); one it repeats
        is its first pass, or its second when `local` is already past the first."""
        day = local.date()
        if self.start > self.end and local.time() >= self.start:
            day += timedelta(days=1)
        end = datetime.combine(day, self.end, tzinfo=local.tzinfo)
        if _skipped(end):
            return _change_within(end.replace(fold=0).astimezone(UTC), end.replace(fold=1).astimezone(UTC), end)
        # Compared in UTC: two datetimes of one tzinfo compare by wall clock, blind to the DST fold.
        if end.astimezone(UTC) <= local.astimezone(UTC):  # a repeated end, `local` in its second pass
            end = end.replace(fold=1)
        return end.astimezone(UTC)


def _skipped(wall: datetime) -> bool:
    """True when a DST change skips this wall-clock time (it reads back as another one)."""
    return wall.astimezone(UTC).astimezone(wall.tzinfo).replace(tzinfo=None) != wall.replace(tzinfo=None)


def _change_within(a: datetime, b: datetime, wall: datetime) -> datetime:
    """The instant between `a` and `b` (UTC, the two readings of a skipped wall-clock time) where the zone's offset
    changes, to the second: a bisection, as the standard library names no transitions."""
    low, high = int(min(a, b).timestamp()), int(max(a, b).timestamp())
    after = datetime.fromtimestamp(high, wall.tzinfo).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, wall.tzinfo).utcoffset() == after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)
