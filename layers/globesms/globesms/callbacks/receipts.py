"""POST /v1/receipts/{provider}/{token}: delivery receipts pushed by Alibaba, Tencent and Huawei.

In this order, each step before anything is read or written: the provider is one of ours, the token is its own, the
push is signed where the provider signs it, the body parses in the provider's format, it holds no more reports than
the provider sends at once. Then the reports are applied (receipts.apply), the final outcomes counted (route
statistics, metrics) and their follow-ups queued (resends, webhook events), all before the answer: a failure makes
the provider push again, and a repeat is harmless (its reports are duplicates: they count nothing and queue the
follow-ups again).
"""

import importlib
import json
from functools import cache
from types import ModuleType
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit

from globesms.aws import wiring
from globesms.callbacks.bodies import UndecodableBody, raw_body
from globesms.callbacks.push_signature import push_signed
from globesms.domain.clock import utc_now
from globesms.errors import RefusalCode
from globesms.http_errors import error_response
from globesms.models.outbound import ProviderName
from globesms.models.receipts import ReceiptBodyInvalid, TooManyReports
from globesms.observability import (
    emit_provider_outcomes,
    emit_route_stats_not_written,
    logger,
    metrics,
    tracer,
)
from globesms.providers import receipt_environment
from globesms.receipts.apply import PushResult, record_push
from globesms.receipts.auth import token_accepted
from globesms.receipts.failover import queue_resends
from globesms.receipts.push_limits import (
    MAX_REPORTS_PER_PUSH,
    TOO_LARGE_STATUS,
    max_push_bytes,
    too_large_acknowledgement,
)
from globesms.stats.record import record_outcomes

router = APIGatewayRouter()  # type: ignore[no-untyped-call]  # Powertools leaves Router.__init__ unannotated


@cache
def _receipt_format(provider: ProviderName) -> ModuleType:
    return importlib.import_module(f"globesms.providers.{provider}.receipts")


@router.post("/v1/receipts/<provider>/<token>")
@tracer.capture_method
def receive_receipts(provider: str, token: str) -> Response[Any]:
    try:
        name = ProviderName(provider)
    except ValueError:
        return error_response(RefusalCode.NOT_FOUND, f"no receipts endpoint for {provider!r}")
    logger.append_keys(provider=name.value)
    env = receipt_environment(name)
    if not token_accepted(name, token, env):
        metrics.add_metric(name="ReceiptPushesForbidden", unit=MetricUnit.Count, value=1)
        logger.warning("receipt push with a wrong token refused")
        return error_response(RefusalCode.FORBIDDEN, "wrong receipt token")
    try:
        body = raw_body(router.current_event)  # read only once the token is right
    except UndecodableBody as exc:
        return _unreadable(str(exc), size=len(router.current_event.body or ""))
    if not push_signed(name, env, router.current_event, body):
        metrics.add_metric(name="ReceiptPushesForbidden", unit=MetricUnit.Count, value=1)
        logger.warning("receipt push with a missing or wrong signature refused")
        return error_response(RefusalCode.UNAUTHORIZED, "missing or wrong push signature")
    if len(body) > max_push_bytes(name):
        return _too_large(name, size=len(body))
    receipt_format = _receipt_format(name)
    content_type = router.current_event.headers.get("content-type", "")
    try:
        push = receipt_format.parse_push(body, content_type, at_most=MAX_REPORTS_PER_PUSH[name])
    except ReceiptBodyInvalid as exc:
        return _unreadable(str(exc), size=len(body))
    except TooManyReports as exc:
        return _too_large(name, size=len(body), reports=exc.reports)
    result = PushResult()
    try:
        record_push(push.reports, store=wiring.receipt_store(), now=utc_now(), result=result)
    finally:
        # Counted even when a write fails midway, and before the follow-ups: either failure answers the provider an
        # error, it pushes again, and the reports already applied are duplicates then, which count nothing (and
        # queue their follow-ups again).
        _record_route_stats(result)
        _emit_push_metrics(name, result, refused_items=len(push.refused_items))
    _queue_follow_ups(result)
    if push.refused_items:
        logger.warning("receipt items refused", extra={"reasons": push.refused_items[:20]})
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=json.dumps(receipt_format.ACK))


def _too_large(name: ProviderName, *, size: int, reports: int | None = None) -> Response[Any]:
    """More reports, or more bytes, than the provider pushes at once (receipts.push_limits): 413, nothing read."""
    metrics.add_metric(name="ReceiptPushesTooLarge", unit=MetricUnit.Count, value=1)
    logger.warning("receipt push too large refused", extra={"reports": reports, "bytes": size})
    return Response(
        status_code=TOO_LARGE_STATUS,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(too_large_acknowledgement(name)),
    )


def _unreadable(reason: str, *, size: int) -> Response[Any]:
    metrics.add_metric(name="ReceiptPushesUnreadable", unit=MetricUnit.Count, value=1)
    logger.warning("receipt push unreadable", extra={"reason": reason, "bytes": size})
    return error_response(RefusalCode.UNREADABLE_RECEIPTS, reason)


def _record_route_stats(result: PushResult) -> None:
    """The push's final outcomes into the route statistics (docs/routing-scores.md): one update per bucket key."""
    written = record_outcomes(wiring.route_stats(), result.finals, utc_now())
    emit_route_stats_not_written(int(not written))


def _queue_follow_ups(result: PushResult) -> None:
    """Resends (receipts.failover) and status events, before the answer: a failure here makes the provider push
    again (the repeat queues them again; pack claims and event ids make repeats harmless)."""
    if result.resends:
        queue_resends(wiring.pack_queues(), result.resends)
    if result.webhooks:
        wiring.webhook_queue().send_webhooks(result.webhooks)


def _emit_push_metrics(name: ProviderName, result: PushResult, *, refused_items: int) -> None:
    for metric, value in (
        ("ReceiptsApplied", result.applied),
        ("ReceiptsDuplicate", result.duplicates),
        ("ReceiptsHeld", result.held),
        ("ReceiptsUnmatched", result.unmatched),
        ("ReceiptsWrongNumber", result.wrong_number),  # named a message, but with another number: not applied
        ("ReceiptItemsRefused", refused_items),
        ("ReceiptFailovers", result.failovers),  # resent through the next provider after UNDELIVERED
        ("DuplicateDelivery", result.duplicate_deliveries),  # a resent message's first attempt delivered too
    ):
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=value)
    _emit_outcomes(name, result)


def _emit_outcomes(name: ProviderName, result: PushResult) -> None:
    """Final outcomes by provider (the delivery-rate alarms), and the receipts that found one of its messages,
    early and repeated ones included (the receipts-stopped alarms: none for an hour while it was sent to means its
    pushes no longer reach us, or are refused)."""
    emit_provider_outcomes(
        name, delivered=result.delivered, undelivered=result.undelivered, receipts_pushed=result.matched
    )
