"""Message statuses and the rule that they only move forward."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    ACCEPTED = "ACCEPTED"
    SCHEDULED = "SCHEDULED"  # waiting for its send_at (globesms.scheduling); released as QUEUED
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    SUBMITTED = "SUBMITTED"
    DELIVERED = "DELIVERED"
    UNDELIVERED = "UNDELIVERED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"  # canceled while SCHEDULED: never handed to a provider

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES

    def can_become(self, new: Status) -> bool:
        """True when `new` is a forward move (or the same status, which changes nothing)."""
        if self.is_final:
            return False
        return new.rank > self.rank


# Every final status shares the top rank: once one is reached nothing overwrites it.
_RANK = {
    Status.ACCEPTED: 0,
    Status.SCHEDULED: 0,
    Status.QUEUED: 1,
    Status.SENDING: 2,
    Status.SUBMITTED: 3,
    Status.DELIVERED: 4,
    Status.UNDELIVERED: 4,
    Status.EXPIRED: 4,
    Status.REJECTED: 4,
    Status.FAILED: 4,
    Status.CANCELED: 4,
}
FINAL_STATUSES = frozenset(s for s, r in _RANK.items() if r == 4)
#: The final statuses a carrier gives other than DELIVERED (receipts, pulled answers): a failure to deliver.
UNDELIVERED_OUTCOMES = frozenset({Status.UNDELIVERED, Status.EXPIRED, Status.REJECTED})


def forward(current: Status, new: Status) -> Status:
    """The status after applying `new` to `current`: forward moves win, anything else keeps `current`."""
    return new if current.can_become(new) else current
