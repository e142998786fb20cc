"""The two kinds of pack that are not sent: a pack whose earlier attempt was interrupted, and a settle pack.

- *Interrupted* (`settle_interrupted`): the claim had expired, with no outcome recorded, so the dispatcher that
  claimed it died, maybe after the provider took it. Nothing is sent again: what it had noted on the claim as put
  back on a queue is queued again (same pack ids), the others become SENDING (unknown outcome) and get their
  settle pack. When the dead holder was sending a redrive (the redriven pack itself, after its spend was charged
  again, or a pack that redrive queued), the records still FAILED from the dead-lettering are among those: the
  redrive sends them again.
- *Settle* (`settle_unknown`): unknown outcomes whose window has passed; `unknown_outcomes` settles them by its
  policy (FAILED, or sent once more).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from globesms.dispatch.deps import DispatchDeps
from globesms.dispatch.failover import Rerouted, reroute
from globesms.dispatch.records import SavedOutcomes, apply_held, held_since_pack, outcome_records, save_outcomes
from globesms.dispatch.requeue import in_pack, queue_moved, requeue
from globesms.dispatch.summary import DispatchSummary
from globesms.dispatch.unknown_outcomes import (
    MAX_DELAY_SECONDS,
    queue_settle_pack,
    settle,
    settled_among,
    wait_left,
)
from globesms.domain.clock import iso
from globesms.domain.history import RECEIPT_FAILOVER_STEP, has_step
from globesms.domain.status import Status
from globesms.errors import DispatchCode, ErrorCategory, ProviderError
from globesms.guardrails.charges import charged_moves
from globesms.guardrails.release import release_unsent
from globesms.models.outbound import SendOutcome
from globesms.models.packs import DispatchPack
from globesms.models.records import MessageRecord
from globesms.ports import ClaimNotes, Requeued
from globesms.receipts.failover import queue_pending_resends, resend_pending
from globesms.reconcile.deadline import BUCKET_SECONDS, deadline_entries
from globesms.webhooks.events import queue_status_events

INTERRUPTED = ProviderError(
    ErrorCategory.UNKNOWN_OUTCOME,
    DispatchCode.DISPATCH_INTERRUPTED,
    "an earlier attempt stopped after claiming this pack; the provider may have sent it",
)


def settle_interrupted(pack: DispatchPack, deps: DispatchDeps, *, now: datetime) -> DispatchSummary:
    """The earlier attempt may have sent the pack and even recorded some outcomes (which receipts may since have
    moved on): recipients it noted as never sent go back on their queues; the others still as accept wrote them
    become SENDING; nothing recorded is overwritten. Every SENDING one gets its settle pack. What it recorded, it
    may have died before following up on (`_follow_up_recorded`)."""
    notes = deps.claims.notes(pack.pack_id)
    # Dead-lettered, and no redrive of that got to its mark: the holder that died (a redrive of this very pack, the
    # only claim a DEAD pack gets) called nobody, whatever earlier redrive the pack itself came from.
    unsent_since = notes.dead_lettered if notes.redriving is None else None
    redrive = None if unsent_since is not None else _redrive_of(pack, notes)
    if redrive is not None:  # what is queued again below carries it, as the dead holder's own copies do
        pack = pack.model_copy(update={"redrive_of": iso(redrive)})
    requeued = in_pack(pack, notes.requeued)
    unmovable = _queue_again(pack, deps, requeued, now)
    current = deps.store.get_messages([r.id for r in pack.recipients])
    if unsent_since is not None:
        _give_back_dead_lettered(deps, current.values(), unsent_since)
    put_back = requeued.never_sent - _stranded(pack, current, unmovable)
    kept = put_back | (settled_among(pack, current) if redrive else set())
    unrecorded = _unrecorded(pack, current, kept, redrive)
    records = outcome_records(
        pack, [(i, SendOutcome(message_id=pack.recipients[i].id, error=INTERRUPTED)) for i in unrecorded], now
    )
    # Receipts that came while the record was not written are applied.
    saved = save_outcomes(deps.store, deps.receipts, records, now, route_stats=deps.route_stats)
    records = saved.records
    not_recorded = put_back | set(unrecorded)  # a set: a pack holds up to 1,000 recipients
    recorded = [current[r.id] for i, r in enumerate(pack.recipients) if r.id in current and i not in not_recorded]
    followed = _follow_up_recorded(deps, pack, recorded, now)
    recorded = followed.records
    latest = {**current, **{r.id: r for r in [*recorded, *records]}}
    sending = [
        i
        for i, r in enumerate(pack.recipients)
        if r.id in latest and latest[r.id].status is Status.SENDING and latest[r.id].provider is pack.provider
    ]
    queue_settle_pack(deps.queues, pack, sending, now=now, policy=deps.policies.unknown_outcomes)
    # The recorded ones' events too: the earlier attempt may have died before queueing them (ids are stable).
    not_queued = queue_status_events(deps.webhooks, [*records, *recorded], now)
    deps.claims.finish(pack.pack_id)
    return DispatchSummary(
        submitted=0,
        failed=0,
        unknown=sum(r.status is Status.SENDING for r in records),
        skipped=len(pack.recipients) - len(records),
        webhooks_not_queued=not_queued,
        delivered=saved.delivered + followed.delivered,
        undelivered=saved.undelivered + followed.undelivered,
        route_stats_not_written=int(not saved.route_stats_written) + int(not followed.route_stats_written),
    )


def _unrecorded(
    pack: DispatchPack, current: Mapping[str, MessageRecord], left_out: set[int], redrive_of: datetime | None
) -> list[int]:
    """The recipients the earlier attempt neither recorded nor noted as put back on a queue (`left_out`): as accept
    wrote them (ACCEPTED, QUEUED). A record QUEUED for a resend that this pack's recipient knows nothing of was
    recorded: a receipt held until the earlier attempt's write resent it (`receipts.failover`), and it is not this
    pack's to overwrite. A pack built for the resend (its own, or one a failover made of it) carries the resend step
    in its recipient's history: its QUEUED recipient is unrecorded. When the earlier attempt was sending a redrive of
    a dead-lettering (`redrive_of`), a record FAILED no later than that is the dead-lettering's, not the earlier
    attempt's (whose own writes come after): unrecorded too, but for those the redrive does not send (`left_out`:
    a resend pack's settled recipients)."""

    def recorded(record: MessageRecord, history: Sequence[Mapping[str, Any]] | None) -> bool:
        if redrive_of is not None and record.status is Status.FAILED and _stamp(record) <= redrive_of:
            return False
        resent_since = resend_pending(record) and not has_step(history, RECEIPT_FAILOVER_STEP)
        return record.status not in (Status.ACCEPTED, Status.QUEUED) or resent_since

    return [
        i
        for i, r in enumerate(pack.recipients)
        if i not in left_out and not (r.id in current and recorded(current[r.id], r.history))
    ]


