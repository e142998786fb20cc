"""The sweep, run every minute by EventBridge: the time-bucketed index read a bucket (a UTC minute) at a time, up
to `timing.LOOKAHEAD` ahead, each entry turned into a release message delayed to its send_at.

A cursor (the last bucket swept) makes each bucket read once in the normal run; a sweep that fails or falls behind
leaves the cursor where it was and the next one catches up (late entries are released at once). Two sweeps at once
may both queue a bucket's releases: a release repeated sends nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from globesms.ports import ReleaseQueue, ReleaseRef, ScheduleStore
from globesms.scheduling.timing import buckets_to_sweep, parse_iso, release_delay

MAX_BUCKETS_PER_SWEEP = 120


@dataclass(frozen=True, slots=True)
class SweepSummary:
    buckets: int
    releases: int
    cursor: str | None


def sweep(store: ScheduleStore, releases: ReleaseQueue, *, now: datetime) -> SweepSummary:
    cursor = store.sweep_cursor()
    buckets = buckets_to_sweep(cursor, now, most=MAX_BUCKETS_PER_SWEEP)
    queued = 0
    for bucket in buckets:
        # One call per delay, not per entry (SQS takes 10 a request): a minute's bucket of thousands of scheduled
        # requests sent one by one outlasted the function's 30 s, and every later sweep stalled in that bucket.
        by_delay: dict[int, list[ReleaseRef]] = {}
        for ref in store.indexed_releases(bucket):
            by_delay.setdefault(release_delay(parse_iso(ref.send_at), now), []).append(ref)
        for delay, refs in by_delay.items():
            releases.send_releases(refs, delay_seconds=delay)
            queued += len(refs)
    if buckets:
        store.advance_sweep_cursor(cursor, buckets[-1])
    return SweepSummary(buckets=len(buckets), releases=queued, cursor=buckets[-1] if buckets else cursor)
