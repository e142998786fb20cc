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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from globesms.clock import iso
from globesms.errors import ErrorCategory, ProviderError
from globesms.models.outbound import SendOutcome
from globesms.models.packs import DispatchPack
from globesms.models.records import MessageRecord
from globesms.notifications import status_event
from globesms.observability import logger
from globesms.ports import (
    Claim,
    MessageStore,
    PackClaims,
    PackQueues,
    Provider,
    RateLimiter,
    ReceiptStore,
    WebhookQueue,
)
from globesms.receipts import apply_held_receipts
from globesms.sending import (
    INVALID_REQUEST,
    LimitedSend,
    RateLimiterUnavailable,
    outbound_messages,
    send_all,
    send_within_limits,
)
from globesms.status import Status

_TRANSIENT = frozenset({ErrorCategory.RETRYABLE, ErrorCategory.THROTTLED})
#: A claim outlives the dispatcher's 30 s timeout: a dispatcher still inside it is alive; past it, it died.
CLAIM_LEASE_SECONDS = 120
#: Retry packs carry their attempt number; the last one records transient failures as FAILED.
MAX_PACK_ATTEMPTS = 5


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
    clock: Callable[[], float] = time.time,
) -> DispatchSummary:
    """Claim, send, record. With a `limiter`, calls stay within the providers' rate limits and recipients without
    a permit go back on the queue (`DispatchSummary.deferred`); without one, everything is sent at once."""
    last_attempt = last_attempt or pack.attempt + 1 >= MAX_PACK_ATTEMPTS
    claim = claims.claim(pack.pack_id, now=now, lease_seconds=CLAIM_LEASE_SECONDS)
    if claim is Claim.DONE:
        return DispatchSummary(submitted=0, failed=0, unknown=0, skipped=len(pack.recipients))
    if claim is Claim.BUSY:
        raise PackBusy(pack.pack_id)
    if claim is Claim.STALE:
        return _settle_interrupted(
            pack, store=store, claims=claims, queues=queues, receipts=receipts, webhooks=webhooks, now=now
        )

    messages = outbound_messages(pack)
    if limiter is None:
        everything: list[SendOutcome | None] = [*send_all(provider, messages)]
        sent = LimitedSend(everything)
    else:
        try:
            sent = send_within_limits(provider, messages, limiter, clock=clock)
        except RateLimiterUnavailable:
            claims.release(pack.pack_id)  # nothing was sent: the next delivery may send it all
            raise
    outcomes = [(i, outcome) for i, outcome in enumerate(sent.outcomes) if outcome is not None]
    whole_pack_error = _shared_transient_error([outcome for _, outcome in outcomes])
    if whole_pack_error is not None and not last_attempt:
        claims.release(pack.pack_id)
        raise RetryPack(whole_pack_error)  # the unsent recipients come back with the whole pack
    retry_indexes = [] if last_attempt else _transient_indexes(outcomes)
    deferred = sent.unsent
    if retry_indexes or deferred:
        # Kept on the claim first: if this dispatcher dies before recording, the next delivery knows these were
        # never sent (and queues them again, under the same pack ids) instead of taking them for unknown outcomes.
        claims.record_requeued(pack.pack_id, retried=retry_indexes, deferred=deferred)
        _requeue(queues, pack, retry_indexes, deferred, deferred_delay=sent.delay_seconds)
    retried = set(retry_indexes)
    records = [_record(pack, i, outcome, now) for i, outcome in outcomes if i not in retried]
    if records:
        store.put_messages(records)
    changed = apply_held_receipts(receipts, records, now)
    records = [changed.get(r.id, r) for r in records]
    # Events before `finish`: a dispatcher that dies in between leaves the claim to expire, and the next delivery
    # settles only what was never recorded (event ids are stable, so a repeat is harmless).
    not_queued = _notify(webhooks, records, now)
    if whole_pack_error is None:
        claims.finish(pack.pack_id)
    else:
        # Nothing was accepted: the pack goes to the DLQ re-claimable, so an operator's redrive after a fix sends it
        # (the one way a FAILED record changes again: by an explicit resend, never by a retry).
        claims.release(pack.pack_id)
    summary = DispatchSummary(
        submitted=sum(r.status is Status.SUBMITTED for r in records),
        failed=sum(r.status is Status.FAILED for r in records),
        unknown=sum(r.status is Status.SENDING for r in records),
        retried=len(retry_indexes),
        webhooks_not_queued=not_queued,
        deferred=len(deferred),
    )
    if whole_pack_error is not None:
        raise RetryPack(whole_pack_error)  # recorded as FAILED above; now let SQS move it to the DLQ
    return summary


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
) -> DispatchSummary:
    """The earlier attempt may have sent the pack and even recorded some outcomes (which receipts may since have
    moved on): recipients it noted as never sent go back on the queue; the others still as accept wrote them become
    SENDING; nothing recorded is overwritten."""
    error = ProviderError(
        ErrorCategory.UNKNOWN_OUTCOME,
        "DISPATCH_INTERRUPTED",
        "an earlier attempt stopped after claiming this pack; the provider may have sent it",
    )
    requeued = claims.requeued(pack.pack_id)
    never_sent: set[int] = set()
    if requeued is not None:
        retried, deferred = requeued
        never_sent = {*retried, *deferred}
        # The same pack ids as before: a copy that did reach the queue is claimed once, whichever comes first.
        _requeue(queues, pack, retried, deferred, deferred_delay=1)
    current = store.get_messages([r.id for r in pack.recipients])
    unrecorded = [
        i
        for i, r in enumerate(pack.recipients)
        if i not in never_sent and (r.id not in current or current[r.id].status in (Status.ACCEPTED, Status.QUEUED))
    ]
    records = [_record(pack, i, SendOutcome(message_id=pack.recipients[i].id, error=error), now) for i in unrecorded]
    if records:
        store.put_messages(records)
    changed = apply_held_receipts(receipts, records, now)  # receipts that came while the record was not written
    records = [changed.get(r.id, r) for r in records]
    not_queued = _notify(webhooks, records, now)
    claims.finish(pack.pack_id)
    return DispatchSummary(
        submitted=0,
        failed=0,
        unknown=sum(r.status is Status.SENDING for r in records),
        skipped=len(pack.recipients) - len(records),
        webhooks_not_queued=not_queued,
    )


def _transient_indexes(outcomes: Sequence[tuple[int, SendOutcome]]) -> list[int]:
    return [i for i, o in outcomes if o.error is not None and o.error.category in _TRANSIENT]


def _notify(webhooks: WebhookQueue, records: Sequence[MessageRecord], now: datetime) -> int:
    deliveries = [d for d in (status_event(r, now) for r in records) if d is not None]
    if not deliveries:
        return 0
    try:
        webhooks.send_webhooks(deliveries)
    except Exception:
        # The SMS are sent and recorded: failing the pack now would make SQS deliver it again and text everybody
        # twice. The events are lost instead (final ones are queued again by any repeated receipt push).
        logger.exception("status events not queued", extra={"events": len(deliveries)})
        return len(deliveries)
    return 0


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
    steps = None
    if status is Status.SENDING and error is not None:
        # Kept in the history even after a receipt settles the message and clears the error.
        steps = [
            {"id": "sending", "type": "status", "status": "SENDING", "error_code": error.code, "received_at": stamp}
        ]
    return MessageRecord(
        **dict(content),
        events=steps,
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
