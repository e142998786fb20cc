"""Dispatching one pack: claim it, send it, record every recipient's outcome. The orchestration only; each decision
lives in the module named for it:

- `outcomes`: what becomes of each recipient (record, retry, fail over — the circuit-breaker skip included);
- `sending`: how the calls are made (the provider's rules checked first, the rate limits kept with `rate_limits`);
- `circuit_breaker`: when a provider counts as down;
- `requeue`: what goes back on a queue, under which pack id, after how long;
- `records`: an outcome as a message record;
- `recovery`: the packs that are not sent (an interrupted one, a settle pack), with `unknown_outcomes`;
- `holds`: a quiet-hours hold's packs (waiting again, or the hold ended, or found canceled: `canceled`);
- `summary`: what a dispatch reports; `deps`: what it works with.

A pack is sent at most once. Before calling the provider a dispatcher *claims* the pack (a conditional write with
a lease); a repeated SQS delivery of a pack that is done is skipped, one whose claim is still held by another
dispatcher is left for later (`PackBusy`), and one whose earlier attempt died after claiming (lease expired, no
outcome recorded) is not sent again (`recovery.settle_interrupted`). So a dispatcher that fails before its first
provider call releases the claim: nothing was sent, and the next delivery sends the pack.

Sending, recipients whose calls find no rate-limit permit in time go back on the queue (`requeue.deferred_pack`)
and the pack is finished like any other; nobody waits. A pack that failed as a whole (`RetryPack`) releases its
claim, so that SQS's next delivery sends it afresh. On its last attempt it is recorded FAILED instead; only on SQS's
last receive does it then go to the dead-letter queue with its claim released (for a redrive to send it): while
SQS would still deliver it, it is finished, or that delivery would send it again (a FAILED record turned SUBMITTED).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from globesms.consent.screen import current as opt_out_check
from globesms.dispatch.canceled import finish_cancel
from globesms.dispatch.circuit_breaker import BreakerUpdate, record_pack
from globesms.dispatch.deps import DispatchDeps, DispatchPolicies, Recorders
from globesms.dispatch.failover import Rerouted
from globesms.dispatch.holds import WaitNotNoted, ends_canceled_hold, take_over_hold, wait_or_end_hold
from globesms.dispatch.opt_outs import opted_out_positions
from globesms.dispatch.outcomes import OutcomeDecision, decide, skipped_for_open_breaker
from globesms.dispatch.permissions import denied_positions
from globesms.dispatch.quiet import quiet_delay, quiet_positions
from globesms.dispatch.records import (
    denied_record,
    held_since_pack,
    lapsed_record,
    opted_out_record,
    outcome_records,
    save_outcomes,
)
from globesms.dispatch.recovery import settle_interrupted, settle_unknown
from globesms.dispatch.requeue import MAX_PACK_ATTEMPTS, requeue_after_send
from globesms.dispatch.sending import LimitedSend, WatchedProvider, outbound_messages, send_all, send_within_limits
from globesms.dispatch.summary import DispatchSummary, PackBusy, ProviderCalls, RetryPack
from globesms.dispatch.unknown_outcomes import queue_settle_pack, resend_ids, settled_resends
from globesms.dispatch.validity import lapsed_positions
from globesms.domain.clock import iso
from globesms.domain.status import Status
from globesms.errors import DispatchCode, ErrorCategory, ProviderError
from globesms.guardrails.charges import charge_resend, charged_moves, resend_repriced
from globesms.guardrails.release import recharge_redriven, release_unsent
from globesms.models.outbound import SendOutcome
from globesms.models.packs import DispatchPack
from globesms.models.records import MessageRecord
from globesms.ports import BreakerState, Claim, Provider
from globesms.receipts.failover import is_resend_pack, queue_pending_resends
from globesms.routing.templates import TemplateRegistry
from globesms.routing.templates import registry as template_registry
from globesms.webhooks.events import queue_status_events

__all__ = [
    "CLAIM_LEASE_SECONDS",
    "DispatchDeps",
    "DispatchPolicies",
    "DispatchSummary",
    "PackBusy",
    "Recorders",
    "RetryPack",
    "dead_letter_unbuilt",
    "dispatch_pack",
]

# A child of the Powertools logger "globesms" (globesms.observability), whose handler writes these lines too.
logger = logging.getLogger(__name__)

#: A claim outlives the dispatcher's 30 s timeout: a dispatcher still inside it is alive; past it, it died.
CLAIM_LEASE_SECONDS = 120


def dispatch_pack(pack: DispatchPack, deps: DispatchDeps, *, now: datetime, last_attempt: bool) -> DispatchSummary:
    """Claim the pack, then send it, settle it (a settle pack) or recover it (an interrupted one). `last_attempt`:
    SQS will not deliver it again (this is its last receive: the dead-letter queue comes next). A pack also knows
    its own attempts (`MAX_PACK_ATTEMPTS`): its last one records transient failures FAILED too, but is no last
    receive."""
    claim = deps.claims.claim(pack.pack_id, now=now, lease_seconds=CLAIM_LEASE_SECONDS)
    if claim is Claim.DONE:
        return DispatchSummary(submitted=0, failed=0, unknown=0, skipped=len(pack.recipients))
    if claim is Claim.CANCELED:
        return finish_cancel(pack, deps, now=now)
    if claim is Claim.BUSY:
        raise PackBusy(pack.pack_id)
    if pack.purpose == "settle":
        return settle_unknown(pack, deps, now=now)
    as_queued, resending = pack, is_resend_pack(pack)
    if resending:  # priced for this provider before anything, a takeover's records included
        pack = resend_repriced(pack, deps.price_table())
    if claim is Claim.STALE:
        takeover = take_over_hold(pack, deps, now=now)
        if takeover.finished is not None:
            return takeover.finished
        if not takeover.as_claimed:
            return settle_interrupted(pack, deps, now=now)
    if claim is Claim.REDRIVEN:
        # First, even for a pack of a hold that waits again: its next wait carries the redrive (`redrive_of`) with
        # the spend charged again, as any pack a redrive queues does.
        pack = _redrive(pack, deps, now=now)
    try:
        held = wait_or_end_hold(pack, deps, now=now)
    except WaitNotNoted as exc:
        _let_go_unsent(pack, deps, exc, now=now, last_receive=last_attempt)
        raise
    if held is not None:
        return held
    if resending:
        _charge_resend(pack, as_queued, deps, now=now, last_receive=last_attempt)
    return _send_pack(pack, deps, now=now, last_receive=last_attempt)


def _charge_resend(
    pack: DispatchPack, as_queued: DispatchPack, deps: DispatchDeps, *, now: datetime, last_receive: bool
) -> None:
    """A resend after an UNDELIVERED receipt (`pack`, priced for this provider) has its cost charged once before
    its call (`guardrails.charges`). When the charge fails, nothing is sent: the pack is let go for the next
    delivery, as one whose call could not start."""
    if deps.spend is None:
        return
    try:
        charged = charge_resend(deps.spend, pack, carried=as_queued)
    except Exception as exc:
        _let_go_unsent(pack, deps, exc, now=now, last_receive=last_receive)
        raise
    if charged:
        logger.info("resend: its cost charged", extra={"amount": format(charged, "f")})


def _redrive(pack: DispatchPack, deps: DispatchDeps, *, now: datetime) -> DispatchPack:
    """A redrive brought a dead-lettered pack back: what its FAILED recipients gave back is charged again before
    they are sent, but for those of a resend pack that will not be (`settled_resends`: the round works them out the
    same way). Then the claim notes that the redrive goes on to its call (`mark_redriving`), and the pack carries
    when it was dead-lettered into the packs it queues (`redrive_of`): a dispatcher taking over after a death then
    knows the records FAILED from then may have been sent. When either fails, the pack stays dead-lettered-and-
    released for the next delivery to do it first."""
    try:
        _recharge_redriven(pack, deps)
        dead_lettered = deps.claims.mark_redriving(pack.pack_id)
    except Exception:
        deps.claims.release(pack.pack_id, dead_lettered_at=now)
        raise
    return pack if dead_lettered is None else pack.model_copy(update={"redrive_of": iso(dead_lettered)})


def _recharge_redriven(pack: DispatchPack, deps: DispatchDeps) -> None:
    if deps.spend is None:
        return
    charged = recharge_redriven(deps.spend, pack, leave_out=settled_resends(pack, deps.store))
    if charged:
        logger.info("redriven pack: its spend charged again", extra={"amount": format(charged, "f")})


@dataclass(frozen=True)
class _Round:
    """A pack's calls, and the recipients not called and why (by position in the pack)."""

    before: BreakerState  # the provider's breaker when the round started
    settled: set[int]  # resends a receipt settled meanwhile: neither sent nor recorded (`settled_resends`)
    lapsed: set[int]  # never sent, nor moved elsewhere: recorded EXPIRED
    #: Their country denied or their number opted out since accept (`_refused_since_accept`): never sent, their
    #: FAILED records written already.
    refused: list[MessageRecord]
    quiet: dict[int, int]  # inside their quiet hours: back on the queue, with the wait
    skipped: set[int]  # not called for the open breaker: moved elsewhere
    sending: list[int]  # the others
    sent: LimitedSend  # their outcomes, by index in `sending`
    #: The template registry `skipped` was moved with, which `decide` moves them with too (None: read when needed).
    #: Read once: the registry is cached for a minute, and a refresh between the two, after a template's version
    #: for the next provider was removed, left a skipped recipient neither called nor moved: QUEUED for good.
    templates: TemplateRegistry | None

    @functools.cached_property  # read by the breaker count and by the settling of the round: built once
    def outcome_at(self) -> dict[int, SendOutcome]:
        return {self.sending[j]: outcome for j, outcome in enumerate(self.sent.outcomes) if outcome is not None}

    @property
    def deferred(self) -> list[int]:
        """Called for, but found no rate-limit permit: back on the queue."""
        return [self.sending[j] for j in self.sent.unsent]


