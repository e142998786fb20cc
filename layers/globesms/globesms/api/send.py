"""POST /v1/messages: a send request accepted (records written, packs queued) or, as a dry run, quoted."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.metrics import MetricUnit

from globesms.accept import idempotency
from globesms.accept.canonical import idempotency_payload, keyed_batch
from globesms.accept.quote import quote
from globesms.accept.service import accept
from globesms.api.routers import new_router, owner
from globesms.aws import wiring
from globesms.config import AcceptSettings, settings
from globesms.domain.clock import deadline, utc_now
from globesms.domain.ids import new_batch_id
from globesms.errors import RefusalCode
from globesms.models.api import (
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY_PATTERN,
    IDEMPOTENCY_KEY_RULE,
    REPLAYED_HEADER,
    MessageSpec,
    SendBody,
    refusal_answers,
    specs_of,
    success_answer,
)
from globesms.models.guardrails import QuoteResponse
from globesms.models.views import AcceptResponse
from globesms.observability import emit_accept_metrics, emit_spend_limit_used, logger, metrics, tracer

router = new_router()


# The OpenAPI document names every answer a route gives, with its real shape (descriptions from the models and the
# codes): Powertools would otherwise document its own 422 shape, and the route's return type for every other status.
@router.post(
    "/v1/messages",
    responses={
        202: success_answer(
            AcceptResponse,
            headers={
                REPLAYED_HEADER: {
                    "description": "the first answer to this Idempotency-Key, given again: nothing was sent",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            },
        ),
        200: success_answer(QuoteResponse),
        **refusal_answers(
            RefusalCode.MALFORMED_JSON,
            RefusalCode.IDEMPOTENCY_KEY_REUSED,
            RefusalCode.IDEMPOTENCY_KEY_IN_PROGRESS,
            RefusalCode.BODY_TOO_LARGE,
            RefusalCode.TOO_MANY_RECIPIENTS,
            RefusalCode.UNSUPPORTED_MEDIA_TYPE,
            RefusalCode.VALIDATION_ERROR,
        ),
    },
)
@tracer.capture_method(capture_response=False)
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
    dry_run: Annotated[bool, Query(description="as the body's dry_run: a quote, nothing sent")] = False,
) -> Response[AcceptResponse | QuoteResponse]:
    specs = specs_of(body)
    if dry_run or body.dry_run:
        return _quote(specs)
    if idempotency_key is None:
        result, replayed = _accept(specs), False
    else:
        result, replayed = _accept_once(specs, idempotency_key)
    logger.append_keys(batch_id=result.batch_id)
    if replayed:
        metrics.add_metric(name="IdempotentReplays", unit=MetricUnit.Count, value=1)
        logger.info("idempotency key seen before: first answer given again, nothing sent")
    else:
        _emit_accepted(result)
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body=result,
        headers={REPLAYED_HEADER: "true"} if replayed else None,
    )


def _accept_once(specs: list[MessageSpec], idempotency_key: str) -> tuple[AcceptResponse, bool]:
    """Idempotent on the key alone (per API key), validated against the body: the same key with another body is
    refused, and a refusal (413) is not kept as the key's answer."""
    scope = f"api:{router.current_event.request_context.identity.api_key_id or ''}"
    # The payload checked and the batch id are one form of the body (`accept.canonical`): a body the key's check
    # takes for the same request names the same batch. The batch id follows from the key and body: an attempt that
    # died after queueing, before its answer was kept, is resumed by the next one (same records, same packs), not
    # sent again as a new batch.
    payload = idempotency_payload(specs)
    batch_id = keyed_batch(scope, idempotency_key, specs, wiring.message_store())
    outcome = idempotency.run_once(
        scope=scope, key=idempotency_key, payload=payload, work=lambda: _accept(specs, batch_id)
    )
    return outcome.answer, outcome.replayed


def _accept(specs: list[MessageSpec], batch_id: str | None = None) -> AcceptResponse:
    minted = batch_id is None
    batch_id = batch_id or new_batch_id()
    logger.append_keys(batch_id=batch_id)
    return accept(
        specs,
        batch_id=batch_id,
        new_batch_id=minted,
        source="api",
        now=utc_now(),
        retention_days=settings(AcceptSettings).retention_days,
        store=wiring.message_store(),
        queues=wiring.pack_queues(),
        ledger=wiring.spend_ledger(),
        owner=owner(router),
        otp=wiring.otp_guard(),
        accepting_until=deadline(router.lambda_context),
    )


def _emit_accepted(result: AcceptResponse) -> None:
    emit_accept_metrics(result)
    emit_spend_limit_used(wiring.spend_ledger(), utc_now())
    logger.info("batch accepted", extra={"accepted": result.accepted, "rejected": result.rejected})


def _quote(specs: list[MessageSpec]) -> Response[AcceptResponse | QuoteResponse]:
    answer = quote(
        specs,
        now=utc_now(),
        retention_days=settings(AcceptSettings).retention_days,
        ledger=wiring.spend_ledger(),
        owner=owner(router),
        otp=wiring.otp_guard(),
    )
    logger.info("dry run quoted", extra={"accepted": answer.accepted, "rejected": answer.rejected})
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=answer)
