"""The reconcile run (the scheduled ReconcileFunction): read the due deadline entries, settle each message still
waiting, queue webhooks.

Entries are read bucket by bucket (`DUE_SHARDS` Queries per minute) from the watermark (every entry due at or before
it is done; an hour back on the first run) up to now. For each entry the listed records are read in batches and
those still SUBMITTED past their own deadline are settled; the others (final, rescheduled to a later entry, resent)
are passed over. An entry the run could not finish (its message, read or time budget spent, or no query permit to
be had in the time it has left) holds the watermark just before its deadline, so the next run reads it again: what
that run settled is final or rescheduled by then and is passed over. Query calls take permits from the same shared
rate limiter as the sends; a run that finds a second's permits gone waits for the next second's while it has time
(a third of it at most), and an entry left for want of permits does not stop the entries after it.
A query that raises anything but `StatusQueryFailed` (a bug, an answer no parser expected) is a failed query of its
message, logged: raised, it stopped every run at the same message, the deadlines behind it and the sweep of
interrupted accepts with it.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Final, NamedTuple

from globesms.domain.clock import iso
from globesms.domain.history import HistoryStep
from globesms.domain.status import Status
from globesms.errors import DispatchCode, ErrorCategory, ProviderCallCode
from globesms.models.outbound import ProviderName
from globesms.models.receipts import StatusAnswer, StatusQueryFailed
from globesms.models.records import MessageRecord
from globesms.models.webhooks import WebhookDelivery
from globesms.ports import RateLimiter, ReceiptDeadlines, ReceiptStore, StatusQuery, WebhookQueue
from globesms.receipts.apply import (
    Applied,
    another_number,
    apply_events,
    apply_held_receipts,
    outcome_counts,
    route_outcomes,
)
from globesms.reconcile.deadline import (
    DeadlineEntry,
    DeadlinePolicy,
    minute_epoch,
    minute_of,
    minutes_between,
    shard_keys,
)
from globesms.reconcile.decision import ApplyReport, Expire, Reschedule, decide, retry
from globesms.webhooks.events import status_event

FIRST_RUN_LOOKBACK_SECONDS: Final = 3600
MAX_MINUTES_PER_RUN: Final = 24 * 60
#: Records read per run at most (the messages the entries list, most of them final already), and the run's time:
#: it starts no entry once `TIME_SHARE` of the function's remaining time is gone (the handler passes the moment:
#: 90 s of the template's 120), so a run at 2,000 recipients/s (120,000 deadlines a minute, 1,200 BatchGetItem
#: calls) ends with its watermark written, never cut off by the timeout with none. docs/scale.md says what binds.
MAX_CHECKS_PER_RUN: Final = 1_000_000
TIME_SHARE: Final = 0.75
NO_RECEIPT_MESSAGE: Final = "no final receipt by the receipt deadline"

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReconcileDeps:
    receipts: ReceiptStore
    deadlines: ReceiptDeadlines
    queries: Mapping[ProviderName, StatusQuery]  # providers without a query (Huawei) are absent
    limiter: RateLimiter
    webhooks: WebhookQueue
    clock: Callable[[], datetime]
    #: How the run waits for the next second's query permits (`time.sleep`; the clock must move with it). None: it
    #: does not wait, and a message without a permit is left for the next run.
    sleep: Callable[[float], None] | None = None


@dataclass
class ReconcileSummary:
    checked: int = 0  # records the due entries listed, read
    examined: int = 0  # of those, still SUBMITTED past their deadline
    settled: int = 0  # a pulled final status applied
    settled_from_held: int = 0  # a held receipt, past the dispatcher, applied (`_apply_held`)
    expired: int = 0  # EXPIRED / NO_RECEIPT
    extended: int = 0  # "still delivering": deadline moved
    retried: int = 0  # the query failed or its answer was unreadable: asked again later
    queries_given_up: int = 0  # ... `max_query_failures` times in a row: ended as without a query
    throttled: int = 0  # no query permit this second: left for the next run
    query_errors: int = 0  # failed queries (retried or given up) that failed in a way no parser foresaw (logged)
    webhooks_not_queued: int = 0
    webhooks: list[WebhookDelivery] = field(default_factory=list)
    finals: list[MessageRecord] = field(default_factory=list)  # messages this run made final (route statistics)

    # pulled answers that moved a message to a final status, whoever counted it first (the outcome metrics, as the
    # receipts endpoint counts a push that corrects a NO_RECEIPT expiry)
    reported: list[MessageRecord] = field(default_factory=list)

    def outcomes_by_provider(self) -> dict[ProviderName, ProviderOutcomes]:
        """What the run made final, by provider: a pulled answer is the carrier's outcome, as a receipt's is (the
        delivery-rate alarms count both); an expiry for want of any (`NO_RECEIPT`) is not, and says receipts are
        missing instead."""
        reported: dict[ProviderName, list[MessageRecord]] = {}
        for record in self.reported:
            if record.provider is not None:
                reported.setdefault(record.provider, []).append(record)
        missing = Counter(
            r.provider for r in self.finals if r.provider is not None and r.error_code == DispatchCode.NO_RECEIPT.value
        )
        return {
            provider: ProviderOutcomes(*outcome_counts(reported.get(provider, [])), missing[provider])
            for provider in reported.keys() | missing.keys()
        }


class ProviderOutcomes(NamedTuple):
    delivered: int
    undelivered: int  # UNDELIVERED, EXPIRED or REJECTED, as the provider said
    receipts_missing: int  # EXPIRED / NO_RECEIPT: the provider said nothing by the deadline


#: The most a run waits for later seconds' permits of one query operation: a third of its time (30 s of the
#: handler's 90), so that a provider's backlog (10 Tencent queries a second) leaves the rest of the run to the
#: others' entries (a review: it waited until the end of the run, and Alibaba's and Huawei's entries behind it were
#: left for the next). Each operation has its share: one provider's backlog spends none of another's.
PERMIT_WAIT_SHARE: Final = 1 / 3


@dataclass(slots=True)
class _PermitWaits:
    share: float = 0.0  # seconds each operation may wait in the run
    waited: dict[str, float] = field(default_factory=dict)  # by operation
    exhausted: set[str] = field(default_factory=set)  # operations whose permits the run stopped waiting for


@dataclass(frozen=True, slots=True)
class _Budget:
    max_messages: int
    max_checks: int
    stop_at: datetime | None
    clock: Callable[[], datetime]
    waits: _PermitWaits = field(default_factory=_PermitWaits)

    def spent(self, summary: ReconcileSummary) -> bool:
        return summary.examined >= self.max_messages or summary.checked >= self.max_checks or self.out_of_time()

    def out_of_time(self) -> bool:
        return self.stop_at is not None and self.clock() >= self.stop_at


def reconcile_due(
    deps: ReconcileDeps,
    policy: DeadlinePolicy,
    *,
    max_messages: int = 1000,
    max_checks: int = MAX_CHECKS_PER_RUN,
    stop_at: datetime | None = None,
    summary: ReconcileSummary | None = None,
) -> ReconcileSummary:
    """One run: settles up to `max_messages` due messages, then queues their webhook events. `stop_at`: no message
    is started after it (the function's timeout, less a margin). `summary`: filled in as messages are settled; when
    the run fails midway (a DynamoDB error), the events of those it settled are still queued (the next run finds
    them final and has nothing to say of them), and the caller still has what they add to the statistics."""
    summary = ReconcileSummary() if summary is None else summary
    waits = _PermitWaits(0.0 if stop_at is None else (stop_at - deps.clock()).total_seconds() * PERMIT_WAIT_SHARE)
    try:
        _settle_due(deps, policy, _Budget(max_messages, max_checks, stop_at, deps.clock, waits), summary)
    finally:
        _queue_webhooks(deps.webhooks, summary)
    return summary


def _settle_due(deps: ReconcileDeps, policy: DeadlinePolicy, budget: _Budget, summary: ReconcileSummary) -> None:
    """The due minutes since the watermark, in order; then the watermark moved to what this run can vouch for."""
    now_epoch = int(deps.clock().timestamp())
    done_until = deps.deadlines.watermark()
    if done_until is None:
        done_until = now_epoch - FIRST_RUN_LOOKBACK_SECONDS
    minutes = list(islice(minutes_between(minute_of(done_until + 1), now_epoch), MAX_MINUTES_PER_RUN + 1))
    # What this run can vouch for: up to now, or to the end of the last minute it may read.
    reached = now_epoch if len(minutes) <= MAX_MINUTES_PER_RUN else minute_epoch(minutes.pop()) - 1
    for minute in minutes:
        if budget.spent(summary):
            reached = min(reached, minute_epoch(minute) - 1)
            break
        for bucket in shard_keys(minute):
            unfinished = _settle_bucket(deps, policy, bucket, done_until, now_epoch, budget, summary)
            if unfinished is not None:
                reached = min(reached, unfinished - 1)
    deps.deadlines.set_watermark(max(done_until, reached))


def _settle_bucket(
    deps: ReconcileDeps,
    policy: DeadlinePolicy,
    bucket: str,
    after: int,
    now_epoch: int,
    budget: _Budget,
    summary: ReconcileSummary,
) -> int | None:
    """Settles the bucket's due entries; the deadline of the first one it could not finish, else None. An entry left
    for want of query permits (a pack of one provider) does not stop the entries after it, which may be another
    provider's; one left because the run's budget is spent does."""
    unfinished: int | None = None
    for entry in deps.deadlines.due(bucket, after=after, until=now_epoch):
        if budget.spent(summary):
            return entry.due_at if unfinished is None else unfinished
        if not _settle_entry(deps, policy, entry, now_epoch, budget, summary) and unfinished is None:
            unfinished = entry.due_at
    return unfinished


def _settle_entry(
    deps: ReconcileDeps,
    policy: DeadlinePolicy,
    entry: DeadlineEntry,
    now_epoch: int,
    budget: _Budget,
    summary: ReconcileSummary,
) -> bool:
    """Settles the entry's messages still waiting; False when some were left (budget or query permits)."""
    summary.checked += len(entry.message_ids)
    # The receipts held past the dispatcher first, looked for together (`_settle_bucket` begins no entry past the
    # run's budget).
    for record in _apply_held(deps, list(deps.deadlines.waiting(entry.message_ids, until=now_epoch)), summary):
        # Time is checked per message too: an entry lists a whole pack (1,000 messages, a status query each), and a
        # run that went on past the function's timeout lost the webhook events of what it had settled (queued
        # last); the rest of the entry is the next run's.
        if summary.examined >= budget.max_messages or budget.out_of_time():
            return False
        if _out_of_permits(deps, record, budget):
            # The rest of the entry is this provider's too (an entry lists one pack): the next run's, and nothing of
            # it counts against the run's message budget, which it spent entry after entry (a review).
            summary.throttled += 1
            return False
        summary.examined += 1
        if not _settle(deps, policy, record, budget, summary):
            return False  # what is left waits for permits in the next run
    return True


def _settle(
    deps: ReconcileDeps, policy: DeadlinePolicy, record: MessageRecord, budget: _Budget, summary: ReconcileSummary
) -> bool:
    """One due message; False when it was left for want of a query permit."""
    query = deps.queries.get(record.provider)
    answer: StatusAnswer | None = None
    if query is not None:
        # A query that cannot be made calls nobody: it takes no permit (taking them, a backlog of such messages
        # used the operation's permits a second and was given up hours, not an hour, later).
        calls = not isinstance(query, UnavailableQuery)
        if calls and not _query_permit(deps, query.status_query_operation, budget):
            summary.throttled += 1
            return False
        now = deps.clock()
        try:
            answer = _asked(query, record, now, summary)
        except StatusQueryFailed:
            again = retry(record, int(now.timestamp()), policy)
            if isinstance(again, Reschedule):
                _reschedule(deps, record, again)
                summary.retried += 1
                return True
            summary.queries_given_up += 1
            _carry_out(deps, record, again, now, summary)
            return True
    now = deps.clock()
    _carry_out(deps, record, decide(record, answer, int(now.timestamp()), policy), now, summary)
    return True


def _apply_held(deps: ReconcileDeps, records: list[MessageRecord], summary: ReconcileSummary) -> list[MessageRecord]:
    """The messages after the receipts held for them, those they settled left out. A receipt held past the
    dispatcher (the ProviderRef index lagging, a hold mark whose write failed) was answered 200, so its provider
    never pushes it again: expired or queried without it, a message the carrier delivered ended EXPIRED /
    NO_RECEIPT for good, and Huawei (no status query) at once (found by a review). Looked for together per provider
    (an entry lists one pack, but a message failed over since is another provider's), and each write counted in
    the summary as it is made, so a write failing later loses no event of those made before it."""
    now = deps.clock()
    settled: dict[str, MessageRecord] = {}

    def counted(done: Applied) -> None:
        # Examined here when settled here; one a receipt moved but left SUBMITTED is examined as the others are.
        summary.examined += done.record.status.is_final
        summary.settled_from_held += done.record.status.is_final
        if done.moved_here:
            summary.reported.extend(route_outcomes(done.record))
            if done.first_outcome and done.record.status.is_final:
                summary.finals.append(done.record)
        delivery = status_event(done.record, now)
        if delivery is not None:
            summary.webhooks.append(delivery)
        settled[done.record.id] = done.record

    for provider in dict.fromkeys(r.provider for r in records):
        same = [r for r in records if r.provider is provider]
        apply_held_receipts(deps.receipts, same, now, on_applied=counted)
    after = [settled.get(r.id, r) for r in records]
    return [r for r in after if not r.status.is_final]


def _out_of_permits(deps: ReconcileDeps, record: MessageRecord, budget: _Budget) -> bool:
    query = deps.queries.get(record.provider)
    return query is not None and query.status_query_operation in budget.waits.exhausted


def _query_permit(deps: ReconcileDeps, operation: str, budget: _Budget) -> bool:
    """A permit for one status query: this second's, or, when they are gone, a later second's while the run has time
    and the operation's share of waiting left (`deps.sleep`, `PERMIT_WAIT_SHARE`). The query operations are
    reconcile's own, so the next second's are there unless another run takes them. Left for the next run after one
    second's permits, an entry of 200 Tencent messages (10 queries a second) was settled 10 a run, one run a minute
    (a review). Once the run stops waiting for an operation's permits it asks for no more of them."""
    waits = budget.waits
    if operation in waits.exhausted:
        return False
    while True:
        now = deps.clock()
        second = math.floor(now.timestamp())
        if deps.limiter.acquire({operation: 1}, second=second):
            return True
        wait = second + 1 - now.timestamp()
        if (
            deps.sleep is None
            or budget.stop_at is None
            or now + timedelta(seconds=wait) >= budget.stop_at
            or waits.waited.get(operation, 0.0) + wait > waits.share
        ):
            waits.exhausted.add(operation)
            return False
        deps.sleep(wait)
        waits.waited[operation] = waits.waited.get(operation, 0.0) + wait


def _asked(query: StatusQuery, record: MessageRecord, now: datetime, summary: ReconcileSummary) -> StatusAnswer:
    """The provider's answer about `record`; one that names another number is no answer about it (raises
    StatusQueryFailed, as the receipts endpoint holds a pushed report with another number rather than apply it), and
    a query that failed in a way nobody foresaw is a failed query too (logged)."""
    try:
        answer = query.query_status(record, now=now)
    except StatusQueryFailed:
        raise
    except Exception:
        summary.query_errors += 1  # for its alarm: the run no longer fails on it, so the function's errors stay 0
        logger.exception("the status query of a %s message failed unexpectedly", record.provider)
        raise StatusQueryFailed(ProviderCallCode.MALFORMED_RESPONSE, "the query failed unexpectedly") from None
    if answer.report is not None and another_number(answer.report, record):
        raise StatusQueryFailed(ProviderCallCode.ANOTHER_MESSAGE, "the answer names another number")
    return answer


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
        first_outcome = applied.first_outcome  # not a late push's write: that counted the outcome where it was applied
        summary.settled += 1 if changed is not None else 0
        if applied.moved_here:
            summary.reported.extend(route_outcomes(applied.record))
    else:
        changed = expire(deps.receipts, record, now)
        first_outcome = changed is not None  # a conditional write: None when a receipt moved the message first
        summary.expired += 1 if changed is not None else 0
    if changed is not None:
        if changed.status.is_final and first_outcome:
            summary.finals.append(changed)
        delivery = status_event(changed, now)
        if delivery is not None:
            summary.webhooks.append(delivery)


def _reschedule(deps: ReconcileDeps, record: MessageRecord, verdict: Reschedule) -> None:
    # False means a receipt moved the message meanwhile: nothing left to do for it.
    deps.deadlines.reschedule(record, due_at=verdict.due_at, tries=verdict.tries, failures=verdict.failures)


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
        logger.exception("status events not queued", extra={"events": len(summary.webhooks)})
        summary.webhooks_not_queued = len(summary.webhooks)


@dataclass(frozen=True, slots=True)
class UnavailableQuery:
    """A provider's status query that cannot be made now (its client could not be built: a missing or unreadable
    credentials secret). Its messages are asked about again later, as after any failed query: after
    `max_query_failures` in a row they end as without a query (`decision.retry`)."""

    status_query_operation: str
    reason: str

    def query_status(self, record: MessageRecord, *, now: datetime) -> StatusAnswer:
        raise StatusQueryFailed(ErrorCategory.CONFIG.value, self.reason)  # credentials: a configuration problem
