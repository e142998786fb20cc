"""Sending one pack from a provider queue and recording every recipient's outcome.

A pack is sent at most once. Before calling the provider a dispatcher *claims* the pack (a conditional write with
a lease); a repeated SQS delivery of a pack that is done is skipped, one whose claim is still held by another
dispatcher is left for later, and one whose earlier attempt died after claiming (lease expired, no outcome
recorded) is not sent again: its recipients are marked SENDING with an unknown outcome, for their receipts to settle.

Outcomes, per recipient: a provider message id -> SUBMITTED; a provider error -> FAILED with the normalised
category and the raw code; an unknown outcome (the request may have reached the provider) -> SENDING with the error
kept, never resent blindly. Transient errors (retryable, throttled) are retried:
- when they failed the whole pack (nothing was accepted), the claim is released and `RetryPack` raised, so SQS
  delivers the pack again after its visibility timeout;
- when they failed only some recipients, the others are recorded and those few go back on the queue as a new pack
  with a backoff delay;
- on the last attempt they are recorded FAILED with the last error (and a whole pack then goes to the DLQ), so a
  pack in a dead-letter queue always has records that say so.

With a `RateLimiter` the send step keeps every provider operation within its configured calls per second, summed
over all dispatchers (`rate_limits`): recipients whose calls find no permit in time go back on the queue as a new
pack with a short delay (`deferred_pack`), and the original pack is finished like any other; nobody waits.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from globesms.dispatch.circuit_breaker import BreakerPolicy, PackHealth, pack_health
from globesms.dispatch.failover import Rerouted, reroute
from globesms.dispatch.sending import (
    INVALID_REQUEST,
    LimitedSend,
    RateLimiterUnavailable,
    outbound_messages,
    send_all,
    send_within_limits,
)
from globesms.dispatch.unknown_outcomes import (
    MAX_DELAY_SECONDS,
    UnknownOutcomePolicy,
    queue_settle_pack,
    settle,
    wait_left,
)
from globesms.domain.clock import iso
from globesms.domain.status import Status
from globesms.errors import DispatchCode, ErrorCategory, ProviderError
from globesms.models.outbound import OutboundSms, SendOutcome
from globesms.models.packs import DispatchPack
from globesms.models.records import MessageRecord
from globesms.ports import (
    BreakerState,
    CircuitBreakers,
    Claim,
    MessageStore,
    PackClaims,
    PackQueues,
    Provider,
    RateLimiter,
    ReceiptStore,
    Requeued,
    WebhookQueue,
)
from globesms.receipts.apply import apply_held_receipts
from globesms.routing.templates import TemplateRegistry
from globesms.webhooks.events import queue_status_events

_TRANSIENT = frozenset({ErrorCategory.RETRYABLE, ErrorCategory.THROTTLED})
#: A claim outlives the dispatcher's 30 s timeout: a dispatcher still inside it is alive; past it, it died.
CLAIM_LEASE_SECONDS = 120
#: Retry packs carry their attempt number; the last one records transient failures as FAILED.
MAX_PACK_ATTEMPTS = 5


DEFAULT_BREAKER_POLICY = BreakerPolicy()
DEFAULT_UNKNOWN_OUTCOME_POLICY = UnknownOutcomePolicy()


class RetryPack(RuntimeError):
    def __init__(self, error: ProviderError) -> None:
        super().__init__(f"{error.category}: {error.code}")
        self.error = error


class PackBusy(RuntimeError):
    """Another dispatcher holds this pack's claim: SQS delivers it again later, when it is done or abandoned."""


@dataclass(frozen=True)
class DispatchSummary:
    submitted: int
    failed: int
    unknown: int
    retried: int = 0  # recipients put back on the queue in a retry pack
    skipped: int = 0  # recipients of a pack already done (a repeated delivery)
    webhooks_not_queued: int = 0
    deferred: int = 0  # recipients put back on the queue for want of a rate-limit permit (not an attempt)
    failed_over: int = 0  # recipients moved to the next provider of their route
    expired: int = 0  # unknown outcomes that no receipt settled in the window, now FAILED


