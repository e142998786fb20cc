"""What a batch's status counts are, from the changes of its message records.

A poll of `GET /v1/batches/{id}` reads one counts item instead of counting the whole batch partition. The counts
move with the table's stream: every write to a message record (accept's ACCEPTED, dispatch's outcome, a receipt, a
reconciliation, whatever module makes it) reaches the status-counts function as its old and new image, and each
status change is one `-1 old, +1 new`. Summing changes needs no order, so concurrent stream shards add to the same
counts safely; `ports.StatusCounts` counts each change once even when a stream batch is handed over again.

Counts trail the records by the stream's delay (about a second): a record written but not yet counted is shown
ACCEPTED (`batch_counts`), the status every record starts with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from globesms.domain.status import Status

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


def batch_counts(counted: Mapping[str, int], accepted: int) -> dict[str, int]:
    """The counts a poll shows: those counted so far, and every accepted record not counted yet as ACCEPTED (the
    stream delivers a change about a second after its write; until then the record is still counted where it was,
    and a new one nowhere). A count below zero (a change counted before the one that created its record, which one
    batch partition's stream order does not allow) is shown as none."""
    counts = {status: n for status, n in counted.items() if n > 0}
    uncounted = accepted - sum(counts.values())
    if uncounted > 0:
        counts[Status.ACCEPTED] = counts.get(Status.ACCEPTED, 0) + uncounted
    return counts