def _send_pack(pack: DispatchPack, deps: DispatchDeps, *, now: datetime, last_receive: bool) -> DispatchSummary:
    provider = WatchedProvider(deps.provider)
    try:
        round_ = _call_provider(pack, deps, provider, now=now)
    except Exception as exc:
        if not provider.called:
            _let_go_unsent(pack, deps, exc, now=now, last_receive=last_receive)
        raise
    outcome_at = round_.outcome_at
    calls = ProviderCalls.of(outcome_at.values(), breaker_opened=False)
    try:
        breaker = _count_in_breaker(pack, deps, outcome_at.values(), round_.before, now)
        calls = replace(calls, breaker_opened=breaker.opened)
        return _settle_round(pack, deps, round_, breaker, calls, now=now, last_receive=last_receive)
    except RetryPack:
        raise  # it carries the calls
    except Exception:
        # Counting, recording or requeueing failed after the round's calls: no summary will say what the provider
        # answered (a breaker count that failed says it opened nothing: its write's outcome is unknown).
        _report_unfinished(deps, calls)
        raise


def _let_go_unsent(
    pack: DispatchPack, deps: DispatchDeps, exc: Exception, *, now: datetime, last_receive: bool
) -> None:
    """Nothing of the pack reached a provider or a queue: the next delivery may do it all. Kept, the claim would
    expire and make every recipient an unknown outcome (`settle_interrupted`) though nobody was texted. On the last
    receive its records say FAILED first (a hold's pack ends its hold for that; one a cancel took is finished as
    canceled instead, nothing to dead-letter)."""
    if last_receive and ends_canceled_hold(pack, deps, now=now) is not None:
        return
    try:
        if last_receive:
            _fail_unsent(pack, Recorders.of(deps), exc, now=now)
    finally:  # after the records: until then a duplicate delivery finds the pack busy
        deps.claims.release(pack.pack_id, dead_lettered_at=now if last_receive else None)


