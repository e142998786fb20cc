"""A provider queue's consumer: one deployment per provider (GLOBESMS_PROVIDER), same code."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from globesms.aws import wiring
from globesms.config import DispatchSettings, environment, load_settings
from globesms.dispatch.permissions import CountryPermissions
from globesms.dispatch.sending import RateLimiterUnavailable, stop_calling_at
from globesms.dispatch.service import (
    DispatchDeps,
    DispatchPolicies,
    PackBusy,
    Recorders,
    RetryPack,
    dead_letter_unbuilt,
    dispatch_pack,
)
from globesms.dispatch.summary import DispatchSummary, ProviderCalls
from globesms.domain.clock import utc_now
from globesms.guardrails.charges import Prices
from globesms.models.packs import DispatchPack
from globesms.observability import emit_count, emit_route_stats_not_written, logger, metrics, tracer
from globesms.ports import Provider
from globesms.providers import ProviderClients

# Read when the module is imported (the cold start), not through the process-wide cache: the three dispatchers
# differ only in GLOBESMS_PROVIDER, and a process that hosts several of them (the cost bench) imports each anew.
SETTINGS = load_settings(DispatchSettings, environment())
PROVIDER = SETTINGS.provider
POLICIES = DispatchPolicies.from_settings(SETTINGS)
# Report every failed record, even when all of a batch failed, instead of raising: the effect on the queue is the
# same (each failure is retried, then dead-lettered) and the function does not count as erroring.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
metrics.set_default_dimensions(provider=PROVIDER.value)  # one deployment per provider


def _settings_unusable() -> None:
    # The last good client is kept and sends; the alarm of a dispatcher that could not be built says the secret is
    # broken all the same.
    metrics.add_metric(name="DispatchersNotBuilt", unit=MetricUnit.Count, value=1)


# Rebuilt when the provider's secret changes (README: within 5 minutes); kept when it breaks.
_clients = ProviderClients(PROVIDER, on_last_good=_settings_unusable)


def _provider() -> Provider:
    return _clients.current()


def _deps(calls_end_by: float) -> DispatchDeps:
    return _recorders().sending_with(
        _provider(),
        wiring.pack_queues(),
        wiring.rate_limiter(),
        wiring.circuit_breakers(),
        report_unfinished_calls=_emit_provider_calls,
        calls_end_by=calls_end_by,
        prices=_price_table,
        permissions=_country_permissions,
    )


def _price_table() -> Prices:
    # Imported here: only a failover or a resend reads the price table, not the cold start of every dispatcher.
    from globesms.guardrails.prices import current_prices

    return current_prices()


def _country_permissions(*, fresh: bool = False) -> CountryPermissions:
    # Imported on the first pack, as the price table is: the document accept reads, cached alike (5 minutes).
    from globesms.guardrails.permissions import current_permissions

    return current_permissions(fresh=fresh)


def _recorders() -> Recorders:
    return Recorders(
        store=wiring.message_store(),
        claims=wiring.pack_claims(),
        receipts=wiring.receipt_store(),
        webhooks=wiring.webhook_queue(),
        spend=wiring.spend_ledger(),
        policies=POLICIES,
        route_stats=wiring.route_stats(),
    )


def _deps_or_dead_letter(pack: DispatchPack, *, last_attempt: bool, calls_end_by: float) -> DispatchDeps:
    """The dispatcher's dependencies; when they cannot be built on the pack's last receive, its records are written
    FAILED first with what can be (`dead_letter_unbuilt`), so the pack reaches its DLQ with records that say so."""
    try:
        return _deps(calls_end_by)
    except Exception as exc:
        # Nothing was sent, so no provider metric says so: this one has its alarm (<provider>-dispatcher-not-built).
        metrics.add_metric(name="DispatchersNotBuilt", unit=MetricUnit.Count, value=1)
        logger.exception("the dispatcher could not be built (its provider's secret, GLOBESMS_RATE_LIMITS)")
        if last_attempt:
            try:
                dead_letter_unbuilt(pack, _recorders(), exc, now=utc_now())
            except Exception:
                logger.exception("could not record the undispatchable pack's recipients FAILED")
        raise


@tracer.capture_method
def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    pack = DispatchPack.model_validate_json(record.body)
    if pack.provider is not PROVIDER:
        raise ValueError(f"pack {pack.pack_id} is for {pack.provider}, this dispatcher sends through {PROVIDER}")
    last_attempt = int(record.attributes.approximate_receive_count or 1) >= SETTINGS.max_receive_count
    logger.set_correlation_id(pack.batch_id)
    logger.append_keys(pack_id=pack.pack_id)
    # On the last receive a pack goes to the DLQ with its records as accept wrote them only when nothing can record
    # them honestly: `PackBusy` (the claim's holder may be sending it right now), or not even the store can be built.
    # docs/operations.md says what to do then.
    # The invocation's time left, read per pack: the first pack of two may have used most of it.
    calls_end_by = stop_calling_at(time.time(), lambda_context.get_remaining_time_in_millis() / 1000)
    deps = _deps_or_dead_letter(pack, last_attempt=last_attempt, calls_end_by=calls_end_by)
    try:
        summary = dispatch_pack(pack, deps, now=utc_now(), last_attempt=last_attempt)
    except RetryPack as exc:
        _emit_provider_calls(exc.calls)
        if exc.recorded is not None:  # the last receive: recorded FAILED, on to the dead-letter queue
            _emit_summary(exc.recorded, "pack dead-lettered, its recipients recorded")
            metrics.add_metric(name="PacksDeadLettered", unit=MetricUnit.Count, value=1)
            raise
        metrics.add_metric(name="PacksRetried", unit=MetricUnit.Count, value=1)
        logger.warning("pack will be retried", extra={"category": exc.error.category, "code": exc.error.code})
        raise
    except PackBusy:
        metrics.add_metric(name="PacksBusy", unit=MetricUnit.Count, value=1)
        logger.info("pack claimed by another dispatcher; SQS will deliver it again")
        raise
    except RateLimiterUnavailable:
        metrics.add_metric(name="RateLimiterFailures", unit=MetricUnit.Count, value=1)
        logger.exception("rate limiter failed before anything was sent; SQS will deliver the pack again (or its DLQ)")
        raise
    _emit_provider_calls(summary.calls)
    _emit_summary(summary)


def _emit_provider_calls(calls: ProviderCalls) -> None:
    """What the provider's calls said (its alarms: error rates per category, the breaker opening)."""
    metrics.add_metric(name="RecipientsAttempted", unit=MetricUnit.Count, value=calls.attempted)
    metrics.add_metric(name="CircuitBreakerOpened", unit=MetricUnit.Count, value=int(calls.breaker_opened))
    for category, count in calls.errors.items():
        # One EMF line per category: a metric set shares its dimensions, and `category` is this metric's alone.
        emit_count("ProviderErrors", count, provider=PROVIDER.value, category=category.value)


