"""The reconcile run (the scheduled ReconcileFunction): read the due buckets, settle each message, queue webhooks.

Buckets are read from the watermark (the oldest minute that may still hold due messages; an hour back on the first
run) up to the current minute, `DUE_SHARDS` Queries per minute. A bucket empties as its messages are settled:
finals leave the index with their final write, the others move to a later bucket. What a run leaves (its message
budget spent, or a provider's query permits gone for this second) keeps the watermark at that minute, so the next
run starts there. Query calls take permits from the same shared rate limiter as the sends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from globesms.domain.clock import iso
from globesms.domain.history import HistoryStep
from globesms.domain.status import Status
from globesms.errors import DispatchCode, ErrorCategory
from globesms.models.outbound import ProviderName
from globesms.models.receipts import StatusAnswer, StatusQueryFailed
from globesms.models.records import MessageRecord
from globesms.models.webhooks import WebhookDelivery
from globesms.ports import RateLimiter, ReceiptDeadlines, ReceiptStore, StatusQuery, WebhookQueue
from globesms.receipts.apply import apply_events
from globesms.reconcile.deadline import DeadlinePolicy, due_bucket, minute_of, minutes_between, shard_keys
from globesms.reconcile.decision import ApplyReport, Expire, Reschedule, decide, retry
from globesms.webhooks.events import status_event

FIRST_RUN_LOOKBACK_SECONDS: Final = 3600
MAX_MINUTES_PER_RUN: Final = 24 * 60
PAGE: Final = 100
NO_RECEIPT_MESSAGE: Final = "no final receipt by the receipt deadline"


@dataclass(frozen=True, slots=True)
class ReconcileDeps:
    receipts: ReceiptStore
    deadlines: ReceiptDeadlines
    queries: Mapping[ProviderName, StatusQuery]  # providers without a query (Huawei) are absent
    limiter: RateLimiter
    webhooks: WebhookQueue
    clock: Callable[[], datetime]


@dataclass
class ReconcileSummary:
    examined: int = 0
    settled: int = 0  # a pulled final status applied
    expired: int = 0  # EXPIRED / NO_RECEIPT
    extended: int = 0  # "still delivering": deadline moved
    retried: int = 0  # the query failed or its answer was unreadable: asked again later
    throttled: int = 0  # no query permit this second: left for the next run
    already_final: int = 0
    webhooks_not_queued: int = 0
    webhooks: list[WebhookDelivery] = field(default_factory=list)
    finals: list[MessageRecord] = field(default_factory=list)  # messages this run made final (route statistics)


def reconcile_due(deps: ReconcileDeps, policy: DeadlinePolicy, *, max_messages: int = 1000) -> ReconcileSummary:
    """One run: settles up to `max_messages` due messages, then queues their webhook events."""
    now_epoch = int(deps.clock().timestamp())
    first = deps.deadlines.watermark() or minute_of(now_epoch - FIRST_RUN_LOOKBACK_SECONDS)
    summary = ReconcileSummary()
    left_at: str | None = None  # the first minute this run could not finish
    for count, minute in enumerate(minutes_between(first, now_epoch)):
        if count >= MAX_MINUTES_PER_RUN or summary.examined >= max_messages:
            left_at = left_at or minute
            break
        for bucket in shard_keys(minute):
            if not _settle_bucket(deps, policy, bucket, now_epoch, max_messages, summary):
                left_at = left_at or minute
    deps.deadlines.set_watermark(left_at or minute_of(now_epoch))
    _queue_webhooks(deps.webhooks, summary)
    return summary


def _settle_bucket(
    deps: ReconcileDeps,
    policy: DeadlinePolicy,
    bucket: str,
    now_epoch: int,
    max_messages: int,
    summary: ReconcileSummary,
) -> bool:
    """Settles the bucket's due messages; False when some are left in it."""
    while summary.examined < max_messages:
        limit = min(PAGE, max_messages - summary.examined)
        ids = deps.deadlines.due(bucket, until=now_epoch, limit=limit)
        if not ids:
            return True
        throttled = 0
        for message_id in ids:
            summary.examined += 1
            if not _settle(deps, policy, message_id, summary):
                throttled += 1
        if throttled:
            return False  # what is left waits for permits in the next run
    return False


