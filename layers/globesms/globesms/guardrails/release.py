"""Giving a reservation back: a recipient that dispatch records FAILED without a provider having taken it (its own
refusal, a provider's refusal of the number or of the request, a failover with no provider left, a transient error
on the pack's last attempt), that it records EXPIRED with `VALIDITY_LAPSED` (never sent), or that a cancel moved to
CANCELED before its release (scheduling/cancel.py), will never be charged,
so its estimated cost is subtracted from the month's counters it was reserved against. Once per recipient: the
ledger keeps a release marker per message (`SpendReleases`).

A redrive of a dead-lettered pack charges its recipients' given-back cost again before it sends them
(`recharge_redriven`), once, so the month's counters hold what the redrive spends.

An accept that stopped for good (reconcile/interrupted.py) gives back the part of its batch's reservation that no
written record holds (`release_unwritten`): the recipients it reserved for and never wrote, which will never be sent.
A resend after an UNDELIVERED receipt that ends without reaching its provider (`resend_never_reached`) gives back
what was charged for it (guardrails/charges.py: its own charge and its moves since), once; its first attempt's
reservation stays, that provider having taken it.

An accept that stopped for good gives back the part of its reservation that no written record holds; a record
dispatched since may carry another cost than accept reserved for it, from which the charges made since tell it
(`charges.reserved_share`).

Not given back: an unknown outcome (the provider may have sent it, even if it later expires FAILED), anything a
provider accepted (a later UNDELIVERED or REJECTED receipt may still be charged), a recipient with no cost.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from decimal import Decimal

from globesms.domain.history import RECEIPT_FAILOVER_STEP, has_step, sent_before
from globesms.domain.status import Status
from globesms.errors import DispatchCode, ErrorCategory
from globesms.guardrails.charges import charges_since_resend, resend_charges
from globesms.guardrails.ports import Charge, SpendReleases
from globesms.guardrails.spend import month_of, scopes_of
from globesms.models.packs import DispatchPack
from globesms.models.records import MessageRecord, message_id

# A child of the Powertools logger "globesms": its handler (JSON, the number mask) writes these lines too.
logger = logging.getLogger(__name__)


def _ended_unsent(record: MessageRecord) -> bool:
    """Its current attempt ended without reaching its provider, nor possibly so: FAILED or CANCELED without a
    provider message id and not an unknown outcome, or EXPIRED for its validity before any call."""
    lapsed = record.status is Status.EXPIRED and record.error_code == DispatchCode.VALIDITY_LAPSED
    return (
        (record.status in (Status.FAILED, Status.CANCELED) or lapsed)
        and record.provider_message_id is None
        and record.error_category != ErrorCategory.UNKNOWN_OUTCOME
    )


def never_reached_a_provider(record: MessageRecord) -> bool:
    """Its cost can be given back: no attempt of it reached a provider, nor may have. A resend's record (after an
    UNDELIVERED receipt, or an unknown outcome) does not qualify however the resend ends: its first attempt did
    reach one, or may have (`domain.history.sent_before`)."""
    return (
        _ended_unsent(record) and bool(record.cost) and Decimal(record.cost or 0) > 0 and not sent_before(record.events)
    )


def resend_never_reached(record: MessageRecord) -> bool:
    """A resend after an UNDELIVERED receipt that ended without reaching the provider it went to (as
    `never_reached_a_provider` says, but for its first attempt): what was charged for it is given back; the first
    attempt's reservation is not (that provider took it)."""
    return _ended_unsent(record) and has_step(record.events, RECEIPT_FAILOVER_STEP)


