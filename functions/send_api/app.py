"""POST /v1/messages, GET /v1/messages/{id}, GET /v1/batches/{id} behind API Gateway (REST API, API key).

No `from __future__ import annotations` here: the resolver reads the route signatures at run time.
"""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from globesms.accept import idempotency, queries
from globesms.accept.service import TooManyRecipients, accept, body_hash
from globesms.aws import wiring
from globesms.config import AcceptSettings, settings
from globesms.domain.clock import utc_now
from globesms.domain.ids import keyed_batch_id, new_batch_id
from globesms.http_errors import (
    error_response,
    not_json_message,
    refuse_non_json_body,
    refuse_undecodable_body,
    validation_error_response,
    with_plain_json_content_type,
)
from globesms.models.api import (
    IDEMPOTENCY_KEY_PATTERN,
    IDEMPOTENCY_KEY_RULE,
    MAX_RECIPIENTS_PER_REQUEST,
    AcceptResponse,
    BatchView,
    ErrorResponse,
    MessageSpec,
    MessageView,
    SendBody,
    specs_of,
)
from globesms.observability import emit_accept_metrics, logger, metrics, tracer

app = APIGatewayRestResolver(enable_validation=True)

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"  # "true" on an answer given again for a repeated Idempotency-Key


class NotFound(LookupError):
    pass


# The OpenAPI document names every answer a route gives, with its real shape: Powertools would otherwise document
# its own 422 shape, and the route's return type for every other status it is told about.
def _answer(description: str, model: Any = ErrorResponse, **extra: Any) -> OpenAPIResponse:
    return {"description": description, "content": {content_types.APPLICATION_JSON: {"model": model}}, **extra}


_INVALID = _answer("VALIDATION_ERROR: the fields (body, path, query or header) that break the schema, with the rule")


@app.post(
    "/v1/messages",
    responses={
        202: _answer(
            "Accepted: every recipient queued or rejected",
            AcceptResponse,
            headers={
                REPLAYED_HEADER: {
                    "description": "the first answer to this Idempotency-Key, given again: nothing was sent",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            },
        ),
        400: _answer("MALFORMED_JSON: the body is not JSON"),
        409: _answer(
            "IDEMPOTENCY_KEY_REUSED (another body), or IDEMPOTENCY_KEY_IN_PROGRESS (retry after Retry-After seconds)",
            headers={"Retry-After": {"description": "seconds", "schema": {"type": "string"}}},
        ),
        413: _answer(f"TOO_MANY_RECIPIENTS: more than {MAX_RECIPIENTS_PER_REQUEST} recipients"),
        415: _answer("UNSUPPORTED_MEDIA_TYPE: the body is not sent as JSON"),
        422: _INVALID,
    },
)
@tracer.capture_method
def send_messages(
    body: Annotated[SendBody, Body(embed=False)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description=f"The same key within 24 h returns the first answer and sends nothing: {IDEMPOTENCY_KEY_RULE}",
        ),
    ] = None,
) -> Response[AcceptResponse]:
    specs = specs_of(body)
    if idempotency_key is None:
        result, replayed = _accept(specs), False
    else:
        # Idempotent on the key alone (per API key), validated against the body: the same key with another body
        # is refused, and a refusal (413) is not kept as the key's answer.
        scope = f"api:{app.current_event.request_context.identity.api_key_id or ''}"
        payload = [spec.model_dump(mode="json") for spec in specs]
        # The batch id follows from the key and body: an attempt that died after queueing, before its answer was
        # kept, is resumed by the next one (same records, same packs), not sent again as a new batch.
        batch_id = keyed_batch_id(scope, idempotency_key, body_hash(specs))
        outcome = idempotency.run_once(
            scope=scope, key=idempotency_key, payload=payload, work=lambda: _accept(specs, batch_id)
        )
        result, replayed = outcome.answer, outcome.replayed
    logger.append_keys(batch_id=result.batch_id)
    if replayed:
        metrics.add_metric(name="IdempotentReplays", unit=MetricUnit.Count, value=1)
        logger.info("idempotency key seen before: first answer given again, nothing sent")
    else:
        emit_accept_metrics(result)
        logger.info("batch accepted", extra={"accepted": result.accepted, "rejected": result.rejected})
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body=result,
        headers={REPLAYED_HEADER: "true"} if replayed else None,
    )