def _queue_again(pack: DispatchPack, deps: DispatchDeps, requeued: Requeued, now: datetime) -> set[int]:
    """What the dead holder noted as put back on a queue, queued again under the same pack ids: a copy that did
    reach a queue is claimed once, whichever comes first. Returns the positions it noted as moved to their next
    provider that cannot move now: the template registry changed since (that provider's version removed)."""
    requeue(
        deps.queues,
        pack,
        requeued.retried,
        requeued.deferred,
        deferred_delay=1,
        quiet=requeued.quiet,
        store=deps.store,
    )
    if not requeued.failed_over:
        return set()
    moved = reroute(
        pack, requeued.failed_over, reasons={}, now=now, templates=deps.templates, prices=deps.price_table()
    )
    # Charged once: the dead holder charged them before queueing, or its charge failed (then it queued them priced
    # as they were, and this copy is priced so if this charge fails too).
    moved = Rerouted(charged_moves(deps.spend, pack, moved.packs, taking_over=True), moved.moved)
    queue_moved(deps.queues, moved)
    return set(requeued.failed_over) - set(moved.moved)


def _stranded(pack: DispatchPack, current: Mapping[str, MessageRecord], unmovable: set[int]) -> set[int]:
    """Of the recipients noted as moved that cannot move now (`unmovable`), those still this provider's: the dead
    holder queues the moved pack before it records the move, so whether their pack reached the next provider's
    queue is unknown. They are settled as unknown outcomes (SENDING, then their settle pack) rather than left QUEUED
    for good; one recorded at the next provider already went there."""
    return {
        i
        for i in unmovable
        if pack.recipients[i].id not in current or current[pack.recipients[i].id].provider is pack.provider
    }


