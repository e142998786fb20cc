"""What the guardrails talk to: the spend ledger (DynamoDB in `aws/dynamodb_spend.py`) and its once-per-recipient
release that dispatch calls, and the OTP counters (`aws/dynamodb_otp.py`); in memory in the tests."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Literal, NamedTuple, Protocol


@dataclass(frozen=True)
class Hold:
    """One request's reservation: `count` recipients (the first ones, in request order) costing `amount`, against
    each scope's counter of `month` ("YYYY-MM"); `limits` gives the scopes that have a limit. `body`: the digest of
    the body it is for (`accept.canonical.body_hash`), kept with the batch's marker."""

    batch_id: str
    month: str
    count: int
    amount: Decimal
    scopes: Collection[str]
    limits: Mapping[str, Decimal]
    expires_at: int
    body: str | None = None
    #: Every recipient's estimated cost, in request order (not only the first `count`): what an earlier attempt's
    #: reservation of the batch covers of this request (`covered`).
    costs: tuple[Decimal, ...] = ()

    def covered(self, count: int, amount: Decimal) -> int:
        """How many of this request's first recipients an earlier attempt's reservation of the batch (`count`
        recipients costing `amount`) covers: no more than it counted, and costing no more than it reserved. A retry
        planned again may put other, dearer, recipients first (a country allowed since, an opt-out): the count alone
        kept them, and the records cost more than was reserved, past the limit. Without `costs`: `count`."""
        if not self.costs:
            return count
        kept, total = 0, Decimal(0)
        for cost in self.costs[:count]:
            if total + cost > amount:
                break
            kept, total = kept + 1, total + cost
        return kept


class HeldForAnotherBody(Exception):
    """The batch id's reservation was made for another body (two bodies naming one batch id at once): not this
    one's to take. Nothing was written."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"batch {batch_id} holds a spend reservation for another body")
        self.batch_id = batch_id


class SpendLedger(Protocol):
    def try_reserve(self, hold: Hold) -> int | None:
        """Atomically: add `hold.amount` to every scope's counter, each limited scope only if it stays within its
        limit, and mark the batch as holding `hold.count` recipients. Returns the count the batch holds (this one,
        or what an earlier attempt's of the same body covers of this request, `Hold.covered`: a batch reserves
        once), or None when a limit would be crossed
        (nothing written). Raises HeldForAnotherBody when the batch's marker names another `body` (a marker that
        names none, written before markers did, is taken as this body's)."""
        ...

    def spent(self, month: str, scopes: Collection[str]) -> dict[str, Decimal]:
        """Each scope's counter of `month` (0 where none), read consistently."""
        ...

    def release(self, month: str, amounts: Mapping[str, Decimal]) -> None:
        """Give back reserved amounts (a recipient that ended before reaching a provider)."""
        ...


class Charge(NamedTuple):
    """One charge beyond what accept reserved for a message, made at most once: `kind` "move", the difference a
    failover at dispatch to `provider` costs (negative: cheaper there, the difference given back); "resend", the
    whole estimated cost of a resend through `provider` after an UNDELIVERED receipt (the first provider has
    usually billed its attempt already)."""

    message_id: str
    kind: Literal["move", "resend"]
    provider: str


class ChargeMade(NamedTuple):
    """A charge as the ledger keeps it: its amount; for a resend, the cost the message carried before it was priced
    for the resend (`carried`); whether it was given back since (a resend that never reached its provider)."""

    charge: Charge
    amount: Decimal
    carried: Decimal | None = None
    given_back: bool = False


@dataclass(frozen=True)
class Reservation:
    """What a batch holds of the month's spend (`SpendLedger.try_reserve`): `count` recipients costing `amount`,
    against each of `scopes`' counters (empty: a reservation written before the scopes were kept with it)."""

    month: str
    count: int
    amount: Decimal
    scopes: tuple[str, ...] = ()


class SpendReleases(Protocol):
    def reservation(self, batch_id: str) -> Reservation | None:
        """The batch's reservation as it was made (None: the batch reserved nothing)."""
        ...

    def release_once(
        self, month: str, scopes: Collection[str], amounts: Mapping[str, Decimal], expires_at: int | None
    ) -> Decimal:
        """Give back `amounts` (message id -> its reserved cost) to each scope's counter of `month`, at most once
        per message id however often it is called (a retried or redelivered dispatch): atomically, a release
        marker per message put only if absent, with the counters' decrement. Returns what this call gave back."""
        ...

    def recharge_once(self, month: str, scopes: Collection[str], amounts: Mapping[str, Decimal]) -> Decimal:
        """Charge again what `release_once` gave back for these message ids, when a redrive is about to send them:
        atomically, each one's release marker deleted only if present, with the counters' increment by the sum of
        those found; a message id without a marker (never given back, or charged again already) adds nothing.
        Returns what this call charged; a later release of the same id gives it back again."""
        ...

    def uncharge_once(self, month: str, scopes: Collection[str], charges: Collection[Charge]) -> Decimal:
        """Give back charges made (`SpendCharges.charge_once`) for a send that never reached its provider, each once:
        atomically, its marker noted as given back, with the counters' decrement by its amount; a charge never made
        or given back already gives nothing. A later `charge_once` of it (a redrive) charges it again. Returns what
        this call gave back."""
        ...

    def recharge_given_back(self, month: str, scopes: Collection[str], charges: Collection[Charge]) -> Decimal:
        """Charge again what `uncharge_once` gave back of these charges, when a redrive is about to send their
        messages: atomically, each marker given back noted charged again, with the counters' increment by its
        amount; one not given back (or never made) adds nothing. Returns what this call charged."""
        ...

    def batch_charges(self, batch_id: str) -> list[ChargeMade]:
        """Every charge made for the batch's messages (given back or not), read consistently."""
        ...