def _settle(deps: ReconcileDeps, policy: DeadlinePolicy, message_id: str, summary: ReconcileSummary) -> bool:
    """One due message; False when it was left for want of a query permit."""
    record = deps.receipts.reload(message_id)
    if record is None:
        return True
    if record.status is not Status.SUBMITTED:
        summary.already_final += 1
        deps.deadlines.clear(message_id)
        return True
    now = deps.clock()
    query = deps.queries.get(record.provider)
    answer: StatusAnswer | None = None
    if query is not None:
        if not deps.limiter.acquire({query.status_query_operation: 1}, second=int(now.timestamp())):
            summary.throttled += 1
            return False
        try:
            answer = query.query_status(record, now=now)
        except StatusQueryFailed:
            _reschedule(deps, record, retry(record, int(now.timestamp()), policy))
            summary.retried += 1
            return True
    _carry_out(deps, record, decide(record, answer, int(now.timestamp()), policy), now, summary)
    return True


def _carry_out(
    deps: ReconcileDeps,
    record: MessageRecord,
    verdict: ApplyReport | Reschedule | Expire,
    now: datetime,
    summary: ReconcileSummary,
) -> None:
    if isinstance(verdict, Reschedule):
        _reschedule(deps, record, verdict)
        summary.extended += 1
        return
    if isinstance(verdict, ApplyReport):
        report = verdict.report
        applied = apply_events(deps.receipts, record, [report.event(iso(now))], report.provider_message_id, now)
        changed = applied.record if applied.changed else None
        summary.settled += 1 if changed is not None else 0
    else:
        changed = expire(deps.receipts, record, now)
        summary.expired += 1 if changed is not None else 0
    if changed is not None:
        if changed.status.is_final:
            summary.finals.append(changed)
        delivery = status_event(changed, now)
        if delivery is not None:
            summary.webhooks.append(delivery)


def _reschedule(deps: ReconcileDeps, record: MessageRecord, verdict: Reschedule) -> None:
    # False means a receipt moved the message meanwhile: nothing left to do for it.
    deps.deadlines.reschedule(
        record, due_at=verdict.due_at, bucket=due_bucket(verdict.due_at, record.id), tries=verdict.tries
    )


def expire(store: ReceiptStore, record: MessageRecord, now: datetime) -> MessageRecord | None:
    """EXPIRED with NO_RECEIPT, a step of our own in the history; None when a receipt changed the message first
    (its version moved: the receipt decides)."""
    stamp = iso(now)
    step = HistoryStep(f"{record.id}.no_receipt", Status.EXPIRED, DispatchCode.NO_RECEIPT.value, stamp).to_item()
    updated = record.model_copy(
        update={
            "status": Status.EXPIRED,
            "events": [*(record.events or []), step],
            "version": record.version + 1,
            "updated_at": stamp,
            "error_category": ErrorCategory.UNKNOWN_OUTCOME.value,
            "error_code": DispatchCode.NO_RECEIPT.value,
            "error_message": NO_RECEIPT_MESSAGE,
        }
    )
    return updated if store.save_delivery(updated, expected_version=record.version) else None


def _queue_webhooks(webhooks: WebhookQueue, summary: ReconcileSummary) -> None:
    if not summary.webhooks:
        return
    try:
        webhooks.send_webhooks(summary.webhooks)
    except Exception:
        # The statuses are written; only the events are lost (a repeated final receipt queues its event again).
        summary.webhooks_not_queued = len(summary.webhooks)


@dataclass(frozen=True, slots=True)
class UnavailableQuery:
    """A provider's status query that cannot be made now (its client could not be built: a missing or unreadable
    credentials secret). Its messages are asked about again later; they are never expired for it."""

    status_query_operation: str
    reason: str

    def query_status(self, record: MessageRecord, *, now: datetime) -> StatusAnswer:
        raise StatusQueryFailed(ErrorCategory.CONFIG.value, self.reason)  # credentials: a configuration problem