def _report_unfinished(deps: DispatchDeps, calls: ProviderCalls) -> None:
    if deps.report_unfinished_calls is None:
        return
    try:
        deps.report_unfinished_calls(calls)
    except Exception:  # the failure being raised is the one to see
        logger.exception("could not report the calls of a pack that failed after them")


def _settle_round(
    pack: DispatchPack,
    deps: DispatchDeps,
    round_: _Round,
    breaker: BreakerUpdate,
    calls: ProviderCalls,
    *,
    now: datetime,
    last_receive: bool,
) -> DispatchSummary:
    """What the round's outcomes decide: a retry of the whole pack, or the records, the requeues and the summary."""
    outcome_at, deferred, quiet = round_.outcome_at, round_.deferred, round_.quiet
    may_move = bool(round_.skipped) or any(o.error is not None for o in outcome_at.values())
    decision = decide(
        pack,
        outcome_at,
        skipped=round_.skipped,
        last_attempt=last_receive or pack.attempt + 1 >= MAX_PACK_ATTEMPTS,
        provider_down=breaker.state.is_open(now),
        now=now,
        templates=round_.templates,
        prices=deps.price_table() if may_move else None,
    )
    if decision.retry_whole_pack:
        deps.claims.release(pack.pack_id)
        assert decision.whole_pack_error is not None
        raise RetryPack(decision.whole_pack_error, calls)  # the unsent recipients come back with the whole pack
    # Nothing was accepted on the last attempt. Only on the last receive does the pack go to the DLQ: with receives
    # left (a retry pack's last attempt), SQS would deliver it again, so it is finished like a sent one.
    dead_letter = decision.dead_letter and last_receive
    if dead_letter:
        decision, outcome_at = _keep_with_pack(pack, decision, outcome_at, [*deferred, *quiet])
        deferred, quiet = [], {}
    requeue_after_send(
        deps.claims,
        deps.queues,
        pack,
        retried=decision.retry,
        deferred=deferred,
        moved=decision.moved,
        deferred_delay=round_.sent.delay_seconds,
        quiet=sorted(quiet),
        quiet_delay=quiet_delay(quiet) if quiet else 1,
        store=deps.store,
        charge_moves=lambda moved: Rerouted(charged_moves(deps.spend, pack, moved.packs), moved.moved),
    )
    lapsed = [lapsed_record(pack, i, now) for i in sorted(round_.lapsed)]
    summary = _record(
        pack, deps, decision, outcome_at, lapsed, written=round_.refused, now=now, dead_letter=dead_letter
    )
    summary = replace(summary, quiet=len(quiet), deferred=len(deferred), skipped=len(round_.settled), calls=calls)
    if dead_letter:
        assert decision.whole_pack_error is not None
        # Recorded as FAILED; now let SQS move it to the DLQ. The summary goes with it: the handler reports what was
        # recorded (failed, lapsed, events not queued) as for a pack that went out.
        raise RetryPack(decision.whole_pack_error, calls, recorded=summary)
    return summary