def dispatch_pack(
    pack: DispatchPack,
    *,
    provider: Provider,
    store: MessageStore,
    claims: PackClaims,
    queues: PackQueues,
    receipts: ReceiptStore,
    webhooks: WebhookQueue,
    now: datetime,
    last_attempt: bool,
    limiter: RateLimiter | None = None,
    breakers: CircuitBreakers | None = None,
    breaker_policy: BreakerPolicy = DEFAULT_BREAKER_POLICY,
    unknown_policy: UnknownOutcomePolicy = DEFAULT_UNKNOWN_OUTCOME_POLICY,
    templates: TemplateRegistry | None = None,
    clock: Callable[[], float] = time.time,
) -> DispatchSummary:
    """Claim, send, record. With a `limiter`, calls stay within the providers' rate limits and recipients without
    a permit go back on the queue (`DispatchSummary.deferred`); without one, everything is sent at once. With
    `breakers`, a provider that keeps failing is skipped for the recipients that have another provider in their
    route (`circuit_breaker`, `failover`)."""
    last_attempt = last_attempt or pack.attempt + 1 >= MAX_PACK_ATTEMPTS
    claim = claims.claim(pack.pack_id, now=now, lease_seconds=CLAIM_LEASE_SECONDS)
    if claim is Claim.DONE:
        return DispatchSummary(submitted=0, failed=0, unknown=0, skipped=len(pack.recipients))
    if claim is Claim.BUSY:
        raise PackBusy(pack.pack_id)
    if pack.purpose == "settle":
        return _settle_unknown(
            pack, store=store, claims=claims, queues=queues, receipts=receipts, webhooks=webhooks, now=now,
            policy=unknown_policy,
        )  # fmt: skip
    if claim is Claim.STALE:
        return _settle_interrupted(
            pack, store=store, claims=claims, queues=queues, receipts=receipts, webhooks=webhooks, now=now,
            policy=unknown_policy, templates=templates,
        )  # fmt: skip

    health = BreakerState() if breakers is None else breakers.state(pack.provider)
    skipped: set[int] = set()
    if health.is_open(now):
        # The provider is down: whoever can go elsewhere goes without a call; the others are sent regardless.
        skipped = set(reroute(pack, range(len(pack.recipients)), reasons={}, now=now, templates=templates).moved)
    sending = [i for i in range(len(pack.recipients)) if i not in skipped]
    messages = outbound_messages(pack)
    try:
        sent = _send([messages[i] for i in sending], provider=provider, limiter=limiter, clock=clock)
    except RateLimiterUnavailable:
        claims.release(pack.pack_id)  # nothing was sent: the next delivery may send it all
        raise
    outcome_at = {sending[j]: outcome for j, outcome in enumerate(sent.outcomes) if outcome is not None}
    deferred = [sending[j] for j in sent.unsent]
    if breakers is not None:
        health = _update_breaker(breakers, pack, outcome_at.values(), health, breaker_policy, now)
    provider_down = health.is_open(now)

    plan = _plan_outcomes(outcome_at, last_attempt=last_attempt, provider_down=provider_down)
    # One reroute of every position that moves, in order: a dispatcher settling this pack after a crash reroutes the
    # same positions (`Requeued.failed_over`) into the same pack ids.
    reasons = {**dict.fromkeys(skipped, CIRCUIT_OPEN), **plan.move_reasons}
    to_move = sorted(reasons)
    moved = reroute(pack, to_move, reasons=reasons, now=now, templates=templates) if to_move else Rerouted()
    failed_over = moved.moved
    unmoved = sorted(set(plan.move) - set(failed_over))
    retry_indexes = sorted([*plan.retry, *(i for i in unmoved if not last_attempt and _is_transient(outcome_at[i]))])
    whole_pack_error = _shared_transient_error(list(outcome_at.values()))
    if whole_pack_error is not None and not failed_over and not last_attempt:
        claims.release(pack.pack_id)
        raise RetryPack(whole_pack_error)  # the unsent recipients come back with the whole pack
    if retry_indexes or deferred or failed_over:
        # Kept on the claim first: if this dispatcher dies before recording, the next delivery knows these were
        # never sent (and queues them again, under the same pack ids) instead of taking them for unknown outcomes.
        claims.record_requeued(pack.pack_id, Requeued(tuple(retry_indexes), tuple(deferred), tuple(failed_over)))
        _requeue(queues, pack, retry_indexes, deferred, deferred_delay=sent.delay_seconds)
        _queue_moved(queues, moved)
    recorded = sorted([*plan.record, *(i for i in unmoved if i not in retry_indexes)])
    records = [_record(pack, i, outcome_at[i], now) for i in recorded]
    if records:
        store.put_messages(records)
    changed = apply_held_receipts(receipts, records, now)
    records = [changed.get(r.id, r) for r in records]
    unknown = [i for i, r in zip(recorded, records, strict=True) if r.status is Status.SENDING]
    queue_settle_pack(queues, pack, unknown, now=now, policy=unknown_policy)
    # Events before `finish`: a dispatcher that dies in between leaves the claim to expire, and the next delivery
    # settles only what was never recorded (event ids are stable, so a repeat is harmless).
    not_queued = queue_status_events(webhooks, records, now)
    dead_letter = whole_pack_error is not None and not failed_over
    if dead_letter:
        # Nothing was accepted: the pack goes to the DLQ re-claimable, so an operator's redrive after a fix sends it
        # (the one way a FAILED record changes again: by an explicit resend, never by a retry).
        claims.release(pack.pack_id)
    else:
        claims.finish(pack.pack_id)
    summary = DispatchSummary(
        submitted=sum(r.status is Status.SUBMITTED for r in records),
        failed=sum(r.status is Status.FAILED for r in records),
        unknown=len(unknown),
        retried=len(retry_indexes),
        webhooks_not_queued=not_queued,
        deferred=len(deferred),
        failed_over=len(failed_over),
    )
    if dead_letter:
        assert whole_pack_error is not None
        raise RetryPack(whole_pack_error)  # recorded as FAILED above; now let SQS move it to the DLQ
    return summary