def _accept(specs: list[MessageSpec], batch_id: str | None = None) -> AcceptResponse:
    batch_id = batch_id or new_batch_id()
    logger.append_keys(batch_id=batch_id)
    return accept(
        specs,
        batch_id=batch_id,
        source="api",
        now=utc_now(),
        retention_days=settings(AcceptSettings).retention_days,
        store=wiring.message_store(),
        queues=wiring.pack_queues(),
    )


@app.get(
    "/v1/messages/<message_id>",
    responses={200: _answer("The message", MessageView), 404: _answer("NOT_FOUND"), 422: _INVALID},
)
@tracer.capture_method
def get_message(message_id: Annotated[str, Path(max_length=128)]) -> MessageView:
    view = queries.get_message(wiring.message_store(), message_id)
    if view is None:
        raise NotFound(f"no message {message_id}")
    return view


@app.get(
    "/v1/batches/<batch_id>",
    responses={
        200: _answer("The batch and a page of its messages", BatchView),
        404: _answer("NOT_FOUND"),
        422: _INVALID,
    },
)
@tracer.capture_method
def get_batch(
    batch_id: Annotated[str, Path(max_length=64)],
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 100,
    after: Annotated[str | None, Query(max_length=128)] = None,
) -> BatchView:
    view = queries.get_batch(wiring.message_store(), batch_id, limit=limit, after=after)
    if view is None:
        raise NotFound(f"no batch {batch_id}")
    return view


@app.exception_handler(NotFound)
def _not_found(exc: NotFound) -> Response[Any]:
    metrics.add_metric(name="NotFound", unit=MetricUnit.Count, value=1)
    return error_response(404, "NOT_FOUND", str(exc))


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[Any]:
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    return validation_error_response([_name_the_header(error) for error in exc.errors()])


def _name_the_header(error: dict[str, Any]) -> dict[str, Any]:
    """A bad Idempotency-Key is reported as the header the client wrote, with the rule in words."""
    location = [str(part).lower() for part in error.get("loc", ())]
    if location[:2] == ["header", IDEMPOTENCY_HEADER.lower()]:
        return {**error, "loc": (IDEMPOTENCY_HEADER,), "msg": f"must be {IDEMPOTENCY_KEY_RULE}, given once"}
    return error


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_content_type(exc: RequestUnsupportedContentType) -> Response[Any]:
    # Reached only by what refuse_non_json_body lets through, e.g. an empty body under a type that is not JSON.
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    media_type = app.current_event.headers.get("content-type", "").split(";")[0].strip().lower()
    return error_response(415, "UNSUPPORTED_MEDIA_TYPE", not_json_message(media_type))


@app.exception_handler(idempotency.KeyReused)
def _key_reused(exc: idempotency.KeyReused) -> Response[Any]:
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    return error_response(409, "IDEMPOTENCY_KEY_REUSED", str(exc))


@app.exception_handler(idempotency.KeyInProgress)
def _key_in_progress(exc: idempotency.KeyInProgress) -> Response[Any]:
    metrics.add_metric(name="IdempotencyKeyInProgress", unit=MetricUnit.Count, value=1)
    response = error_response(409, "IDEMPOTENCY_KEY_IN_PROGRESS", str(exc))
    response.headers["Retry-After"] = "2"
    return response


@app.exception_handler(TooManyRecipients)
def _too_many(exc: TooManyRecipients) -> Response[Any]:
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    return error_response(413, "TOO_MANY_RECIPIENTS", str(exc))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    refusal = refuse_non_json_body(event) or refuse_undecodable_body(event)
    if refusal is not None:
        metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
        return refusal
    return app.resolve(with_plain_json_content_type(event), context)