def _keep_with_pack(
    pack: DispatchPack, decision: OutcomeDecision, outcome_at: dict[int, SendOutcome], unsent: list[int]
) -> tuple[OutcomeDecision, dict[int, SendOutcome]]:
    """A dead-lettered pack's recipients that were not sent (no permit, quiet hours) recorded FAILED with the
    pack's error instead of queued on their own: they come back only with the whole pack, which a redrive sends
    all of (the claim keeps no list of them across a re-claim), so queued as well they would be texted twice."""
    assert decision.whole_pack_error is not None
    error = decision.whole_pack_error
    kept = {i: SendOutcome(message_id=pack.recipients[i].id, error=error) for i in unsent}
    return replace(decision, record=sorted([*decision.record, *kept])), {**outcome_at, **kept}


def dead_letter_unbuilt(pack: DispatchPack, recorders: Recorders, exc: Exception, *, now: datetime) -> None:
    """The dispatcher could not be built (`exc`) on the pack's last receive, so it goes to the DLQ unsent. If this
    process can claim it, its records say FAILED (`DISPATCH_FAILED`) first and its claim DEAD, as for a failure
    before the first call (a redrive after the fix charges the spend given back and sends it); a pack another
    dispatcher sent, holds or took over is left to that one's records, and so is a settle pack (its recipients were
    sent once already: their outcome is unknown, not failed, and the redrive settles them)."""
    if pack.purpose == "settle":
        return
    claim = recorders.claims.claim(pack.pack_id, now=now, lease_seconds=CLAIM_LEASE_SECONDS)
    if claim not in (Claim.CLAIMED, Claim.REDRIVEN):
        return
    if ends_canceled_hold(pack, recorders, now=now):  # its recipients CANCELED, not FAILED: nothing to redrive
        return
    try:
        _fail_unsent(pack, recorders, exc, now=now)
    finally:  # held until the records are written: a duplicate delivery meanwhile finds it busy, not redriven
        recorders.claims.release(pack.pack_id, dead_lettered_at=now)


