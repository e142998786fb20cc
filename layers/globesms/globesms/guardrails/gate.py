"""The guardrails' one entry point for accept: price and permit each planned recipient, then hold the request's
spend. Accept calls `screen` while planning (pure, no I/O) and `hold_spend` before writing anything."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from globesms.domain.money import estimate, money
from globesms.domain.segments import Encoding, text_encoding
from globesms.errors import RecipientCode
from globesms.guardrails import spend
from globesms.guardrails.limits import LimitsDoc, current_limits
from globesms.guardrails.permissions import PermissionsDoc, current_permissions
from globesms.guardrails.ports import SpendLedger
from globesms.guardrails.prices import PriceTableDoc, current_prices
from globesms.models.errors import RecipientError
from globesms.models.records import MessageRecord, split_message_id

log = logging.getLogger(__name__)

SPEND_BUSY = "this month's spend counters stayed busy with concurrent requests: try again"


@dataclass(frozen=True)
class Rules:
    """The guardrail data in force for one request (each document read once)."""

    prices: PriceTableDoc
    permissions: PermissionsDoc
    limits: LimitsDoc


def current_rules() -> Rules:
    return Rules(current_prices(), current_permissions(), current_limits())


def _refusal(record: MessageRecord, code: RecipientCode, message: str) -> RecipientError:
    parts = split_message_id(record.id)
    return RecipientError(index=parts[1] if parts else 0, to=record.to, code=code, message=message)


def screen(
    records: Sequence[MessageRecord], errors: Sequence[RecipientError], rules: Rules
) -> tuple[list[MessageRecord], list[RecipientError]]:
    """The records allowed (with encoding, price and cost set) and the errors, the refused ones added in index
    order. A recipient without a price passes unless a spend limit is configured (then `PRICE_UNKNOWN`)."""
    encodings: dict[str, Encoding] = {}  # by text: most requests send one text to many recipients
    amounts: dict[tuple[Decimal, int], tuple[str, str]] = {}  # (price, parts) -> as written: few distinct ones
    needs_price = rules.limits.any_spend_limit
    kept: list[MessageRecord] = []
    refused: list[RecipientError] = []
    for record in records:
        reason = rules.permissions.refusal(record.country, record.type)
        if reason is not None:
            refused.append(_refusal(record, RecipientCode.COUNTRY_NOT_ALLOWED, reason))
            continue
        if record.text is not None:
            found = encodings.get(record.text)
            record.encoding = found or encodings.setdefault(record.text, text_encoding(record.text))
        price = rules.prices.price(record.provider, record.country, record.type)
        if price is None and needs_price:
            where = f"{record.provider} to {record.country or 'this destination'}"
            refused.append(
                _refusal(record, RecipientCode.PRICE_UNKNOWN, f"no price for {where}: a spend limit needs one")
            )
            continue
        if price is not None:
            written = amounts.get((price, record.segments or 1))
            if written is None:
                written = amounts[price, record.segments or 1] = estimate(price, record.segments)
            record.price, record.cost = written
            record.currency = rules.prices.currency
        kept.append(record)
    if not refused:
        return list(records), list(errors)
    return kept, sorted([*errors, *refused], key=lambda e: e.index)


def _costs(records: Sequence[MessageRecord]) -> list[Decimal]:
    return [Decimal(r.cost) if r.cost is not None else Decimal(0) for r in records]


def _spend_refusals(
    records: Sequence[MessageRecord], rules: Rules, owner: str | None, *, busy: bool = False
) -> list[RecipientError]:
    """`busy`: refused because the ledger stayed busy, not for a limit (`spend.Reserved`). Without any limit on the
    request's scopes that is the only way to be refused here (a retried batch's recorded refusals included)."""
    currency = rules.prices.currency
    deployment = rules.limits.monthly_spend  # 0 is a limit (a spend freeze), not its absence
    limits = [f"the deployment's {deployment} {currency}"] if deployment is not None else []
    key_limit = rules.limits.key_limit(owner)
    if key_limit is not None:
        limits.append(f"this API key's {key_limit} {currency}")
    if busy or not limits:
        message = SPEND_BUSY
    else:
        message = "its estimated cost would cross this month's spend limit (" + ", ".join(limits) + ")"
    return [_refusal(r, RecipientCode.SPEND_LIMIT_REACHED, message) for r in records]


def hold_spend(
    ledger: SpendLedger,
    records: Sequence[MessageRecord],
    rules: Rules,
    *,
    batch_id: str,
    owner: str | None,
    now: datetime,
    expires_at: int,
    dry_run: bool = False,
    body: str | None = None,
) -> list[RecipientError]:
    """Reserves the cost of the first recipients that fit (`dry_run`: only works out how many would); returns the
    refusals of the others. Nothing priced and no limit: no reservation, no request. `body`: the digest of the body
    reserved for (raises HeldForAnotherBody when the batch id holds another body's reservation)."""
    costs = _costs(records)
    if not rules.limits.any_spend_limit and not any(costs):
        return []
    request = spend.Request(batch_id=batch_id, owner=owner, costs=costs, now=now, expires_at=expires_at, body=body)
    if dry_run:
        return _spend_refusals(records[spend.peek(ledger, request, rules.limits) :], rules, owner)
    kept, busy = spend.reserve(ledger, request, rules.limits)
    if busy:
        log.warning("spend not reserved: the counters stayed busy", extra={"refused": len(records) - kept})
    return _spend_refusals(records[kept:], rules, owner, busy=busy)


def release(ledger: SpendLedger, record: MessageRecord) -> None:
    """Gives a recipient's reservation back: it ended FAILED or REJECTED before reaching a provider."""
    if not record.cost or not Decimal(record.cost):
        return
    amount = Decimal(record.cost)
    ledger.release(spend.month_of(record.created_at), dict.fromkeys(spend.scopes_of(record.owner), amount))


def batch_totals(records: Sequence[MessageRecord]) -> dict[str, int | str | None]:
    """A batch header's totals: SMS parts (of the recipients whose parts are known) and estimated cost."""
    segments = [r.segments for r in records if r.segments is not None]
    priced = [r for r in records if r.cost is not None]
    return {
        "segments": sum(segments) if segments else None,
        "cost": money(sum((Decimal(r.cost) for r in priced if r.cost), Decimal(0))) if priced else None,
        "currency": priced[0].currency if priced else None,
    }