CIRCUIT_OPEN = DispatchCode.CIRCUIT_OPEN


def _send(
    messages: Sequence[OutboundSms],
    *,
    provider: Provider,
    limiter: RateLimiter | None,
    clock: Callable[[], float],
) -> LimitedSend:
    if limiter is None:
        everything: list[SendOutcome | None] = [*send_all(provider, messages)]
        return LimitedSend(everything)
    return send_within_limits(provider, messages, limiter, clock=clock)


def _update_breaker(
    breakers: CircuitBreakers,
    pack: DispatchPack,
    outcomes: Iterable[SendOutcome],
    before: BreakerState,
    policy: BreakerPolicy,
    now: datetime,
) -> BreakerState:
    health = pack_health(outcomes, local_refusal_code=INVALID_REQUEST)
    if health is PackHealth.FAILED:
        return breakers.record_failure(
            pack.provider, now=now, failures_to_open=policy.failures_to_open, cooldown_seconds=policy.cooldown_seconds
        )
    if health is PackHealth.ANSWERED and (before.failures or before.open_until):
        breakers.record_success(pack.provider)  # written only on a change: the common case costs no write
        return BreakerState()
    return before


@dataclass
class _OutcomePlan:
    """What to do with each recipient that has an outcome, by position."""

    record: list[int] = field(default_factory=list)  # its outcome is written as it is
    retry: list[int] = field(default_factory=list)  # back on this provider's queue
    move: list[int] = field(default_factory=list)  # to the next provider of its route, if it has one
    move_reasons: dict[int, str] = field(default_factory=dict)


