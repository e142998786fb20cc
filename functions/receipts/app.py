"""POST /v1/receipts/{provider}/{token}: delivery receipts pushed by Alibaba, Tencent and Huawei (no API key)."""

from __future__ import annotations

import base64
import importlib
import json
from functools import cache
from types import ModuleType
from typing import Any

from aws_lambda_powertools import single_metric
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from globesms.aws import snapstart, wiring
from globesms.config import ReceiptsSettings, settings
from globesms.domain.clock import utc_now
from globesms.errors import RefusalCode
from globesms.http_errors import error_response
from globesms.models.outbound import ProviderName
from globesms.models.receipts import ReceiptBodyInvalid
from globesms.observability import NAMESPACE, SERVICE, logger, metrics, tracer
from globesms.providers import receipt_environment
from globesms.receipts.apply import PushResult, record_push
from globesms.receipts.auth import push_signature_accepted, token_accepted
from globesms.receipts.failover import queue_resends
from globesms.receipts.push_limits import TOO_LARGE_STATUS, push_too_large, too_large_acknowledgement
from globesms.replies.auth import reply_environment, reply_token_accepted
from globesms.replies.models import ReplyBodyInvalid
from globesms.replies.record import record_replies
from globesms.stats.record import record_outcomes

settings(ReceiptsSettings)  # every variable of this function checked at cold start (tokens: per push)
app = APIGatewayRestResolver()
snapstart.register()  # with SnapStart on: nothing unique or expiring kept from the snapshot


@cache
def _receipt_format(provider: ProviderName) -> ModuleType:
    return importlib.import_module(f"globesms.providers.{provider}.receipts")


def _raw_body() -> bytes:
    event = app.current_event
    body = event.body or ""
    return base64.b64decode(body) if event.is_base64_encoded else body.encode()


@app.post("/v1/receipts/<provider>/<token>")
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
    body = _raw_body()
    event = app.current_event
    if not push_signature_accepted(
        name,
        env,
        method=event.http_method,
        path=event.request_context.path or event.path,  # as the pusher addressed it: with the API stage
        query=event.query_string_parameters or {},
        headers=event.headers,
        body=body,
        now=utc_now(),
    ):
        metrics.add_metric(name="ReceiptPushesForbidden", unit=MetricUnit.Count, value=1)
        logger.warning("receipt push with a missing or wrong signature refused")
        return error_response(RefusalCode.UNAUTHORIZED, "missing or wrong push signature")
    receipt_format = _receipt_format(name)
    try:
        push = receipt_format.parse_push(body, app.current_event.headers.get("content-type", ""))
    except ReceiptBodyInvalid as exc:
        metrics.add_metric(name="ReceiptPushesUnreadable", unit=MetricUnit.Count, value=1)
        logger.warning("receipt push unreadable", extra={"reason": str(exc), "bytes": len(body)})
        return error_response(RefusalCode.UNREADABLE_RECEIPTS, str(exc))
    reports = len(push.reports) + len(push.refused_items)
    if push_too_large(name, reports):
        metrics.add_metric(name="ReceiptPushesTooLarge", unit=MetricUnit.Count, value=1)
        logger.warning("receipt push with too many reports refused", extra={"reports": reports})
        return Response(
            status_code=TOO_LARGE_STATUS,
            content_type=content_types.APPLICATION_JSON,
            body=json.dumps(too_large_acknowledgement(name)),
        )
    result = record_push(push.reports, store=wiring.receipt_store(), now=utc_now())
    _queue_follow_ups(result)
    _record_route_stats(result)
    for metric, value in (
        ("ReceiptsApplied", result.applied),
        ("ReceiptsDuplicate", result.duplicates),
        ("ReceiptsHeld", result.held),
        ("ReceiptsUnmatched", result.unmatched),
        ("ReceiptItemsRefused", len(push.refused_items)),
        ("ReceiptFailovers", result.failovers),  # resent through the next provider after UNDELIVERED
        ("DuplicateDelivery", result.duplicate_deliveries),  # a resent message's first attempt delivered too
    ):
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=value)
    _emit_outcomes(name, result)
    if push.refused_items:
        logger.warning("receipt items refused", extra={"reasons": push.refused_items[:20]})
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=json.dumps(receipt_format.ACK))


def _record_route_stats(result: PushResult) -> None:
    """The push's final outcomes into the route statistics (docs/routing-scores.md): one update per bucket key."""
    written = record_outcomes(wiring.route_stats(), result.finals, utc_now())
    metrics.add_metric(name="RouteStatsNotWritten", unit=MetricUnit.Count, value=int(not written))


def _queue_follow_ups(result: PushResult) -> None:
    """Resends (receipts.failover) and status events, before the answer: a failure here makes the provider push
    again (the repeat queues them again; pack claims and event ids make repeats harmless)."""
    if result.resends:
        queue_resends(wiring.pack_queues(), result.resends)
    if result.webhooks:
        wiring.webhook_queue().send_webhooks(result.webhooks)


def _emit_outcomes(name: ProviderName, result: PushResult) -> None:
    """Final outcomes by provider (the delivery-rate alarms), each its own EMF line: the handler's other metrics
    keep the {service} dimension set alone."""
    for metric, value in (("RecipientsDelivered", result.delivered), ("RecipientsUndelivered", result.undelivered)):
        with single_metric(
            name=metric,
            unit=MetricUnit.Count,
            value=value,
            namespace=NAMESPACE,
            default_dimensions={"service": SERVICE, "provider": name.value},
        ):
            pass


# ======== replies: POST /v1/replies/{provider}/{token} (docs/consent.md) ========


@cache
def _reply_format(provider: ProviderName) -> ModuleType:
    return importlib.import_module(f"globesms.providers.{provider}.replies")


@app.post("/v1/replies/<provider>/<token>")
@tracer.capture_method(capture_response=False)
def receive_replies(provider: str, token: str) -> Response[Any]:
    try:
        name = ProviderName(provider)
    except ValueError:
        name = None
    # An unknown provider and a wrong token get the same answer, before the body is read.
    if name is None or not reply_token_accepted(name, token, reply_environment(name)):
        metrics.add_metric(name="ReplyPushesForbidden", unit=MetricUnit.Count, value=1)
        logger.warning("reply push refused: unknown provider or wrong token")
        return error_response(RefusalCode.FORBIDDEN, "wrong reply token")
    logger.append_keys(provider=name.value)
    reply_format = _reply_format(name)
    body = _raw_body()
    try:
        parsed = reply_format.parse_replies(body, app.current_event.headers.get("content-type", ""))
    except ReplyBodyInvalid as exc:
        metrics.add_metric(name="ReplyPushesUnreadable", unit=MetricUnit.Count, value=1)
        logger.warning("reply push unreadable", extra={"reason": str(exc), "bytes": len(body)})
        return error_response(RefusalCode.UNREADABLE_REPLIES, str(exc))
    result = record_replies(parsed.replies, wiring.reply_deps(), utc_now())
    for metric, value in (
        ("RepliesStored", result.stored),
        ("RepliesDuplicate", result.duplicates),
        ("RepliesOptedOut", result.opted_out),
        ("RepliesOptedIn", result.opted_in),
        ("ReplyKeywordsStale", result.stale_keywords),
        ("ReplyItemsRefused", len(parsed.refused_items)),
    ):
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=value)
    if parsed.refused_items:
        logger.warning("reply items refused", extra={"reasons": parsed.refused_items[:20]})
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body=json.dumps(reply_format.REPLY_ACK)
    )


# ======== end of the replies block ========


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
