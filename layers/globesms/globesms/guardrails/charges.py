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
takeover, a redelivered resend pack find their charge made (a takeover's copies carry the cost it was charged,
`charged_moves`). A resend that ends without reaching its provider gives its charges back
(`release.release_unsent`), and a redrive of it charges them again. Neither checks a limit: the message was
accepted within it, and moving or resending it is the gateway keeping its promise to deliver an accepted
message; the month's counters then hold what was spent, so the next accept sees it. A move or resend can
therefore take the month past its limit by the charges of the messages in flight at that moment
(docs/guardrails.md).

Not charged: a resend after an unknown outcome (`unknown_outcome_policy` `resend`, the same provider: whether the
first call was billed is what is unknown).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from globesms.domain.history import earlier_attempt
from globesms.domain.money import estimate, money
from globesms.guardrails.ports import Charge, ChargeMade, DispatchSpend, SpendCharges
from globesms.guardrails.spend import month_of, scopes_of
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.packs import DispatchPack
from globesms.models.records import MessageRecord

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
    ledger: DispatchSpend | None,
    pack: DispatchPack,
    moved: Mapping[ProviderName, Sequence[DispatchPack]],
    *,
    taking_over: bool = False,
) -> dict[ProviderName, list[DispatchPack]]:
    """The packs a failover queues (`moved`, by provider), their differences charged once (`moved_charges`), each
    recipient's cost the one the ledger's charge says. `taking_over`: a dispatcher that died may have charged them
    before, with its own price table (their charges are read back: one Query). When the ledger fails (logged), they
    move anyway (an accepted message is delivered if a provider can), each costing what its charge says if one was
    made (read back), else what it carried before, so that what its record says, and a later release gives back,
    is what the counters hold for it; a takeover that moves them again charges the rest then. Without a ledger: as
    they are."""
    packs = {provider: list(ps) for provider, ps in moved.items()}
    if ledger is None or not packs:
        return packs
    amounts = {c: a for c, a in moved_charges(pack, [p for ps in packs.values() for p in ps]).items() if a}
    if not amounts and not taking_over:
        return packs
    try:
        added = ledger.charge_once(month_of(pack.created_at), scopes_of(pack.owner), amounts, pack.expires_at)
    except Exception:
        # Maybe partly made (a transaction of 90 each): each recipient carries what its charge, if any, says.
        logger.exception("failover's spend difference not charged", extra={"recipients": len(amounts)})
        return _priced_as_charged(ledger, pack, packs, all_charged=False)
    if added == sum(amounts.values(), Decimal(0)) and not taking_over and pack.redrive_of is None:
        return packs
    # Some may have been charged before (a takeover, a redrive moving them again), maybe under another price table
    # (changed since, or unreadable now): each recipient carries what its charge says, or a release would give back
    # what was never charged.
    return _priced_as_charged(ledger, pack, packs, all_charged=True)


def _priced_as_charged(
    ledger: DispatchSpend, pack: DispatchPack, packs: Mapping[ProviderName, list[DispatchPack]], *, all_charged: bool
) -> dict[ProviderName, list[DispatchPack]]:
    """`packs` with each recipient costing what `pack` carried plus the charge its move holds in the ledger (one
    Query of the batch's charges). When that cannot be read (logged): as this attempt priced them if `all_charged`
    (each charged now, here or before, most likely under the same table), else as they were carried."""
    try:
        made = {m.charge: m.amount for m in ledger.batch_charges(pack.batch_id)}
    except Exception:
        logger.exception("failover charges unreadable: moved recipients keep their best known cost")
        if all_charged:
            return dict(packs)
        made = {}
    return {provider: [_priced_as(p, pack, made) for p in ps] for provider, ps in packs.items()}


def _priced_as(moved: DispatchPack, pack: DispatchPack, made: Mapping[Charge, Decimal]) -> DispatchPack:
    """`moved` with each recipient costing what `pack` carried for it plus the difference its move was charged
    (`made`; none: as carried, with the price it carried). The split does not depend on them
    (`failover.PRICED_BYTES`)."""
    carried = {r.id: r for r in pack.recipients}
    recipients = []
    for r in moved.recipients:
        before = carried[r.id]
        charged = made.get(Charge(r.id, "move", moved.provider.value))
        if charged is None:
            recipients.append(r.model_copy(update={"price": before.price, "cost": before.cost}))
        elif _cost(before.cost) + charged != _cost(r.cost):
            # Charged under another price table: that cost, and the price per part it stands for.
            cost = _cost(before.cost) + charged
            price = money(cost / (r.segments or 1))
            recipients.append(r.model_copy(update={"price": price, "cost": money(cost)}))
        else:
            recipients.append(r)
    currency = pack.currency if not made else moved.currency
    return moved.model_copy(update={"recipients": recipients, "currency": currency})


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


