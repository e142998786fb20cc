"""Final outcomes -> per-bucket counts: what one receipt push (or one reconcile run) adds to the route statistics.

A push's messages are summed in memory by (country, provider, type, 5-minute bucket) first, so the store gets one
update per key however many receipts the push carried. Receipt latency (final receipt - SUBMITTED) is kept as a
small histogram with fixed bounds: counts add up across buckets and Lambdas (a list of latencies would not), and a
median or p95 read from it is exact to the bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from globesms.domain.status import Status
from globesms.errors import DispatchCode
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.records import MessageRecord

BUCKET_SECONDS: Final = 300
RETENTION_SECONDS: Final = 14 * 86_400  # the buckets' TTL
#: Upper bounds (seconds, inclusive) of the latency histogram's slots; the last slot holds everything slower.
LATENCY_BOUNDS: Final[tuple[int, ...]] = (2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
SLOTS: Final = len(LATENCY_BOUNDS) + 1

UNDELIVERED_STATUSES: Final = frozenset({Status.UNDELIVERED, Status.REJECTED})


@dataclass(frozen=True, slots=True, order=True)
class BucketKey:
    country: str
    provider: ProviderName
    message_type: MessageType
    bucket: int  # epoch seconds of the bucket's start


@dataclass(slots=True)
class Tally:
    delivered: int = 0
    undelivered: int = 0  # UNDELIVERED or REJECTED by the receipt
    expired: int = 0  # EXPIRED, by the receipt or by reconcile (NO_RECEIPT)
    parts: int = 0  # SMS parts of these messages (what they cost)
    latency: list[int] = field(default_factory=lambda: [0] * SLOTS)

    @property
    def outcomes(self) -> int:
        return self.delivered + self.undelivered + self.expired

    def add(self, other: Tally) -> None:
        self.delivered += other.delivered
        self.undelivered += other.undelivered
        self.expired += other.expired
        self.parts += other.parts
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]


def bucket_of(epoch: float) -> int:
    return int(epoch) // BUCKET_SECONDS * BUCKET_SECONDS


def latency_slot(seconds: float) -> int:
    for slot, bound in enumerate(LATENCY_BOUNDS):
        if seconds <= bound:
            return slot
    return len(LATENCY_BOUNDS)


def quantile_seconds(latency: Sequence[int], q: float) -> int | None:
    """The bound of the slot that holds the q-quantile (None: no latencies; the last slot: "over the last bound",
    reported as that bound)."""
    total = sum(latency)
    if total == 0:
        return None
    rank = q * total
    running = 0
    for slot, count in enumerate(latency):
        running += count
        if count and running >= rank:
            return LATENCY_BOUNDS[min(slot, len(LATENCY_BOUNDS) - 1)]
    return LATENCY_BOUNDS[-1]


def _seconds_since_submitted(record: MessageRecord, now: datetime) -> float | None:
    if not record.submitted_at:
        return None
    return max(0.0, (now - datetime.fromisoformat(record.submitted_at)).total_seconds())


def tally_outcomes(records: Iterable[MessageRecord], now: datetime) -> dict[BucketKey, Tally]:
    """The counts these newly final messages add, by bucket key (the bucket of `now`, when the outcome was
    learned). Messages not final, or without a country (theirs, else their number's), add nothing; an EXPIRED
    without a receipt adds no latency (there was no receipt)."""
    bucket = bucket_of(now.timestamp())
    tallies: dict[BucketKey, Tally] = {}
    for record in records:
        country = record.country or country_of(record.to)
        if not country or not record.status.is_final:
            continue
        key = BucketKey(country, record.provider, record.type, bucket)
        tally = tallies.setdefault(key, Tally())
        if record.status is Status.DELIVERED:
            tally.delivered += 1
        elif record.status in UNDELIVERED_STATUSES:
            tally.undelivered += 1
        elif record.status is Status.EXPIRED:
            tally.expired += 1
        else:
            continue
        tally.parts += record.segments or 1
        latency = None if _no_receipt(record) else _seconds_since_submitted(record, now)
        if latency is not None:
            tally.latency[latency_slot(latency)] += 1
    return {k: v for k, v in tallies.items() if v.outcomes}


def country_of(number: str) -> str | None:
    """The number's country, for records that do not carry theirs: those a dispatcher wrote from a pack queued before
    packs carried the country (2026-12-06). Imported here, on use: no dispatcher needs phonenumbers otherwise."""
    import phonenumbers

    from globesms.domain.phone import country_of_region

    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number)) or None
    except phonenumbers.NumberParseException:
        return None
    return country_of_region(region)  # as accept names it: "001" is no country a scored route reads


def _no_receipt(record: MessageRecord) -> bool:
    return record.error_code == DispatchCode.NO_RECEIPT.value