def _fail_unsent(pack: DispatchPack, deps: Recorders, exc: Exception, *, now: datetime) -> None:
    """The last receive failed before any call: the pack goes to the DLQ next, so its records say FAILED first
    (retryable, `DISPATCH_FAILED`), as those of a pack dead-lettered for its provider's errors do; a redrive sends
    it. When this write fails too (the same DynamoDB outage), it is logged and the pack's records stay as they were."""
    # The failure's kind only: the record's message reaches the customer (API, webhooks), and an AWS error's text
    # names tables and accounts. The whole exception is in the dispatcher's log.
    error = ProviderError(
        ErrorCategory.RETRYABLE, DispatchCode.DISPATCH_FAILED, f"the dispatcher failed ({type(exc).__name__})"
    )
    try:
        # A resend pack's recipients a receipt settled meanwhile keep what the receipt said (`settled_resends`).
        settled = settled_resends(pack, deps.store)
        outcomes = [
            (i, SendOutcome(message_id=r.id, error=error)) for i, r in enumerate(pack.recipients) if i not in settled
        ]
        records = outcome_records(pack, outcomes, now, deps.policies.receipt_deadlines)
        records = save_outcomes(
            deps.store,
            deps.receipts,
            records,
            now,
            held_since=held_since_pack(pack),
            route_stats=deps.route_stats,
            resends=resend_ids(pack),
        ).records
        if deps.spend is not None:
            release_unsent(deps.spend, records)
        queue_status_events(deps.webhooks, records, now)
    except Exception:
        logger.exception("could not record the dead-lettered pack's recipients FAILED", extra={"pack": pack.pack_id})


def _call_provider(pack: DispatchPack, deps: DispatchDeps, provider: Provider, *, now: datetime) -> _Round:
    """Who is called (not those lapsed, in quiet hours or moved for the open breaker), and the calls."""
    before = BreakerState() if deps.breakers is None else deps.breakers.state(pack.provider)
    templates = deps.templates
    if templates is None and before.is_open(now):
        templates = template_registry()
    settled = settled_resends(pack, deps.store)
    lapsed = lapsed_positions(pack, now) - settled
    refused, refused_records = _refused_since_accept(pack, deps, now, leave_out=settled | lapsed)
    quiet = {
        i: wait for i, wait in quiet_positions(pack, now).items() if i not in lapsed | refused and i not in settled
    }
    skipped = (
        skipped_for_open_breaker(pack, before, now=now, templates=templates) - lapsed - refused - quiet.keys() - settled
    )
    left = settled | lapsed | refused | quiet.keys() | skipped
    sending = [i for i in range(len(pack.recipients)) if i not in left]
    sent = _send(pack, sending, deps, provider, now)
    return _Round(before, settled, lapsed, refused_records, quiet, skipped, sending, sent, templates)


def _refused_since_accept(
    pack: DispatchPack, deps: DispatchDeps, now: datetime, *, leave_out: set[int]
) -> tuple[set[int], list[MessageRecord]]:
    """The recipients accept allowed that may no longer be sent: their country denied since
    (`dispatch.permissions`), or their number on the opt-out list since (`dispatch.opt_outs`); with their FAILED
    records, written already."""
    denied = {
        i: reason for i, reason in denied_positions(pack, deps.country_permissions()).items() if i not in leave_out
    }
    if denied:  # confirmed past every cache: this dispatcher's copy may be older than the one accept read
        fresh = deps.country_permissions(fresh=True)
        if fresh is not None:  # not confirmed (SSM unreadable, throttled): the cached copy's refusals stand
            denied = {i: reason for i, reason in denied_positions(pack, fresh).items() if i not in leave_out}
    opted_out = opted_out_positions(pack, opt_out_check()) - leave_out - denied.keys()
    records = [denied_record(pack, i, reason, now) for i, reason in sorted(denied.items())]
    records += [opted_out_record(pack, i, now) for i in sorted(opted_out)]
    if records:
        # Written before the calls (their events and give-backs follow with the round's): a dispatcher that dies
        # after its calls leaves them FAILED, which a takeover leaves alone, rather than as accept wrote them, which
        # it would settle as possibly sent (unknown outcomes, their spend kept).
        records = save_outcomes(
            deps.store, deps.receipts, records, now, route_stats=deps.route_stats, resends=resend_ids(pack)
        ).records
    return denied.keys() | opted_out, records


