"""What the statistics talk to: the bucket store (DynamoDB in `aws/dynamodb_route_stats.py`, in memory in the tests
and the routing bench)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from globesms.stats.tally import BucketKey, Tally


class RouteStatsStore(Protocol):
    def add(self, tallies: Mapping[BucketKey, Tally]) -> None:
        """Adds each tally to its bucket's counters atomically (one update per key)."""
        ...

    def buckets(self, country: str, since: int, until: int) -> Sequence[tuple[BucketKey, Tally]]:
        """The country's buckets whose start is in [since, until]."""
        ...


@dataclass
class MemoryRouteStats:
    """The store in memory: the tests, the local tools and the routing simulation (bench/routing.py)."""

    rows: dict[BucketKey, Tally] = field(default_factory=dict)
    updates: int = 0  # how many per-key updates `add` made (one per key per call)

    def add(self, tallies: Mapping[BucketKey, Tally]) -> None:
        for key, tally in tallies.items():
            self.rows.setdefault(key, Tally()).add(tally)
            self.updates += 1

    def buckets(self, country: str, since: int, until: int) -> list[tuple[BucketKey, Tally]]:
        found = [(k, v) for k, v in self.rows.items() if k.country == country and since <= k.bucket <= until]
        return sorted(found, key=lambda row: row[0])
