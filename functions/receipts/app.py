"""The endpoints the providers call, without an API key: POST /v1/receipts/{provider}/{token} (delivery receipts)
and POST /v1/replies/{provider}/{token} (replies). Their routes are in the layer's globesms.callbacks; this handler
sets up the invocation's logging, tracing and metrics and hands the event to them."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from globesms.aws import snapstart
from globesms.callbacks.resolver import app, handle
from globesms.config import ReceiptsSettings, settings
from globesms.observability import logger, metrics, tracer

__all__ = ["app", "lambda_handler"]

settings(ReceiptsSettings)  # every variable of this function checked at cold start (tokens: per push)
snapstart.register()  # with SnapStart on: nothing unique or expiring kept from the snapshot


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