def _send(
    pack: DispatchPack, positions: list[int], deps: DispatchDeps, provider: Provider, now: datetime
) -> LimitedSend:
    """The recipients at `positions` sent (with the validity left them at `now`): all at once without a limiter,
    within the rate limits with one."""
    messages = outbound_messages(pack, now)
    chosen = [messages[i] for i in positions]
    if deps.limiter is None:
        everything: list[SendOutcome | None] = [*send_all(provider, chosen)]
        return LimitedSend(everything)
    return send_within_limits(provider, chosen, deps.limiter, clock=deps.clock, calls_end_by=deps.calls_end_by)


def _count_in_breaker(
    pack: DispatchPack, deps: DispatchDeps, outcomes: Iterable[SendOutcome], before: BreakerState, now: datetime
) -> BreakerUpdate:
    """The pack counted in its provider's breaker. A count that fails (its write throttled, say) is logged and the
    pack goes on to record its outcomes: the provider has answered, and raising here would leave the records as
    accept wrote them (on the last receive, the pack in the dead-letter queue with nothing recorded) for the sake
    of a health signal the next pack counts again."""
    if deps.breakers is None:
        return BreakerUpdate(before)
    try:
        return record_pack(deps.breakers, pack.provider, outcomes, before=before, policy=deps.policies.breaker, now=now)
    except Exception:
        logger.exception("could not count the pack in the circuit breaker: its outcomes are recorded anyway")
        return BreakerUpdate(before)


def _record(
    pack: DispatchPack,
    deps: DispatchDeps,
    decision: OutcomeDecision,
    outcome_at: dict[int, SendOutcome],
    lapsed: list[MessageRecord],
    *,
    written: list[MessageRecord],
    now: datetime,
    dead_letter: bool,
) -> DispatchSummary:
    """Writes the outcomes (and the lapsed recipients' EXPIRED records); with those `written` before the calls (the
    opted out), gives back their spend, queues their settle pack and webhook events, and finishes the claim (releases
    it, `dead_letter`: the pack goes to the DLQ)."""
    position = {r.id: i for i, r in enumerate(pack.recipients)}
    recorded = [*decision.record, *(position[r.id] for r in [*lapsed, *written])]
    saved = save_outcomes(
        deps.store,
        deps.receipts,
        outcome_records(pack, [(i, outcome_at[i]) for i in decision.record], now, deps.policies.receipt_deadlines)
        + lapsed,
        now,
        failover=True,
        held_since=held_since_pack(pack),
        route_stats=deps.route_stats,
        resends=resend_ids(pack),
    )
    records = [*saved.records, *written]
    if deps.spend is not None:  # after the FAILED records are written: their cost is given back once
        release_unsent(deps.spend, records)
    queue_pending_resends(deps.queues, deps.webhooks, records, now)  # an early UNDELIVERED receipt's resend
    unknown = [i for i, r in zip(recorded, records, strict=True) if r.status is Status.SENDING]
    queue_settle_pack(deps.queues, pack, unknown, now=now, policy=deps.policies.unknown_outcomes)
    # Events before `finish`: a dispatcher that dies in between leaves the claim to expire, and the next delivery
    # settles only what was never recorded (event ids are stable, so a repeat is harmless).
    not_queued = queue_status_events(deps.webhooks, records, now)
    if dead_letter:
        # Nothing was accepted: the pack goes to the DLQ re-claimable, so an operator's redrive after a fix sends it
        # (the one way a FAILED record changes again: by an explicit resend, never by a retry), its spend charged
        # again first (`Claim.REDRIVEN`).
        deps.claims.release(pack.pack_id, dead_lettered_at=now)
    else:
        deps.claims.finish(pack.pack_id)
    return DispatchSummary(
        submitted=sum(r.status is Status.SUBMITTED for r in records),
        failed=sum(r.status is Status.FAILED for r in records),
        unknown=len(unknown),
        retried=len(decision.retry),
        webhooks_not_queued=not_queued,
        failed_over=len(decision.moved.moved),
        lapsed=len(lapsed),
        delivered=saved.delivered,
        undelivered=saved.undelivered,
        route_stats_not_written=int(not saved.route_stats_written),
    )