def release_unsent(ledger: SpendReleases, records: Sequence[MessageRecord]) -> Decimal:
    """Gives back the reservations of the records that never reached a provider, and the charges of the resends
    that never reached theirs (one ledger call per owner and month: a pack's recipients share both). A ledger error
    is logged and swallowed: the SMS outcomes are recorded already, and a reservation kept too long only makes the
    limit stricter, never crossed."""
    groups: dict[tuple[str, str | None], dict[str, Decimal]] = {}
    expiry: dict[tuple[str, str | None], int | None] = {}
    charges: dict[tuple[str, str | None], list[Charge]] = {}
    for record in records:
        group = (month_of(record.created_at), record.owner)
        if never_reached_a_provider(record):
            groups.setdefault(group, {})[record.id] = Decimal(record.cost or 0)
            expiry.setdefault(group, record.expires_at)
        elif resend_never_reached(record):
            charges.setdefault(group, []).extend(resend_charges(record))
    released = Decimal(0)
    for (month, owner), amounts in groups.items():
        try:
            released += ledger.release_once(month, scopes_of(owner), amounts, expiry[(month, owner)])
        except Exception:
            logger.exception("spend not given back", extra={"recipients": len(amounts), "month": month})
    for (month, owner), made in charges.items():
        try:
            released += ledger.uncharge_once(month, scopes_of(owner), made)
        except Exception:
            logger.exception("resends' charges not given back", extra={"charges": len(made), "month": month})
    return released


#: The release marker of a batch's unwritten rest: a sequence number no recipient has (a request holds at most
#: models.limits.MAX_RECIPIENTS_PER_REQUEST, numbered from 0; a test holds the two apart), so it is given back once.
UNWRITTEN_SEQ = 10_000


def release_unwritten(
    ledger: SpendReleases, *, batch_id: str, owner: str | None, written_cost: Decimal, expires_at: int | None, now: int
) -> Decimal:
    """Gives back what the batch reserved beyond `written_cost` (what accept reserved for every record it wrote:
    each was reserved for, a batch reserving once; a record dispatched since may carry another cost, from which
    `charges.reserved_share` tells it), once, to the counters it was reserved against. Nothing once the batch's
    items have expired (`expires_at` <= `now`): the table's TTL may have deleted some of its records already, whose
    cost would then be given back though they were sent. A ledger error is logged and swallowed, as
    `release_unsent`'s."""
    if expires_at is not None and expires_at <= now:
        return Decimal(0)
    try:
        held = ledger.reservation(batch_id)
        rest = Decimal(0) if held is None else held.amount - written_cost
        if held is None or rest <= 0:
            return Decimal(0)
        unwritten = {message_id(batch_id, UNWRITTEN_SEQ): rest}
        return ledger.release_once(held.month, held.scopes or scopes_of(owner), unwritten, expires_at)
    except Exception:
        logger.exception("unwritten recipients' spend not given back", extra={"batch_id": batch_id})
        return Decimal(0)


def recharge_redriven(ledger: SpendReleases, pack: DispatchPack, *, leave_out: Collection[int] = ()) -> Decimal:
    """Before a redriven pack is sent: charge again what its dead-lettering gave back (only the recipients given
    back, each once: `SpendReleases.recharge_once`; for a resend after an UNDELIVERED receipt, or a pack made of
    one, the charges its give-back noted: `recharge_given_back`), but for the positions in `leave_out` (not sent
    this time). Unlike a release, an error propagates: sent without it, the month's counters would stay short of
    what the redrive spends, and the limit would let more through."""
    sent = [r for i, r in enumerate(pack.recipients) if i not in leave_out]
    amounts = {r.id: Decimal(r.cost) for r in sent if r.cost and Decimal(r.cost) > 0}
    given_back = [
        charge
        for r in sent
        for charge in charges_since_resend(r.id, pack.contents[r.c].route, pack.provider, r.history)
    ]
    # A pack's recipients are its batch's (created_at is the batch's, as their records'), of one owner.
    month, scopes = month_of(pack.created_at), scopes_of(pack.owner)
    charged = ledger.recharge_once(month, scopes, amounts) if amounts else Decimal(0)
    return charged + (ledger.recharge_given_back(month, scopes, given_back) if given_back else Decimal(0))
