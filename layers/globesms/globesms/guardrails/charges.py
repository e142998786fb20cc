"""Charging what a message costs beyond what accept reserved for it, once.

Accept reserves each recipient's estimated cost at the provider routing chose (`gate.hold_spend`). Two sends cost
something else, and are charged when they happen:

- **A failover at dispatch** (`dispatch/failover.py`): a recipient the provider refused for its configuration, or
  never called because it was down, moves to the next provider of its route. It reached no provider before, so it
  costs what the new provider charges instead: the moved record is priced for that provider (`repriced`), and the
  difference to what it carried is charged (`charged_moves`; negative, given back, when the new provider is
  cheaper). A registered template is reserved as one part at Tencent or Huawei and may reach Alibaba as its text
  of up to 10 parts: that difference crossed the month's limit unseen until 2026-12-07.
- **A resend after an UNDELIVERED receipt** (`receipts/failover.py`): the first provider has usually billed its
  attempt, so the resend costs its whole estimate at the provider it goes through, charged by the dispatcher that
  claims its pack, before its call (`charge_resend`).

Each once per message, kind and provider (`SpendCharges.charge_once`): a failover repeated after a crash, a
takeover, a redelivered resend pack find their charge made. Neither checks a limit: the message was accepted within
it, and moving or resending it is the gateway keeping its promise to deliver an accepted message; the month's
counters then hold what was spent, so the next accept sees it. A move or resend can therefore take the month past
its limit by the charges of the messages in flight at that moment (docs/guardrails.md).

Not charged: a resend after an unknown outcome (`unknown_outcome_policy` `resend`, the same provider: whether the
first call was billed is what is unknown).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Protocol

from globesms.domain.money import estimate
from globesms.guardrails.ports import Charge, SpendCharges
from globesms.guardrails.spend import month_of, scopes_of
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.packs import DispatchPack

logger = logging.getLogger(__name__)  # a child of the Powertools logger "globesms": its handler writes these too


class Prices(Protocol):
    """The price table (`guardrails.prices.PriceTableDoc`), as a failover and a resend read it."""

    @property
    def currency(self) -> str: ...

    def price(self, provider: ProviderName, country: str | None, message_type: MessageType) -> Decimal | None: ...


def repriced(
    prices: Prices | None,
    provider: ProviderName,
    country: str | None,
    message_type: MessageType,
    segments: int | None,
    currency: str | None,
) -> tuple[str, str] | None:
    """A recipient's price and estimated cost at `provider` (money strings), or None when they cannot be known: no
    price table, no price for this provider and country, or a table in another currency than the one the message
    was priced in (`currency`; the counters add amounts of one currency). The caller then keeps the estimate it has."""
    if prices is None or (currency is not None and prices.currency != currency):
        return None
    price = prices.price(provider, country, message_type)
    return None if price is None else estimate(price, segments)


def _cost(value: str | None) -> Decimal:
    return Decimal(value) if value else Decimal(0)


def moved_charges(pack: DispatchPack, moved: Iterable[DispatchPack]) -> dict[Charge, Decimal]:
    """What each recipient of `pack` that failover put in the `moved` packs costs beyond what it carried: the moved
    copy's cost less its own, by `Charge` (message id, "move", the new provider)."""
    carried = {r.id: _cost(r.cost) for r in pack.recipients}
    return {
        Charge(r.id, "move", target.provider.value): _cost(r.cost) - carried.get(r.id, Decimal(0))
        for target in moved
        for r in target.recipients
    }


def charged_moves(
    ledger: SpendCharges | None, pack: DispatchPack, moved: Mapping[ProviderName, Sequence[DispatchPack]]
) -> dict[ProviderName, list[DispatchPack]]:
    """The packs a failover queues (`moved`, by provider), their differences charged once (`moved_charges`). When
    the ledger fails (logged), they move anyway (an accepted message is delivered if a provider can) with the price
    and cost each recipient carried before, so that what its record says, and a later release gives back, is what
    was reserved for it; a takeover that moves them again charges them then. Without a ledger: as they are."""
    if ledger is None:
        return {provider: list(packs) for provider, packs in moved.items()}
    amounts = {c: a for c, a in moved_charges(pack, [p for ps in moved.values() for p in ps]).items() if a}
    if not amounts:
        return {provider: list(packs) for provider, packs in moved.items()}
    try:
        ledger.charge_once(month_of(pack.created_at), scopes_of(pack.owner), amounts, pack.expires_at)
    except Exception:
        logger.exception("failover's spend difference not charged", extra={"recipients": len(amounts)})
        return {provider: [_priced_as(p, pack) for p in packs] for provider, packs in moved.items()}
    return {provider: list(packs) for provider, packs in moved.items()}


def _priced_as(moved: DispatchPack, pack: DispatchPack) -> DispatchPack:
    """`moved` with each recipient's price and cost as `pack` carried them (the split does not depend on them:
    `failover.PRICED_BYTES`)."""
    carried = {r.id: {"price": r.price, "cost": r.cost} for r in pack.recipients}
    recipients = [r.model_copy(update=carried[r.id]) for r in moved.recipients]
    return moved.model_copy(update={"recipients": recipients, "currency": pack.currency})


def resend_repriced(pack: DispatchPack, prices: Prices | None) -> DispatchPack:
    """A resend's pack (one message) priced for the provider it goes through; as it was where that cannot be known
    (`repriced`)."""
    recipients = []
    for recipient in pack.recipients:
        kind = pack.contents[recipient.c].type
        found = repriced(prices, pack.provider, recipient.country, kind, recipient.segments, pack.currency)
        update = {} if found is None else {"price": found[0], "cost": found[1]}
        recipients.append(recipient.model_copy(update=update) if update else recipient)
    if recipients == pack.recipients:
        return pack
    assert prices is not None  # something was repriced
    return pack.model_copy(update={"recipients": recipients, "currency": pack.currency or prices.currency})


def charge_resend(ledger: SpendCharges, pack: DispatchPack) -> Decimal:
    """Charges a resend's cost at its provider once, before its call. Unlike a failover's, an error propagates:
    the pack is not sent without it (the next delivery charges, then sends), since an uncharged resend is spend the
    counters never see."""
    amounts = {Charge(r.id, "resend", pack.provider.value): _cost(r.cost) for r in pack.recipients if r.cost}
    if not amounts:
        return Decimal(0)
    return ledger.charge_once(month_of(pack.created_at), scopes_of(pack.owner), amounts, pack.expires_at)
