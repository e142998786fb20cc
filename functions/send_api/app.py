"""The HTTP API behind API Gateway (REST API, API key): every route is in the layer's globesms.api, one router per
part of the API (docs/architecture.md); this handler sets up the invocation's logging, tracing and metrics and
hands the event to it."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from globesms.accept import idempotency
from globesms.api.resolver import app, handle
from globesms.aws import snapstart
from globesms.config import AcceptSettings, settings
from globesms.observability import logger, metrics, tracer

__all__ = ["app", "lambda_handler"]

snapstart.register(idempotency.forget_layers)  # with SnapStart on: nothing unique or expiring kept from the snapshot


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings(AcceptSettings)  # read and checked once per process: a misconfiguration fails the first request, named
    idempotency.register_lambda_context(context)
    return handle(event, context)
