"""Spend limits: a request reserves the estimated cost of its recipients against this month's counters before
anything is written, atomically across every concurrent Lambda (the ledger's conditional transaction).

One reservation per request, not per recipient: the first try reserves the whole request in one conditional write;
only when a limit would be crossed are the counters read (one read) and the longest prefix of the recipients, in
request order, that fits is reserved (one more write), again conditionally. A race lost to another writer means a
re-read and a smaller prefix, never an overspend. The recipients past the prefix are refused with
`SPEND_LIMIT_REACHED`. A batch reserves once: a retried accept of the same batch finds its earlier reservation, and
an accept of another body under the same batch id finds one that is not its own (`HeldForAnotherBody`).

A request whose every try is lost to other writers (the counters are one item per scope and month, and transactions
on one item at the same moment cancel each other: docs/scale.md, "DynamoDB: the spend counters") reserves nothing
and is refused as `busy`, with that reason rather than a limit: its recipients fitted, no limit refused them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from globesms.guardrails.limits import LimitsDoc
from globesms.guardrails.ports import Hold, SpendLedger

DEPLOYMENT = "all"
#: Conditional writes lost to other writers before giving up on the rest of the request (each loss means another
#: request reserved in between, so the next try sees less room).
MAX_ATTEMPTS = 10


def key_scope(owner: str) -> str:
    return f"key:{owner}"


def month_of(moment: datetime | str) -> str:
    """The UTC calendar month a reservation counts in: `YYYY-MM` (records keep ISO `created_at` strings)."""
    return moment[:7] if isinstance(moment, str) else f"{moment:%Y-%m}"


def scopes_of(owner: str | None) -> list[str]:
    return [DEPLOYMENT, key_scope(owner)] if owner else [DEPLOYMENT]


def limits_of(limits: LimitsDoc, owner: str | None) -> dict[str, Decimal]:
    found = {DEPLOYMENT: limits.monthly_spend, key_scope(owner) if owner else "": limits.key_limit(owner)}
    return {scope: limit for scope, limit in found.items() if limit is not None}


def fitting(costs: Sequence[Decimal], room: Decimal | None) -> int:
    """How many of `costs`, from the first, fit in `room` (all of them when there is no limit)."""
    if room is None:
        return len(costs)
    total = Decimal(0)
    for count, cost in enumerate(costs):
        total += cost
        if total > room:
            return count
    return len(costs)


def room_in(limited: dict[str, Decimal], spent: dict[str, Decimal]) -> Decimal | None:
    if not limited:
        return None
    return min(limit - spent.get(scope, Decimal(0)) for scope, limit in limited.items())


@dataclass(frozen=True)
class Request:
    """What one request would reserve: each recipient's estimated cost, in request order."""

    batch_id: str
    owner: str | None
    costs: Sequence[Decimal]
    now: datetime
    expires_at: int
    body: str | None = None  # the digest of the body it is for: another body's reservation is never taken


class Reserved(NamedTuple):
    kept: int  # how many of the request's first recipients are reserved for
    busy: bool = False  # the others lost every try to other writers while they fitted: refused, but for no limit


def reserve(ledger: SpendLedger, request: Request, limits: LimitsDoc) -> Reserved:
    """Reserves the longest prefix of `request.costs` within every limit."""
    limited = limits_of(limits, request.owner)
    month = month_of(request.now)
    count, costs = len(request.costs), tuple(request.costs)
    busy = False
    for attempt in range(MAX_ATTEMPTS + 1):
        if attempt == MAX_ATTEMPTS:
            busy = count > 0  # a limit that refused everything makes count 0, whose hold can only succeed
            count = 0  # still recorded, so a retry of this batch gives the same answer
        hold = Hold(
            batch_id=request.batch_id,
            month=month,
            count=count,
            amount=sum(request.costs[:count], Decimal(0)),
            scopes=scopes_of(request.owner),
            limits=limited,
            expires_at=request.expires_at,
            body=request.body,
            costs=costs,
        )
        held = ledger.try_reserve(hold)
        if held is not None:
            # A last hold that found the batch's marker (another attempt of it reserved meanwhile) answers that
            # attempt's count, refused for whatever it was refused for: not busy.
            return Reserved(held, busy and held == 0)
        count = min(count, fitting(request.costs, room_in(limited, ledger.spent(month, limited))))
    raise AssertionError("a reservation of nothing always succeeds")  # pragma: no cover


def peek(ledger: SpendLedger, request: Request, limits: LimitsDoc) -> int:
    """What `reserve` would keep now, reserving nothing (a dry run)."""
    limited = limits_of(limits, request.owner)
    if not limited:
        return len(request.costs)
    return fitting(request.costs, room_in(limited, ledger.spent(month_of(request.now), limited)))
