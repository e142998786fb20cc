"""The sweep, run every minute by EventBridge: the time-bucketed index read a bucket (a UTC minute) at a time, up
to `timing.LOOKAHEAD` ahead, each entry turned into a release message delayed to its send_at.

A cursor (the last bucket swept) makes each bucket read once in the normal run. It moves after each bucket whose
releases are all queued, conditionally (only from where this sweep read it: never backwards, and a sweep finding it
moved by another stops, leaving the rest to that one), so a sweep that fails, times out or falls behind leaves it at
the last bucket it finished and the next one goes on from there (late entries are released at once). A run begins
no bucket past `stop_at` but its first (the handler passes `TIME_SHARE` of the invocation's time): a backlog larger
than one invocation can queue is caught up over several runs, rather than its first buckets re-done by every run
until its timeout. Two sweeps at once may both queue a bucket's releases: a release repeated sends nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from globesms.domain.clock import utc_now
from globesms.ports import ReleaseQueue, ReleaseRef, ScheduleStore
from globesms.scheduling.timing import buckets_to_sweep, parse_iso, release_delay

MAX_BUCKETS_PER_SWEEP = 120
#: The share of an invocation's remaining time a sweep may begin buckets in; the rest is for the bucket it began last
#: (a bucket of thousands of releases is hundreds of SendMessageBatch calls).
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
    buckets = buckets_to_sweep(cursor, now, most=MAX_BUCKETS_PER_SWEEP)
    queued = swept = 0
    for bucket in buckets:
        if swept and stop_at is not None and clock() >= stop_at:
            break
        queued += _queue_bucket(store, releases, bucket, now)
        if not store.advance_sweep_cursor(cursor, bucket):
            break  # another sweep moved it (past this bucket): it goes on from there
        cursor = bucket
        swept += 1
    return SweepSummary(buckets=swept, releases=queued, cursor=cursor, left=len(buckets) - swept)


def _queue_bucket(store: ScheduleStore, releases: ReleaseQueue, bucket: str, now: datetime) -> int:
    """The bucket's releases queued, each delayed to its send_at; how many."""
    # One call per delay, not per entry (SQS takes 10 a request): a minute's bucket of thousands of scheduled requests
    # sent one by one outlasted the function's 30 s, and every later sweep stalled in that bucket.
    by_delay: dict[int, list[ReleaseRef]] = {}
    for ref in store.indexed_releases(bucket):
        by_delay.setdefault(release_delay(parse_iso(ref.send_at), now), []).append(ref)
    for delay, refs in by_delay.items():
        releases.send_releases(refs, delay_seconds=delay)
    return sum(len(refs) for refs in by_delay.values())
