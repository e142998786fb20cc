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

# The receipts route's variables are checked at cold start. The replies route's (RepliesSettings, the receipt
# authentication's) are read per push: an invalid one fails that push (a function error, under the function's error
# alarm; the provider sends the push again), so that a bad reply setting never stops receipts as well.
settings(ReceiptsSettings)
snapstart.register()  # with SnapStart on: nothing unique or expiring kept from the snapshot


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
