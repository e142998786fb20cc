"""Time as the logic sees it: ISO-8601 UTC strings in records, epoch seconds for TTLs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


def utc_now() -> datetime:
    return datetime.now(UTC)


class Invocation(Protocol):
    """What a Lambda context says about the time left (`LambdaContext`, or a stand-in)."""

    def get_remaining_time_in_millis(self) -> int: ...


def deadline(context: Invocation) -> datetime:
    """When the runtime stops this invocation at the latest."""
    return utc_now() + timedelta(milliseconds=context.get_remaining_time_in_millis())


def iso(moment: datetime) -> str:
    """`moment` as stored (UTC, microseconds, `Z`), four digits of year whatever the year: these strings are
    compared as text (the consent list's keyword order, reply keys), and strftime's `%Y` writes year 999 as "999",
    which sorts after "2026"."""
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}{utc:-%m-%dT%H:%M:%S.%fZ}"