def _emit_summary(summary: DispatchSummary, said: str = "pack sent") -> None:
    metrics.add_metric(name="RecipientsSubmitted", unit=MetricUnit.Count, value=summary.submitted)
    metrics.add_metric(name="RecipientsFailed", unit=MetricUnit.Count, value=summary.failed)
    metrics.add_metric(name="RecipientsUnknownOutcome", unit=MetricUnit.Count, value=summary.unknown)
    metrics.add_metric(name="WebhooksNotQueued", unit=MetricUnit.Count, value=summary.webhooks_not_queued)
    metrics.add_metric(name="RecipientsRetried", unit=MetricUnit.Count, value=summary.retried)
    metrics.add_metric(name="RecipientsSkippedAsDuplicate", unit=MetricUnit.Count, value=summary.skipped)
    # Recipients put back on the queue (with a short delay) for want of a provider rate-limit permit.
    metrics.add_metric(name="RecipientsRateLimited", unit=MetricUnit.Count, value=summary.deferred)
    metrics.add_metric(name="RecipientsFailedOver", unit=MetricUnit.Count, value=summary.failed_over)
    metrics.add_metric(name="UnknownOutcomesExpired", unit=MetricUnit.Count, value=summary.expired)
    metrics.add_metric(name="RecipientsValidityLapsed", unit=MetricUnit.Count, value=summary.lapsed)
    emit_route_stats_not_written(summary.route_stats_not_written)
    # Outcomes of receipts held until the records were written (the delivery-rate alarms; the receipts endpoint
    # emits the rest, with the same {service, provider} dimensions).
    metrics.add_metric(name="RecipientsDelivered", unit=MetricUnit.Count, value=summary.delivered)
    metrics.add_metric(name="RecipientsUndelivered", unit=MetricUnit.Count, value=summary.undelivered)
    if summary.deferred:
        logger.info(
            "no rate-limit permit, or no time left to call: recipients put back on the queue",
            extra={"deferred": summary.deferred},
        )
    if summary.failed_over:
        logger.warning("recipients moved to the next provider of their route", extra={"moved": summary.failed_over})
    logger.info(said, extra={"submitted": summary.submitted, "failed": summary.failed})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
