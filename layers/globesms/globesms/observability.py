"""Logger, Metrics and the tracer shared by every handler, and the guard that keeps phone numbers out of logs."""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from globesms.domain.masking import mask_numbers
from globesms.tracing import LazyTracer

if TYPE_CHECKING:  # every handler imports this module: its cold start need not build the API models for a hint
    from datetime import datetime

    from globesms.guardrails.otp_guard import Trip
    from globesms.guardrails.ports import SpendLedger
    from globesms.models.outbound import ProviderName
    from globesms.models.views import AcceptResponse

SERVICE = "globesms"
NAMESPACE = "globesms"

_STANDARD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class PhoneNumberMask(logging.Filter):
    """Defence in depth: no log call passes a full number on purpose, and this filter, on the handler every
    globesms logger writes through, masks anything that looks like one in the message, its arguments and extras."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_numbers(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(mask_numbers(a) if isinstance(a, str) else a for a in record.args)
        for name, value in list(record.__dict__.items()):
            if name not in _STANDARD_ATTRIBUTES and isinstance(value, str):
                setattr(record, name, mask_numbers(value))
        return True


def _masked_tracebacks(logger: Logger) -> None:
    """Tracebacks pass the mask too: an exception's message may quote a number (a parser's, a provider's answer),
    and the filter above never sees it (Powertools formats `exc_info` itself). The traceback's text is masked, and
    Powertools' structured `stack_trace`, which repeats the exception's message as it is, is left out: the text has
    the same frames."""
    formatter = logger.registered_formatter
    format_exception = formatter.formatException
    setattr(formatter, "formatException", lambda exc_info: mask_numbers(format_exception(exc_info)))  # noqa: B010


logger = Logger(service=SERVICE, serialize_stacktrace=False)
logger.registered_handler.addFilter(PhoneNumberMask())
_masked_tracebacks(logger)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
# Only AWS calls become subsegments: X-Ray's httpx patch records the URL of every request, and a customer's
# status_callback path may hold the customer's own secret. Responses and errors are never captured as metadata
# (POWERTOOLS_TRACER_CAPTURE_RESPONSE / _ERROR=false in template.yaml's Globals: the API's answers hold numbers).
# Built only when the deployment turns the Tracer on (globesms/tracing.py: template parameter TracerSubsegments).
tracer = LazyTracer(service=SERVICE, patch_modules=("botocore",))


def emit_accept_metrics(result: AcceptResponse) -> None:
    """RecipientsAccepted per provider (one EMF line each: a metric set shares its dimensions) and
    RecipientsRejected."""
    for provider, count in Counter(m.provider for m in result.messages).items():
        emit_count("RecipientsAccepted", count, provider=provider.value)
    metrics.add_metric(name="RecipientsRejected", unit=MetricUnit.Count, value=result.rejected)


def emit_spend_limit_used(ledger: SpendLedger, now: datetime) -> None:
    """SpendLimitUsedPercent after an accept (the 80 % alarm reads it). Best effort: the batch is accepted and its
    answer owed; a failed read (a throttled table) leaves one point out of the metric. Until 2026-12-06 it escaped
    the handler after the batch was queued: a 5xx that a client without an Idempotency-Key would retry, sending
    the batch again under a new id."""
    from globesms.guardrails.usage import used_percent

    try:
        percent = used_percent(ledger, now=now)
    except Exception:
        logger.warning("spend limit share not read: the metric skips this accept", exc_info=True)
        return
    if percent is not None:  # the deployment has a spend limit
        metrics.add_metric(name="SpendLimitUsedPercent", unit=MetricUnit.Percent, value=percent)


def emit_count(name: str, value: int, **dimensions: str) -> None:
    """One count on its own EMF line, with {service} and `dimensions` (a metric set shares one dimension set: a
    metric with dimensions of its own, or without the handler's, cannot join it). None when metrics are off
    (POWERTOOLS_METRICS_DISABLED, or POWERTOOLS_DEV without it), as for the shared `metrics`: Powertools'
    `single_metric` prints its line whatever they say, where `Metrics.flush_metrics` asks `is_metrics_disabled`."""
    if is_metrics_disabled():
        return
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=value,
        namespace=NAMESPACE,
        default_dimensions={"service": SERVICE, **dimensions},
    ):
        pass


def emit_provider_outcomes(
    provider: ProviderName,
    *,
    delivered: int,
    undelivered: int,
    receipts_pushed: int | None = None,
    receipts_missing: int | None = None,
) -> None:
    """Final outcomes by provider, each its own EMF line (the handler's other metrics keep their own dimension
    set): RecipientsDelivered and RecipientsUndelivered, what the provider said (the delivery-rate alarms); from
    the receipts endpoint ReceiptsPushed, the receipts that reached us for its messages (the receipts-stopped
    alarms); from reconcile ReceiptsMissing, messages it said nothing of by their deadline (the dashboard)."""
    counts = [("RecipientsDelivered", delivered), ("RecipientsUndelivered", undelivered)]
    if receipts_pushed is not None:
        counts.append(("ReceiptsPushed", receipts_pushed))
    if receipts_missing is not None:
        counts.append(("ReceiptsMissing", receipts_missing))
    for metric, value in counts:
        emit_count(metric, value, provider=provider.value)


def emit_route_stats_not_written(failed: int) -> None:
    """RouteStatsNotWritten (failed updates of the route statistics) with {service} alone, whichever function wrote
    them: the dispatchers' own metric set carries their provider, and the alarm reads one series."""
    emit_count("RouteStatsNotWritten", failed)


def emit_pumping_suspected(trip: Trip) -> None:
    """PumpingSuspected: OTP recipients held as suspected SMS pumping, by country (guardrails/pumping.py)."""
    emit_count("PumpingSuspected", trip.held, country=trip.country)
