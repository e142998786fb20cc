"""When a scheduled send may be asked for, and how its release reaches it on time (pure).

The release path, by how far ahead send_at is when the request is accepted:
- within `DIRECT_WINDOW` (12 minutes): a release message goes straight onto the release queue with SQS
  `DelaySeconds` (at most 900 s, so a 12-minute window leaves room);
- further ahead: an entry in the time-bucketed index (one DynamoDB partition per UTC minute), which the sweep, run
  every minute by EventBridge, reads a bucket at a time `LOOKAHEAD` (10 minutes) ahead and turns into delayed release
  messages. A bucket is read once as a Query of its own partition; nothing ever scans the table.

Why the two never miss each other: an entry accepted at `t` lies in a bucket starting at or after `t + 11 min`,
and a sweep that started before `t` reads only buckets starting before `t + 10 min`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MAX_AHEAD = timedelta(days=30)
DIRECT_WINDOW = timedelta(minutes=12)
LOOKAHEAD = timedelta(minutes=10)
MAX_SQS_DELAY_SECONDS = 900  # SQS DelaySeconds' documented maximum
BUCKET_FORMAT = "%Y%m%d%H%M"
#: The first sweep of a deployment (no cursor yet) starts this far back, so that entries accepted before it ran are
#: found: 30 minutes until 2026-12-07, which a scheduler failing from its deployment for longer (an IAM or settings
#: error) while the API accepted scheduled sends outlasted, leaving their recipients SCHEDULED for good (found by a
#: review). Six hours are 360 empty buckets to read once, three runs of `MAX_BUCKETS_PER_SWEEP`: done before the
#: first bucket an accept can fill comes due (11 minutes ahead at least). Longer outages: docs/scheduling.md.
FIRST_SWEEP_BACK = timedelta(hours=6)

SEND_AT_RULE = "must be an ISO 8601 date-time with a UTC offset, in the future and at most 30 days ahead"


def send_at_problem(send_at: datetime, now: datetime, *, passed: bool = True) -> str | None:
    """Why `send_at` cannot be asked for at `now`, or None. `passed=False`: all but "in the past", the one rule time
    can break after a request was first accepted (the schema's part; accept checks it for new work only)."""
    if send_at.tzinfo is None or send_at.utcoffset() is None:
        return f"{SEND_AT_RULE}: this one has no offset (write e.g. 2026-12-04T09:00:00+08:00)"
    if passed and send_at <= now:
        return f"{SEND_AT_RULE}: this one is in the past"
    if send_at - now > MAX_AHEAD:
        return f"{SEND_AT_RULE}: this one is {(send_at - now).days} days ahead"
    return None


def parse_iso(value: str) -> datetime:
    """A stored ISO-8601 UTC string (`domain.clock.iso`) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def release_delay(send_at: datetime, now: datetime) -> int:
    """SQS DelaySeconds for a release message sent at `now`: the whole seconds to send_at, rounded up (never early),
    within 0..900."""
    seconds = (send_at - now).total_seconds()
    whole = int(seconds) + (0 if seconds == int(seconds) else 1)
    return max(0, min(whole, MAX_SQS_DELAY_SECONDS))


def goes_direct(send_at: datetime, now: datetime) -> bool:
    """True: queue the release at once with a delay; False: put it in the time-bucketed index."""
    return send_at - now <= DIRECT_WINDOW


def bucket_of(moment: datetime) -> str:
    """The index bucket (a UTC minute, `YYYYMMDDHHMM`) that holds a send_at."""
    return moment.astimezone(UTC).strftime(BUCKET_FORMAT)


def bucket_start(bucket: str) -> datetime:
    return datetime.strptime(bucket, BUCKET_FORMAT).replace(tzinfo=UTC)


def bucket_before(bucket: str) -> str:
    return bucket_of(bucket_start(bucket) - timedelta(minutes=1))


def buckets_to_sweep(after: str | None, now: datetime, *, most: int) -> list[str]:
    """The buckets a sweep at `now` reads: those after the cursor `after` (the last bucket swept; None: none yet,
    start `FIRST_SWEEP_BACK` before now) up to the one starting before `now + LOOKAHEAD`, at most `most` of them
    (a sweep that fell behind catches up over several runs, oldest first)."""
    first = bucket_start(after) + timedelta(minutes=1) if after else bucket_start(bucket_of(now - FIRST_SWEEP_BACK))
    last = bucket_start(bucket_of(now + LOOKAHEAD - timedelta(microseconds=1)))
    buckets: list[str] = []
    moment = first
    while moment <= last and len(buckets) < most:
        buckets.append(bucket_of(moment))
        moment += timedelta(minutes=1)
    return buckets
