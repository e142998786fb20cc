"""A dry run: every check a send runs, answered as a quote, with nothing written, reserved, queued or sent.

The spend check reads the counters as they stand (one read, only when a limit is configured). The recipients are
planned under a fixed batch id, so a weighted route picks the same provider for the same body every time (a real
send's batch id differs, so its weighted choice may too)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from globesms.accept.planning import plan_batch
from globesms.accept.service import check_quiet_hours, check_send_at
from globesms.domain.money import money
from globesms.guardrails import gate, otp_guard
from globesms.guardrails.ports import SpendLedger
from globesms.models.api import MessageSpec
from globesms.models.errors import RecipientError
from globesms.models.guardrails import QuotedMessage, QuoteResponse, QuoteTotals
from globesms.models.records import message_id

DRY_RUN_BATCH = "dry-run"


def quote(
    specs: Sequence[MessageSpec],
    *,
    now: datetime,
    retention_days: int,
    ledger: SpendLedger,
    owner: str | None,
    otp: otp_guard.OtpGuard | None = None,
) -> QuoteResponse:
    check_send_at(specs, now, retention_days)  # a quote is always new work
    check_quiet_hours(specs)
    rules = gate.current_rules()
    plan = plan_batch(specs, batch_id=DRY_RUN_BATCH, now=now, retention_days=retention_days, rules=rules, owner=owner)
    stopped: list[RecipientError] = []
    if otp is not None:
        stopped = otp_guard.screen(
            otp, plan.records, rules.limits, batch_id=DRY_RUN_BATCH, owner=owner, now=now, expires_at=0, dry_run=True
        )
    held = {message_id(DRY_RUN_BATCH, e.index) for e in stopped}
    candidates = [r for r in plan.records if r.id not in held]
    refused = gate.hold_spend(
        ledger, candidates, rules, batch_id=DRY_RUN_BATCH, owner=owner, now=now, expires_at=0, dry_run=True
    )
    records = candidates[: len(candidates) - len(refused)]
    errors = sorted([*plan.errors, *stopped, *refused], key=lambda e: e.index)
    costs: dict[str, Decimal] = {}
    for record in records:
        if record.cost is not None and record.currency is not None:
            costs[record.currency] = costs.get(record.currency, Decimal(0)) + Decimal(record.cost)
    messages = [
        QuotedMessage(
            to=r.to,
            provider=r.provider,
            segments=r.segments,
            encoding=r.encoding,
            price=r.price,
            cost=r.cost,
            currency=r.currency,
        )
        for r in records
    ]
    totals = QuoteTotals(
        recipients=len(records),
        segments=sum(r.segments or 0 for r in records),
        cost={currency: money(amount) for currency, amount in costs.items()},
    )
    return QuoteResponse(accepted=len(records), rejected=len(errors), messages=messages, errors=errors, totals=totals)
