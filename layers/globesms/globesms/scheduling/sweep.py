"""The sweep, run every minute by EventBridge: the time-bucketed index read a bucket (a UTC minute) at a time, up
to `timing.LOOKAHEAD` ahead, each entry turned into a release message delayed to its send_at.

A cursor (`ports.SweepCursor`: the last bucket swept, and how far into the next one) makes each entry read once in
the normal run. It moves after each page of `PAGE` releases queued, conditionally (only from where this sweep read
it: never backwards, and a sweep finding it moved by another stops, leaving the rest to that one), so a sweep that
fails, times out or falls behind leaves it at the last page it finished and the next one goes on from there (late
entries are released at once). A run begins no page past `stop_at` but its first (the handler passes `TIME_SHARE`
of the invocation's time): a backlog larger than one invocation can queue is caught up over several runs, rather
than its first pages re-done by every run until its timeout. That holds inside one bucket too: until 2026-12-07 the
cursor moved after whole buckets only, and a bucket of more releases than one run could queue (every MKT request
deferred by the night's quiet hours to 08:00 in one time zone lands in one) was begun again by every run and never
finished, nor any bucket after it (found by a review). Two sweeps at once may both queue a page's releases: a
release repeated sends nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from globesms.domain.clock import utc_now
from globesms.ports import ReleaseQueue, ReleaseRef, ScheduleStore, SweepCursor
from globesms.scheduling.timing import bucket_before, buckets_to_sweep, parse_iso, release_delay

MAX_BUCKETS_PER_SWEEP = 120
#: Releases read (one Query page) and queued (50 SendMessageBatch calls) before the cursor moves: about a second's
#: work, so the next run re-does at most that of a run cut off by its timeout.
PAGE = 500
#: The share of an invocation's remaining time a sweep may begin pages in; the rest is for the page it began last.
TIME_SHARE: Final = 0.5


@dataclass(frozen=True, slots=True)
class SweepSummary:
    buckets: int  # swept (their releases queued, the cursor moved past them)
    releases: int
    cursor: str | None
    left: int = 0  # buckets due now that this run left for the next (its time, or another sweep moved the cursor)


def sweep(
    store: ScheduleStore,
    releases: ReleaseQueue,
    *,
    now: datetime,
    stop_at: datetime | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> SweepSummary:
    cursor = store.sweep_cursor()
    buckets = buckets_to_sweep(None if cursor is None else cursor.bucket, now, most=MAX_BUCKETS_PER_SWEEP)
    queued = swept = 0

    def out_of_time() -> bool:
        return stop_at is not None and clock() >= stop_at

    for bucket in buckets:
        if (swept or queued) and out_of_time():
            break
        try:
            cursor, count, finished = _sweep_bucket(store, releases, bucket, cursor, now, out_of_time)
        except _Overtaken as overtaken:
            queued += overtaken.queued
            break  # another sweep moved the cursor (past this page): it goes on from there
        queued += count
        if not finished:
            break
        swept += 1
    return SweepSummary(
        buckets=swept, releases=queued, cursor=None if cursor is None else cursor.bucket, left=len(buckets) - swept
    )


class _Overtaken(Exception):
    def __init__(self, queued: int) -> None:
        self.queued = queued


def _sweep_bucket(
    store: ScheduleStore,
    releases: ReleaseQueue,
    bucket: str,
    cursor: SweepCursor | None,
    now: datetime,
    out_of_time: Callable[[], bool],
) -> tuple[SweepCursor, int, bool]:
    """The bucket's releases queued a page at a time from where `cursor` says (the bucket is the one after it), the
    cursor moved after each page. Returns the cursor, how many were queued and whether the bucket is finished (False:
    out of time, the rest left for the next run); raises `_Overtaken` when another sweep moved the cursor."""
    after = None if cursor is None else cursor.within
    queued = 0
    while True:
        refs, more = store.indexed_releases(bucket, after=after, limit=PAGE)
        _queue(releases, refs, now)
        queued += len(refs)
        moved = SweepCursor(bucket_before(bucket), refs[-1]) if more and refs else SweepCursor(bucket)
        if not store.advance_sweep_cursor(cursor, moved):
            raise _Overtaken(queued)
        cursor = moved
        if moved.within is None:
            return cursor, queued, True
        if out_of_time():
            return cursor, queued, False
        after = moved.within


def _queue(releases: ReleaseQueue, refs: list[ReleaseRef], now: datetime) -> None:
    """Each release queued, delayed to its send_at: one call per delay, not per entry (SQS takes 10 a request)."""
    by_delay: dict[int, list[ReleaseRef]] = {}
    for ref in refs:
        by_delay.setdefault(release_delay(parse_iso(ref.send_at), now), []).append(ref)
    for delay, same in by_delay.items():
        releases.send_releases(same, delay_seconds=delay)
