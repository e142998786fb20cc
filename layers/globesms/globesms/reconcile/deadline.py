"""Receipt deadlines and the time buckets that find them (pure: no clock, no I/O).

A SUBMITTED message is due for reconciliation at `submitted + validity + grace`: its validity period (or its type's
default, `DEFAULT_VALIDITY_SECONDS`) is how long the carrier keeps trying, and the grace is how late a receipt may
still come after that. The record keeps its deadline (`receipt_due_at`, epoch seconds, written with SUBMITTED), and
the dispatcher writes one **deadline entry** per pack and deadline beside the records, in the same batch write: the
ids of the pack's messages due at that second. The reconciler reads the entries one minute bucket at a time (a
Query per bucket and shard of the table, never a Scan), reads the listed records, and settles those still
SUBMITTED whose own `receipt_due_at` has passed (a rescheduled message has a later one, and an entry of its own).

Why entries per pack and not an index entry per message: an index entry costs a write when the message is submitted
and another when its final status takes it off the index (2 write units per recipient, ~$1.25 per million); an
entry is one write per pack (~0.01 per recipient for a pack of 1,000), never updated, and left for the table's TTL
to delete (free) once the reconciler's watermark is past it. Reading each record once at its deadline costs a read
unit (a fifth of a write). A one-recipient pack (an OTP) still pays one write for its entry, one fewer than before.

Shards: a minute's entries are spread over `DUE_SHARDS` partitions, chosen from the entry's key.
"""

from __future__ import annotations

import calendar
import hashlib
import time
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from globesms.domain.status import Status
from globesms.models.outbound import DEFAULT_VALIDITY_SECONDS, OTP_DEFAULT_VALIDITY_SECONDS, MessageType
from globesms.models.records import MessageRecord

if TYPE_CHECKING:
    from globesms.config import ReceiptDeadlineSettings

BUCKET_SECONDS: Final = 60
DUE_SHARDS: Final = 4


def with_default_validity(message_type: MessageType, validity_seconds: int | None) -> int | None:
    """The validity a message is accepted with: the request's, or for an OTP naming none the OTP default."""
    if validity_seconds is None and message_type is MessageType.OTP:
        return OTP_DEFAULT_VALIDITY_SECONDS
    return validity_seconds


@dataclass(frozen=True, slots=True)
class DeadlinePolicy:
    """`grace_seconds`: added to the validity (GLOBESMS_RECEIPT_GRACE_SECONDS). `pending_extension_seconds`: how far
    a pulled "still delivering" moves the deadline, once. `retry_seconds`: when an unreadable or failed query is
    tried again. `max_query_failures`: how many failed queries in a row a message is asked again after (an hour's
    worth at `retry_seconds`, counted from its first failure, however late the run reached it); then it ends as a
    message without a query would (EXPIRED, NO_RECEIPT, which a receipt that comes later still overrides), rather
    than be asked every `retry_seconds` for ever (a provider key that may send but not query, an endpoint answering
    HTML), each try spending a run's budget that other messages wait for."""

    grace_seconds: int = 1800
    pending_extension_seconds: int = 1800
    retry_seconds: int = 120
    max_pending_extensions: int = 1
    max_query_failures: int = 30

    @classmethod
    def from_settings(cls, settings: ReceiptDeadlineSettings, pending_extension_seconds: int = 1800) -> DeadlinePolicy:
        return cls(grace_seconds=settings.receipt_grace_seconds, pending_extension_seconds=pending_extension_seconds)


def receipt_deadline(
    submitted_epoch: int, validity_seconds: int | None, message_type: MessageType, policy: DeadlinePolicy
) -> int:
    """Epoch seconds after which a message with no final receipt is reconciled."""
    validity = validity_seconds if validity_seconds and validity_seconds > 0 else DEFAULT_VALIDITY_SECONDS[message_type]
    return submitted_epoch + validity + policy.grace_seconds


def minute_of(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(epoch - epoch % BUCKET_SECONDS))


def shard_of(key: str) -> int:
    return zlib.crc32(key.encode()) % DUE_SHARDS


def minute_epoch(minute: str) -> int:
    """The first second of a `minute_of` value."""
    return calendar.timegm(time.strptime(minute, "%Y-%m-%dT%H:%M"))


def minutes_between(first: str, now_epoch: int) -> Iterator[str]:
    """Every minute bucket from `first` up to and including the one holding `now_epoch`, oldest first."""
    start = minute_epoch(first)
    end = now_epoch - now_epoch % BUCKET_SECONDS
    for epoch in range(start, end + 1, BUCKET_SECONDS):
        yield minute_of(epoch)


def shard_keys(minute: str) -> list[str]:
    return [f"{minute}#{shard}" for shard in range(DUE_SHARDS)]


@dataclass(frozen=True, slots=True)
class DeadlineEntry:
    """Messages due for reconciliation at the same second: `due_at` (epoch seconds) and their ids, in order."""

    due_at: int
    message_ids: tuple[str, ...]

    @property
    def key(self) -> str:
        """Unique to this deadline and these messages (sorts by deadline): the same pack written twice, say by a
        dispatcher that recovers an interrupted pack, writes the same entry, and two different ones never share it."""
        digest = hashlib.sha256("\n".join(self.message_ids).encode()).hexdigest()[:20]
        return f"{self.due_at:010d}#{digest}"

    @property
    def bucket(self) -> str:
        return f"{minute_of(self.due_at)}#{shard_of(self.key)}"


def deadline_entries(records: Iterable[MessageRecord]) -> list[DeadlineEntry]:
    """The entries of records just written: one per deadline among those SUBMITTED with one."""
    due: defaultdict[int, list[str]] = defaultdict(list)
    for record in records:
        if record.status is Status.SUBMITTED and record.receipt_due_at is not None:
            due[record.receipt_due_at].append(record.id)
    return [DeadlineEntry(due_at, tuple(ids)) for due_at, ids in sorted(due.items())]


def is_due(record: MessageRecord, until: int) -> bool:
    """Still waiting for a final status and past its own deadline (an entry may list a message that has since
    been settled, rescheduled to a later entry, or resent and submitted again with a new deadline)."""
    return record.status is Status.SUBMITTED and record.receipt_due_at is not None and record.receipt_due_at <= until