def _give_back_dead_lettered(deps: DispatchDeps, current: Iterable[MessageRecord], dead_lettered: datetime) -> None:
    """The pack was dead-lettered, and the holder that died after it never got to a redrive's call (no mark): a
    redrive that died between charging the spend again and marking the claim, or before. Nobody was texted since:
    the records still FAILED from the dead-lettering give their spend back (once: a no-op where it was not charged
    again), as the dead-lettering did."""
    if deps.spend is not None:
        release_unsent(deps.spend, [r for r in current if r.status is Status.FAILED and _stamp(r) <= dead_lettered])


def _redrive_of(pack: DispatchPack, notes: ClaimNotes) -> datetime | None:
    """When the dead-lettering the earlier attempt was redriving happened: the redriven pack's claim says so once
    the redrive got past its charge (`mark_redriving`; a redrive that died before it sent nothing), a pack it queued
    carries it (`DispatchPack.redrive_of`). None: not a redrive."""
    carried = None if pack.redrive_of is None else datetime.fromisoformat(pack.redrive_of)
    known = [moment for moment in (carried, notes.redriving) if moment is not None]
    return max(known, default=None)


def _stamp(record: MessageRecord) -> datetime:
    return datetime.fromisoformat(record.updated_at)


def _follow_up_recorded(
    deps: DispatchDeps, pack: DispatchPack, recorded: Sequence[MessageRecord], now: datetime
) -> SavedOutcomes:
    """What the earlier attempt does with or right after writing its records, done again: it may have died before.
    The receipts that arrived before its write applied (`apply_held`: nothing else would ever apply them). The
    deadline entries of those SUBMITTED (written in the records' batch writes, not atomically with them: a
    record without its entry is never reconciled), dated no earlier than the next minute, since the reconcile run
    reads no entry behind its watermark (an entry listing a message twice, or one settled since, is passed over).
    The resends of early UNDELIVERED receipts queued (harmless twice: a resend's pack is claimed once). Not the
    spend of those recorded FAILED: a FAILED record may be an earlier, dead-lettered attempt's whose spend was
    given back and charged again by the redrive that died; a reservation kept makes the limit stricter, never
    crossed. Returns the records as they now are."""
    # The pack's provider's receipts only (`apply_held_receipts` looks up one provider's): a packmate an early
    # UNDELIVERED receipt moved to another provider has its own there.
    followed = apply_held(
        deps.receipts,
        [r for r in recorded if r.provider is pack.provider],
        now,
        failover=True,
        held_since=held_since_pack(pack),
        route_stats=deps.route_stats,
    )
    applied = {r.id: r for r in followed.records}
    latest = [applied.get(r.id, r) for r in recorded]
    entries = deadline_entries(latest)
    if entries:  # in the next minute at the earliest: a run that started meanwhile may have read this one already
        at_least = int(deps.clock()) + BUCKET_SECONDS
        deps.store.put_messages([], [replace(e, due_at=max(e.due_at, at_least)) for e in entries])
    queue_pending_resends(deps.queues, deps.webhooks, latest, now)
    return followed._replace(records=latest)


def settle_unknown(pack: DispatchPack, deps: DispatchDeps, *, now: datetime) -> DispatchSummary:
    wait = wait_left(pack, now)
    if wait:
        # Early (a window longer than SQS's longest delay, or a redelivery): back on the queue for the rest of it.
        deps.queues.send_packs(pack.provider, [pack], delay_seconds=min(MAX_DELAY_SECONDS, wait))
        deps.claims.release(pack.pack_id)
        # Nothing new: its unknown outcomes were counted where they became unknown (`RecipientsUnknownOutcome`), not
        # again at each hop.
        return DispatchSummary(submitted=0, failed=0, unknown=0)
    settled = settle(
        pack,
        store=deps.store,
        receipts=deps.receipts,
        queues=deps.queues,
        webhooks=deps.webhooks,
        now=now,
        policy=deps.policies.unknown_outcomes,
    )
    deps.claims.finish(pack.pack_id)
    return DispatchSummary(
        submitted=0,
        failed=len(settled.failed),
        unknown=0,
        retried=settled.resent,
        skipped=settled.left,
        expired=len(settled.failed),
        webhooks_not_queued=settled.webhooks_not_queued,
    )
