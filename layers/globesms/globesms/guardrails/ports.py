"""What the guardrails talk to: the spend ledger (DynamoDB in `aws/dynamodb_spend.py`, in memory in the tests), and
the ledger's once-per-recipient release that dispatch calls."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class Hold:
    """One request's reservation: `count` recipients (the first ones, in request order) costing `amount`, against
    each scope's counter of `month` ("YYYY-MM"); `limits` gives the scopes that have a limit."""

    batch_id: str
    month: str
    count: int
    amount: Decimal
    scopes: Collection[str]
    limits: Mapping[str, Decimal]
    expires_at: int


class SpendLedger(Protocol):
    def try_reserve(self, hold: Hold) -> int | None:
        """Atomically: add `hold.amount` to every scope's counter, each limited scope only if it stays within its
        limit, and mark the batch as holding `hold.count` recipients. Returns the count the batch holds (this one,
        or an earlier attempt's: a batch reserves once), or None when a limit would be crossed (nothing written)."""
        ...

    def spent(self, month: str, scopes: Collection[str]) -> dict[str, Decimal]:
        """Each scope's counter of `month` (0 where none), read consistently."""
        ...

    def release(self, month: str, amounts: Mapping[str, Decimal]) -> None:
        """Give back reserved amounts (a recipient that ended before reaching a provider)."""
        ...


class SpendReleases(Protocol):
    def release_once(
        self, month: str, scopes: Collection[str], amounts: Mapping[str, Decimal], expires_at: int | None
    ) -> Decimal:
        """Give back `amounts` (message id -> its reserved cost) to each scope's counter of `month`, at most once
        per message id however often it is called (a retried or redelivered dispatch): atomically, a release
        marker per message put only if absent, with the counters' decrement. Returns what this call gave back."""
        ...