def _plan_outcomes(outcomes: Mapping[int, SendOutcome], *, last_attempt: bool, provider_down: bool) -> _OutcomePlan:
    plan = _OutcomePlan()
    for i, outcome in sorted(outcomes.items()):
        error = outcome.error
        if error is None or error.category is ErrorCategory.UNKNOWN_OUTCOME or error.code == INVALID_REQUEST:
            plan.record.append(i)
        elif error.category is ErrorCategory.CONFIG or (
            error.category in _TRANSIENT and (provider_down or last_attempt)
        ):
            # Not sendable here (now or ever): the next provider of the route may; if none, see `dispatch_pack`.
            plan.move.append(i)
            plan.move_reasons[i] = error.code
        elif error.category in _TRANSIENT:
            plan.retry.append(i)
        else:
            plan.record.append(i)
    return plan


def _is_transient(outcome: SendOutcome) -> bool:
    return outcome.error is not None and outcome.error.category in _TRANSIENT


def _queue_moved(queues: PackQueues, rerouted: Rerouted) -> None:
    for target, packs in rerouted.packs.items():
        queues.send_packs(target, packs)


def _requeue(
    queues: PackQueues, pack: DispatchPack, retried: Sequence[int], deferred: Sequence[int], *, deferred_delay: int
) -> None:
    if retried:
        queues.send_packs(pack.provider, [retry_pack(pack, retried)], delay_seconds=retry_delay(pack.attempt))
    if deferred:
        queues.send_packs(pack.provider, [deferred_pack(pack, deferred)], delay_seconds=deferred_delay)


def retry_pack(pack: DispatchPack, indexes: Sequence[int]) -> DispatchPack:
    """The recipients at `indexes` as a pack of their own, one attempt further on."""
    return pack.model_copy(
        update={
            "pack_id": f"{pack.pack_id}.r{pack.attempt + 1}",
            "attempt": pack.attempt + 1,
            "recipients": [pack.recipients[i] for i in indexes],
        }
    )


_DEFERRAL = re.compile(r"\.w([0-9]+)$")


def deferred_pack(pack: DispatchPack, indexes: Sequence[int]) -> DispatchPack:
    """The recipients at `indexes`, which found no rate-limit permit, as a pack of their own: the same attempt
    (waiting for a permit is no failure) under a new id, `<pack id>.w<n>` for the n-th deferral in a row, so
    that a repeated delivery of the original, now finished, sends nothing and the new pack is claimed afresh."""
    found = _DEFERRAL.search(pack.pack_id)
    base, count = (pack.pack_id[: found.start()], int(found.group(1))) if found else (pack.pack_id, 0)
    return pack.model_copy(
        update={"pack_id": f"{base}.w{count + 1}", "recipients": [pack.recipients[i] for i in indexes]}
    )


def retry_delay(attempt: int) -> int:
    """Seconds before a partly throttled pack's remainder is tried again: exponential with full jitter, within
    SQS's 15-minute DelaySeconds limit."""
    return random.randint(1, min(900, 10 * 2**attempt))


def _settle_interrupted(
    pack: DispatchPack,
    *,
    store: MessageStore,
    claims: PackClaims,
    queues: PackQueues,
    receipts: ReceiptStore,
    webhooks: WebhookQueue,
    now: datetime,
    policy: UnknownOutcomePolicy,
    templates: TemplateRegistry | None,
) -> DispatchSummary:
    """The earlier attempt may have sent the pack and even recorded some outcomes (which receipts may since have
    moved on): recipients it noted as never sent go back on their queues; the others still as accept wrote them
    become SENDING; nothing recorded is overwritten. Every SENDING one gets its settle pack."""
    error = ProviderError(
        ErrorCategory.UNKNOWN_OUTCOME,
        DispatchCode.DISPATCH_INTERRUPTED,
        "an earlier attempt stopped after claiming this pack; the provider may have sent it",
    )
    requeued = claims.requeued(pack.pack_id) or Requeued()
    # The same pack ids as before: a copy that did reach a queue is claimed once, whichever comes first.
    _requeue(queues, pack, requeued.retried, requeued.deferred, deferred_delay=1)
    if requeued.failed_over:
        _queue_moved(queues, reroute(pack, requeued.failed_over, reasons={}, now=now, templates=templates))
    current = store.get_messages([r.id for r in pack.recipients])
    unrecorded = [
        i
        for i, r in enumerate(pack.recipients)
        if i not in requeued.never_sent
        and (r.id not in current or current[r.id].status in (Status.ACCEPTED, Status.QUEUED))
    ]
    records = [_record(pack, i, SendOutcome(message_id=pack.recipients[i].id, error=error), now) for i in unrecorded]
    if records:
        store.put_messages(records)
    changed = apply_held_receipts(receipts, records, now)  # receipts that came while the record was not written
    records = [changed.get(r.id, r) for r in records]
    latest = {**current, **{r.id: r for r in records}}
    sending = [
        i
        for i, r in enumerate(pack.recipients)
        if r.id in latest and latest[r.id].status is Status.SENDING and latest[r.id].provider is pack.provider
    ]
    queue_settle_pack(queues, pack, sending, now=now, policy=policy)
    not_queued = queue_status_events(webhooks, records, now)
    claims.finish(pack.pack_id)
    return DispatchSummary(
        submitted=0,
        failed=0,
        unknown=sum(r.status is Status.SENDING for r in records),
        skipped=len(pack.recipients) - len(records),
        webhooks_not_queued=not_queued,
    )


