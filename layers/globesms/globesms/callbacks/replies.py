"""POST /v1/replies/{provider}/{token}: the SMS people sent back (docs/consent.md). An unknown provider and a wrong
token get the same answer, before the body is read; then the replies are parsed in the provider's format and
recorded (replies.record: stored once, STOP and START applied, message.received queued)."""

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
from globesms.observability import logger, metrics, tracer
from globesms.providers import receipt_environment
from globesms.replies.auth import reply_environment, reply_token_accepted
from globesms.replies.models import ReplyBodyInvalid, max_reply_push_bytes
from globesms.replies.record import record_replies

router = APIGatewayRouter()  # type: ignore[no-untyped-call]  # Powertools leaves Router.__init__ unannotated


@cache
def _reply_format(provider: ProviderName) -> ModuleType:
    return importlib.import_module(f"globesms.providers.{provider}.replies")


@router.post("/v1/replies/<provider>/<token>")
@tracer.capture_method(capture_response=False)
def receive_replies(provider: str, token: str) -> Response[Any]:
    try:
        name = ProviderName(provider)
    except ValueError:
        name = None
    if name is None or not reply_token_accepted(name, token, reply_environment(name)):
        metrics.add_metric(name="ReplyPushesForbidden", unit=MetricUnit.Count, value=1)
        logger.warning("reply push refused: unknown provider or wrong token")
        return error_response(RefusalCode.FORBIDDEN, "wrong reply token")
    logger.append_keys(provider=name.value)
    reply_format = _reply_format(name)
    try:
        body = raw_body(router.current_event)
    except UndecodableBody as exc:
        return _unreadable(str(exc), size=len(router.current_event.body or ""))
    if name is ProviderName.HUAWEI and not push_signed(name, receipt_environment(name), router.current_event, body):
        metrics.add_metric(name="ReplyPushesForbidden", unit=MetricUnit.Count, value=1)
        logger.warning("reply push with a missing or wrong signature refused")
        return error_response(RefusalCode.UNAUTHORIZED, "missing or wrong push signature")
    if len(body) > max_reply_push_bytes(name):
        metrics.add_metric(name="ReplyPushesUnreadable", unit=MetricUnit.Count, value=1)
        logger.warning("reply push too large refused", extra={"bytes": len(body)})
        return error_response(RefusalCode.BODY_TOO_LARGE, f"at most {max_reply_push_bytes(name)} bytes a push")
    try:
        parsed = reply_format.parse_replies(body, router.current_event.headers.get("content-type", ""))
    except ReplyBodyInvalid as exc:
        return _unreadable(str(exc), size=len(body))
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


def _unreadable(reason: str, *, size: int) -> Response[Any]:
    metrics.add_metric(name="ReplyPushesUnreadable", unit=MetricUnit.Count, value=1)
    logger.warning("reply push unreadable", extra={"reason": reason, "bytes": size})
    return error_response(RefusalCode.UNREADABLE_REPLIES, reason)