class SpendCharges(Protocol):
    def charge_once(
        self,
        month: str,
        scopes: Collection[str],
        amounts: Mapping[Charge, Decimal],
        expires_at: int | None,
        carried: Mapping[Charge, Decimal] | None = None,
    ) -> Decimal:
        """Add `amounts` (each `Charge` -> its amount, which may be negative) to each scope's counter of `month`, at
        most once per `Charge` however often it is called (a repeated failover, a takeover, a redelivered resend),
        or once more after it was given back (`uncharge_once`): atomically, a marker per charge (keeping `carried`,
        a resend's cost before it was priced) put only if absent or given back, with the counters' change. No
        limit is checked: the
        message was accepted within it, and moving or resending it is how the gateway keeps its promise to deliver
        (docs/guardrails.md). Returns what this call added."""
        ...


class DispatchSpend(SpendReleases, SpendCharges, Protocol):
    """What dispatch gives back (a recipient that never reached a provider) and charges (a failover's difference, a
    resend) with."""


class SpendAccount(SpendLedger, SpendReleases, Protocol):
    """What accept reserves with, and gives back through what a resumed or failed accept reserved and never wrote."""


_NO_COUNTS: Mapping[int, int] = MappingProxyType({})


class NumberCounts(NamedTuple):
    """One number's OTP counters as read: counts by 5-minute bucket and by hour bucket (bucket = epoch seconds //
    the bucket's length), and the version a conditional write must find unchanged. A named tuple, as `NumberWrite`:
    immutable, and a third of a frozen dataclass's cost to build (an accept builds a few per OTP recipient)."""

    version: int = 0
    five_minutes: Mapping[int, int] = _NO_COUNTS
    hours: Mapping[int, int] = _NO_COUNTS


@dataclass(frozen=True)
class CountryCounts:
    """One country's OTP volume as read: recipients offered by minute bucket, recipients let through by hour
    bucket, and until when (epoch seconds) an operator released it."""

    minutes: Mapping[int, int] = field(default_factory=dict)
    hours: Mapping[int, int] = field(default_factory=dict)
    released_until: int = 0


class NumberWrite(NamedTuple):
    number: str
    seen_version: int
    counts: NumberCounts  # the new counters (pruned to the windows, this request's messages added)


@dataclass(frozen=True)
class CountryAdd:
    country: str
    minute: int
    offered: int  # added to the minute bucket: every OTP recipient to the country, held or not
    hour: int
    passed: int  # added to the hour bucket (the baseline): the recipients not held
    stale: Collection[str] = ()  # bucket attributes read that fell out of every window (removed)


@dataclass(frozen=True)
class OtpCommit:
    """One chunk of a request's OTP decisions: the new counters of its numbers and the refusals of its recipients
    (`index -> (code, message)`), written once per batch and chunk."""

    batch_id: str
    chunk: str  # the chunk's position, planning hour and a digest of its recipients (`otp_guard.chunk_key`)
    writes: Sequence[NumberWrite]
    refused: Mapping[int, tuple[str, str]]
    expires_at: int


class OtpCounters(Protocol):
    def read(
        self, numbers: Collection[str], countries: Collection[str]
    ) -> tuple[dict[str, NumberCounts], dict[str, CountryCounts]]:
        """The counters of each number and country (empty ones for those never counted), read consistently."""
        ...

    def try_commit(self, commit: OtpCommit) -> tuple[Mapping[int, tuple[str, str]], bool] | None:
        """Atomically: write every number's counters, each only if its version is still `seen_version`, and mark
        the chunk done with its refusals. Returns the refusals the chunk holds and whether this call wrote them
        (False: an earlier attempt of the batch did; a batch's chunk commits once), or None when another writer
        changed a number first (nothing written)."""
        ...

    def add_country(self, add: CountryAdd, expires_at: int) -> None:
        """Count a request's OTP recipients to a country (an atomic ADD; no limit is enforced by it)."""
        ...

    def release_country(self, country: str, until: int) -> None:
        """An operator's release: the country is not held before `until` (epoch seconds), whatever its volume."""
        ...