def charge_resend(ledger: SpendCharges, pack: DispatchPack, *, carried: DispatchPack) -> Decimal:
    """Charges a resend's cost at its provider once, before its call (`pack`, priced for it: `resend_repriced`;
    `carried`, the pack as it came, whose costs the charge keeps: what the message cost before, from which the
    share accept reserved for it can be told, `reserved_share`). Unlike a failover's, an error propagates: the pack
    is not sent without it (the next delivery charges, then sends), since an uncharged resend is spend the counters
    never see."""
    amounts = {Charge(r.id, "resend", pack.provider.value): _cost(r.cost) for r in pack.recipients if r.cost}
    if not amounts:
        return Decimal(0)
    before = {Charge(r.id, "resend", pack.provider.value): _cost(r.cost) for r in carried.recipients}
    return ledger.charge_once(
        month_of(pack.created_at), scopes_of(pack.owner), amounts, pack.expires_at, carried=before
    )


def resend_charges(record: MessageRecord) -> list[Charge]:
    """The charges a resend of `record` after an UNDELIVERED receipt may have made (`charges_since_resend`)."""
    return charges_since_resend(record.id, record.route, record.provider, record.events)


def charges_since_resend(
    message_id: str,
    route: Sequence[ProviderName] | None,
    provider: ProviderName,
    history: Sequence[Mapping[str, Any]] | None,
) -> list[Charge]:
    """The charges a resend after an UNDELIVERED receipt may have made for a message now on `provider`: its own,
    at the provider after the one its first attempt was on (`history`'s resend step), and the moves from there at
    dispatch, to each provider of its `route` up to `provider`. None when it was not resent so."""
    left = _first_attempt_provider(history)
    providers = list(route or ())
    if left is None or left not in providers or provider not in providers:
        return []
    start, end = providers.index(left) + 1, providers.index(provider)
    if start > end:
        return []
    moves = [Charge(message_id, "move", p.value) for p in providers[start + 1 : end + 1]]
    return [Charge(message_id, "resend", providers[start].value), *moves]


def reserved_share(record: MessageRecord, made: Sequence[ChargeMade]) -> Decimal:
    """What accept reserved for `record`, told from the cost it carries now and the charges made for it since
    (`made`: its batch's, `SpendReleases.batch_charges`). Only the moves its record reflects count: to providers of
    its route up to the one it is on (a move charged whose new provider has not written the record yet left it at
    the cost it had). Resent after an UNDELIVERED receipt: the cost it carried before the resend (kept by the
    resend's charge) less the moves of its first attempt (to providers up to the one that attempt was on)."""
    route = [p.value for p in record.route or ()]
    mine = [m for m in made if m.charge.message_id == record.id]
    moves = {m.charge.provider: m.amount for m in mine if m.charge.kind == "move"}
    resend = next((m for m in mine if m.charge.kind == "resend" and m.carried is not None), None)
    left = _first_attempt_provider(record.events)
    if resend is not None and resend.carried is not None and left is not None and left.value in route:
        return resend.carried - _moves_up_to(moves, route, left.value)
    if record.provider.value not in route:
        return _cost(record.cost)  # no route: never moved
    return _cost(record.cost) - _moves_up_to(moves, route, record.provider.value)


def _moves_up_to(moves: Mapping[str, Decimal], route: Sequence[str], provider: str) -> Decimal:
    reached = set(route[: route.index(provider) + 1])
    return sum((amount for target, amount in moves.items() if target in reached), Decimal(0))


def _first_attempt_provider(history: Sequence[Mapping[str, Any]] | None) -> ProviderName | None:
    """The provider a resend after an UNDELIVERED receipt left (`domain.history.earlier_attempt`), or None."""
    left = earlier_attempt(history)
    return None if left is None else left[0]
