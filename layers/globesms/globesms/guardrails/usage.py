"""GET /v1/usage: this month's spend and limits, and the share of the deployment's limit used (the metric the 80 %
alarm watches)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from globesms.guardrails import spend
from globesms.guardrails.limits import current_limits
from globesms.guardrails.ports import SpendLedger
from globesms.guardrails.prices import current_prices, money
from globesms.models.guardrails import SpendView, UsageView


def usage(ledger: SpendLedger, *, owner: str | None, now: datetime) -> UsageView:
    limits = current_limits()
    month = spend.month_of(now)
    scopes = spend.scopes_of(owner)
    spent = ledger.spent(month, scopes)
    deployment = _view(spent[spend.DEPLOYMENT], limits.monthly_spend)
    key = _view(spent[spend.key_scope(owner)], limits.key_limit(owner)) if owner else None
    return UsageView(month=month, currency=current_prices().currency, deployment=deployment, key=key)


def _view(spent: Decimal, limit: Decimal | None) -> SpendView:
    return SpendView(spent=money(spent), limit=None if limit is None else money(limit))


def used_percent(ledger: SpendLedger, *, now: datetime) -> float | None:
    """The share of the deployment's monthly limit reserved so far, in percent; None without a limit (no read)."""
    limit = current_limits().monthly_spend
    if limit is None:
        return None
    spent = ledger.spent(spend.month_of(now), [spend.DEPLOYMENT])[spend.DEPLOYMENT]
    return 100.0 if not limit else float(spent * 100 / limit)
