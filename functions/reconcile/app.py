"""ReconcileFunction, run every minute by an EventBridge schedule: messages past their receipt deadline get a final
status, and accepts that stopped for good end INTERRUPTED (reconcile/, docs/final-status.md)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, cast

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from globesms.aws import wiring
from globesms.config import ReconcileSettings, settings
from globesms.domain.clock import utc_now
from globesms.models.outbound import ProviderName
from globesms.observability import (
    emit_provider_outcomes,
    emit_route_stats_not_written,
    logger,
    metrics,
    tracer,
)
from globesms.ports import RateLimiter, StatusQuery
from globesms.providers import build_provider
from globesms.providers.aliyun.queries import QUERY_MESSAGE
from globesms.providers.tencent.queries import PULL_BY_PHONE_NUMBER
from globesms.reconcile.deadline import DeadlinePolicy
from globesms.reconcile.interrupted import InterruptedSummary, settle_interrupted
from globesms.reconcile.service import (
    TIME_SHARE,
    ReconcileDeps,
    ReconcileSummary,
    UnavailableQuery,
    reconcile_due,
)
from globesms.scheduling.cancel import CancelDeps
from globesms.stats.record import record_outcomes

SETTINGS = settings(ReconcileSettings)
#: The providers with a status query, and the operation it counts against. Huawei has none: its messages past the
#: deadline end EXPIRED / NO_RECEIPT.
QUERIES = {ProviderName.ALIYUN: QUERY_MESSAGE, ProviderName.TENCENT: PULL_BY_PHONE_NUMBER}


def _limiter_and_queries() -> tuple[RateLimiter, dict[ProviderName, StatusQuery]]:
    """The shared rate limiter and the status queries. With an invalid GLOBESMS_RATE_LIMITS no query is made (each
    is unavailable, as without credentials: asked again next run, for an hour, then ended as without a query), and
    the rest of the run goes on: Huawei's deadlines, interrupted accepts. The limiter is then one at the default
    rates, which an unavailable query never asks for a permit (it calls nobody)."""
    try:
        return wiring.rate_limiter(), _queries()
    except ValueError as exc:  # the variable's rule, named (never its value)
        metrics.add_metric(name="ReconcileQueriesUnavailable", unit=MetricUnit.Count, value=1)
        logger.error("status queries unavailable: GLOBESMS_RATE_LIMITS invalid", extra={"error": str(exc)})
        unavailable = {p: UnavailableQuery(op, "GLOBESMS_RATE_LIMITS is invalid") for p, op in QUERIES.items()}
        return wiring.default_rate_limiter(), cast("dict[ProviderName, StatusQuery]", unavailable)


def _queries() -> dict[ProviderName, StatusQuery]:
    queries: dict[ProviderName, StatusQuery] = {}
    for provider, operation in QUERIES.items():
        try:
            queries[provider] = cast("StatusQuery", build_provider(provider))
        except Exception as exc:  # credentials missing or unreadable: ask again next run (for an hour: decision.retry)
            logger.warning("status query unavailable", extra={"provider": provider.value, "error": type(exc).__name__})
            queries[provider] = UnavailableQuery(operation, type(exc).__name__)
    return queries


def _emit(summary: ReconcileSummary) -> None:
    for name, value in (
        ("ReconcileChecked", summary.checked),
        ("ReconcileExamined", summary.examined),
        ("ReconcileSettledByQuery", summary.settled),
        ("ReconcileSettledFromHeld", summary.settled_from_held),
        ("ReconcileExpiredNoReceipt", summary.expired),
        ("ReconcileDeadlinesExtended", summary.extended),
        ("ReconcileQueriesRetried", summary.retried),
        ("ReconcileQueriesGivenUp", summary.queries_given_up),
        ("ReconcileQueriesThrottled", summary.throttled),
        ("ReconcileQueryErrors", summary.query_errors),
        ("WebhooksNotQueued", summary.webhooks_not_queued),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for provider, outcomes in summary.outcomes_by_provider().items():
        emit_provider_outcomes(
            provider,
            delivered=outcomes.delivered,
            undelivered=outcomes.undelivered,
            receipts_missing=outcomes.receipts_missing,
        )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    limiter, queries = _limiter_and_queries()
    deps = ReconcileDeps(
        receipts=wiring.receipt_store(),
        deadlines=wiring.receipt_deadlines(),
        queries=queries,
        limiter=limiter,
        webhooks=wiring.webhook_queue(),
        clock=utc_now,
        sleep=time.sleep,
    )
    policy = DeadlinePolicy.from_settings(SETTINGS, SETTINGS.receipt_pending_extension_seconds)
    stop_at = utc_now() + timedelta(milliseconds=context.get_remaining_time_in_millis() * TIME_SHARE)
    summary = ReconcileSummary()
    try:
        reconcile_due(deps, policy, max_messages=SETTINGS.reconcile_max_messages, stop_at=stop_at, summary=summary)
    finally:
        # Also when the run failed midway: what it settled is final and the next run will not count it.
        route_stats_written = record_outcomes(wiring.route_stats(), summary.finals, utc_now())
        emit_route_stats_not_written(int(not route_stats_written))
        _emit(summary)
        for query in queries.values():
            close = getattr(query, "close", None)
            if close is not None:
                close()
    logger.info(
        "reconcile run", extra={"checked": summary.checked, "examined": summary.examined, "expired": summary.expired}
    )
    # After the deadlines (their watermark written), in what is left of the same time share: a failure here fails
    # the run, and the next run goes on where it stopped.
    interrupted = _end_interrupted_accepts(context)
    return {
        "checked": summary.checked,
        "examined": summary.examined,
        "settled": summary.settled,
        "expired": summary.expired,
        "interrupted": interrupted.batches,
    }


def _end_interrupted_accepts(context: LambdaContext) -> InterruptedSummary:
    deps = CancelDeps(
        store=wiring.message_store(),
        schedule=wiring.schedule_store(),
        claims=wiring.pack_claims(),
        webhooks=wiring.webhook_queue(),
        spend=wiring.spend_ledger(),
    )
    stop_at = utc_now() + timedelta(milliseconds=context.get_remaining_time_in_millis() * TIME_SHARE)
    done = settle_interrupted(deps, now=utc_now(), clock=utc_now, stop_at=stop_at)
    metrics.add_metric(name="AcceptsInterrupted", unit=MetricUnit.Count, value=done.batches)
    metrics.add_metric(name="InterruptedRecipientsCanceled", unit=MetricUnit.Count, value=done.canceled)
    if done.left_for_next_run:
        logger.warning("interrupted accepts left for the next run", extra={"batches": done.left_for_next_run})
    return done
