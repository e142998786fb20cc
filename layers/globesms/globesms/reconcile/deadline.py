"""Receipt deadlines and the time buckets that find them (pure: no clock, no I/O).

A SUBMITTED message is due for reconciliation at `submitted + validity + grace`: its validity period (or its type's
default, `DEFAULT_VALIDITY_SECONDS`) is how long the carrier keeps trying, and the grace is how late a receipt may
still come after that. The deadline is written with the SUBMITTED record as two attributes: `receipt_due_at`
(epoch seconds) and `receipt_due` (`<UTC minute>#<shard>`), the keys of the sparse, keys-only `ReceiptDue` index.
The reconciler reads that index one minute bucket at a time (a Query per bucket and shard, never a Scan); a message
leaves the index when its status becomes final (the attributes are removed with that write).

Shards: every message submitted in one minute would otherwise share one index partition (about 1,000 writes per
second each); `DUE_SHARDS` spreads a minute over that many partitions, chosen from the message id.
"""

from __future__ import annotations

import calendar
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from globesms.models.outbound import MessageType

#: How long a carrier keeps trying when the request named no validity period. The providers do not state their
#: defaults in the pages we read; these are the values we assume (an OTP is worthless after minutes, a notification
#: or a marketing text is tried for about a day by most carriers). A message sent with `validity_seconds` uses that.
#: An OTP's validity when its request gives none: accept stores it on the message (`with_default_validity`), so the
#: gateway holds it (dispatch/validity.py) and Alibaba is sent it, as if the request had named it.
OTP_DEFAULT_VALIDITY_SECONDS: Final = 600
DEFAULT_VALIDITY_SECONDS: Final = {
    MessageType.OTP: OTP_DEFAULT_VALIDITY_SECONDS,
    MessageType.NOTIFY: 86_400,
    MessageType.MKT: 86_400,
}
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
    tried again (never a final status)."""

    grace_seconds: int = 1800
    pending_extension_seconds: int = 1800
    retry_seconds: int = 120
    max_pending_extensions: int = 1


def receipt_deadline(
    submitted_epoch: int, validity_seconds: int | None, message_type: MessageType, policy: DeadlinePolicy
) -> int:
    """Epoch seconds after which a message with no final receipt is reconciled."""
    validity = validity_seconds if validity_seconds and validity_seconds > 0 else DEFAULT_VALIDITY_SECONDS[message_type]
    return submitted_epoch + validity + policy.grace_seconds


def minute_of(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(epoch - epoch % BUCKET_SECONDS))


def shard_of(message_id: str) -> int:
    return zlib.crc32(message_id.encode()) % DUE_SHARDS


def due_bucket(epoch: int, message_id: str) -> str:
    """The `receipt_due` index key of a message due at `epoch`."""
    return f"{minute_of(epoch)}#{shard_of(message_id)}"


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
