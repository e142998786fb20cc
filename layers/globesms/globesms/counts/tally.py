"""What a batch's status counts are, from the changes of its message records.

A poll of `GET /v1/batches/{id}` reads one counts item instead of counting the whole batch partition. The counts
move with the table's stream: every write to a message record (accept's ACCEPTED or SCHEDULED, dispatch's outcome,
a receipt, a reconciliation, whatever module makes it) reaches the status-counts function as its old and new image,
and each status change is one `-1 old, +1 new`. Summing changes needs no order, so concurrent stream shards add to
the same counts safely; `ports.StatusCounts` counts each change once when a stream batch is handed over again whole
(two rare cases count some twice: aws/dynamodb_counts.py; `make recount` sets a batch's counts from its records).

Counts trail the records by the stream's delay (about a second): a record written but not yet counted is shown in
the status it was created in (`batch_counts`): SCHEDULED for a recipient with a send_at (given, or set by quiet
hours), ACCEPTED for the others. The header says how many were created SCHEDULED (`BatchRecord.scheduled`), and the
counts item how many records of each creation status the stream has counted (`creations`), so the difference is
what has not been counted yet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from globesms.domain.status import Status
from globesms.models.records import MessageRecord

#: The sort key prefix of message records (`aws.message_items.message_sk`); other items of a batch partition
#: (its header, its counts) and of the table (held receipts, claims, limiters) carry no status to count.
MESSAGE_SK_PREFIX = "M#"
BATCH_PK_PREFIX = "B#"


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One message record's status moving from `old` (None: the record is new) to `new`, as the stream record
    `sequence` (the stream's SequenceNumber: unique and the same on every delivery) saw it."""

    sequence: str
    batch_id: str
    old: str | None
    new: str
    expires_at: int | None = None  # the record's TTL: the counts item expires with the batch


def status_change(
    sequence: str, keys: Mapping[str, Any], old_image: Mapping[str, Any] | None, new_image: Mapping[str, Any] | None
) -> StatusChange | None:
    """The status change one stream record carries (images as plain values), or None: not a message record, a
    write that kept the status, or a removal (TTL expiry removes the whole batch, its counts with it)."""
    pk, sk = str(keys.get("pk", "")), str(keys.get("sk", ""))
    if not (pk.startswith(BATCH_PK_PREFIX) and sk.startswith(MESSAGE_SK_PREFIX)) or not new_image:
        return None
    new = new_image.get("status")
    old = old_image.get("status") if old_image else None
    if not isinstance(new, str) or new == old:
        return None
    expires = new_image.get("expires_at")
    return StatusChange(
        sequence=sequence,
        batch_id=pk.removeprefix(BATCH_PK_PREFIX),
        old=old if isinstance(old, str) else None,
        new=new,
        expires_at=int(expires) if expires is not None else None,
    )


def deltas(changes: Sequence[StatusChange]) -> dict[str, dict[str, int]]:
    """What `changes` add to each batch's counts, by batch and status (zero sums left out)."""
    by_batch: dict[str, Counter[str]] = {}
    for change in changes:
        counter = by_batch.setdefault(change.batch_id, Counter())
        counter[change.new] += 1
        if change.old is not None:
            counter[change.old] -= 1
    return {batch: {s: n for s, n in counter.items() if n} for batch, counter in by_batch.items()}


def creations(changes: Sequence[StatusChange]) -> dict[str, dict[str, int]]:
    """How many records `changes` create in each batch, by the status each is created in (ACCEPTED or SCHEDULED)."""
    by_batch: dict[str, Counter[str]] = {}
    for change in changes:
        if change.old is None:
            by_batch.setdefault(change.batch_id, Counter())[change.new] += 1
    return {batch: dict(counter) for batch, counter in by_batch.items()}


def creation_status(record: MessageRecord) -> Status:
    """The status `record` was created in: SCHEDULED with a send_at (only accept gives one: the request's, or quiet
    hours'; a record keeps it whatever its status now), else ACCEPTED."""
    return Status.ACCEPTED if record.send_at is None else Status.SCHEDULED


def scheduled_count(records: Iterable[MessageRecord]) -> int | None:
    """How many of `records` were created SCHEDULED, as a header keeps it (`BatchRecord.scheduled`; None: none)."""
    return sum(1 for r in records if creation_status(r) is Status.SCHEDULED) or None


@dataclass(frozen=True, slots=True)
class BatchTally:
    """A batch's counts item: its records in each status now (`statuses`), and the records counted so far by the
    status they were created in (`created`; none in an item counted before creations were)."""

    statuses: dict[str, int]
    created: dict[str, int] = field(default_factory=dict)


def batch_counts(tally: BatchTally, accepted: int, scheduled: int) -> dict[str, int]:
    """The counts a poll shows: those counted so far, and every accepted record not counted yet in the status it was
    created in (the stream delivers a change about a second after its write; until then the record is still counted
    where it was, and a new one nowhere). Of the `accepted` records `scheduled` were created SCHEDULED (the header's
    `scheduled`): those the stream has not counted as created are the SCHEDULED ones still missing, the rest of the
    shortfall ACCEPTED. The shortfall is what the counts lack (`accepted` less their sum), whatever the creations say,
    so nothing is counted twice: the creations only split it. A count below zero (a change counted before the one
    that created its record, which one batch partition's stream order does not allow) is shown as none."""
    counts = {status: n for status, n in tally.statuses.items() if n > 0}
    uncounted = accepted - sum(counts.values())
    if uncounted <= 0:
        return counts
    waiting = min(uncounted, max(0, scheduled - tally.created.get(Status.SCHEDULED, 0)))
    for status, n in ((Status.SCHEDULED, waiting), (Status.ACCEPTED, uncounted - waiting)):
        if n:
            counts[status] = counts.get(status, 0) + n
    return counts