def _settle_unknown(
    pack: DispatchPack,
    *,
    store: MessageStore,
    claims: PackClaims,
    queues: PackQueues,
    receipts: ReceiptStore,
    webhooks: WebhookQueue,
    now: datetime,
    policy: UnknownOutcomePolicy,
) -> DispatchSummary:
    wait = wait_left(pack, now)
    if wait:
        # Early (a window longer than SQS's longest delay, or a redelivery): back on the queue for the rest of it.
        queues.send_packs(pack.provider, [pack], delay_seconds=min(MAX_DELAY_SECONDS, wait))
        claims.release(pack.pack_id)
        return DispatchSummary(submitted=0, failed=0, unknown=len(pack.recipients))
    settled = settle(pack, store=store, receipts=receipts, queues=queues, webhooks=webhooks, now=now, policy=policy)
    claims.finish(pack.pack_id)
    return DispatchSummary(
        submitted=0,
        failed=len(settled.failed),
        unknown=0,
        retried=settled.resent,
        skipped=settled.left,
        expired=len(settled.failed),
    )


def _shared_transient_error(outcomes: Sequence[SendOutcome]) -> ProviderError | None:
    # Messages refused before sending are final whatever happened to the call that carried the others.
    errors = [o.error for o in outcomes if o.error is None or o.error.code != INVALID_REQUEST]
    if not errors or any(e is None or e.category not in _TRANSIENT for e in errors):
        return None
    return errors[-1]


def _record(pack: DispatchPack, index: int, outcome: SendOutcome, now: datetime) -> MessageRecord:
    recipient = pack.recipients[index]
    content = pack.contents[recipient.c]
    error = outcome.error
    if error is None:
        status = Status.SUBMITTED
    elif error.category is ErrorCategory.UNKNOWN_OUTCOME:
        status = Status.SENDING
    else:
        status = Status.FAILED
    stamp = iso(now)
    steps = list(recipient.history or [])  # e.g. the provider it failed over from
    if status is Status.SENDING and error is not None:
        # Kept in the history even after a receipt settles the message and clears the error.
        steps.append(
            {"id": "sending", "type": "status", "status": "SENDING", "error_code": error.code, "received_at": stamp}
        )
    return MessageRecord(
        **dict(content),
        events=steps or None,
        id=recipient.id,
        batch_id=pack.batch_id,
        to=recipient.to,
        provider=pack.provider,
        status=status,
        segments=outcome.segments or recipient.segments,
        provider_message_id=outcome.provider_message_id,
        error_category=str(error.category) if error else None,
        error_code=error.code if error else None,
        error_message=error.message if error else None,
        created_at=pack.created_at,
        updated_at=stamp,
        submitted_at=stamp if status is Status.SUBMITTED else None,
        expires_at=pack.expires_at,
    )
