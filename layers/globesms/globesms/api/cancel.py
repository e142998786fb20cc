"""Canceling what no provider has been asked to send yet (docs/scheduling.md): DELETE /v1/messages/{id} and
DELETE /v1/batches/{id}."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.metrics import MetricUnit

from globesms.api.refusals import NotFound
from globesms.api.routers import new_router, on_exception, owner
from globesms.aws import wiring
from globesms.domain.clock import utc_now
from globesms.errors import RefusalCode
from globesms.http_errors import error_response
from globesms.models.api import refusal_answers, success_answer
from globesms.observability import logger, metrics, tracer
from globesms.scheduling import cancel as scheduled

router = new_router()


@router.delete(
    "/v1/messages/<message_id>",
    summary="Cancel a message no provider has been asked to send yet (SCHEDULED, or QUEUED while no dispatcher "
    "holds its pack); one already handed on is answered as not cancelable",
    responses={
        200: success_answer(scheduled.CancelAnswer),
        **refusal_answers(RefusalCode.NOT_FOUND, RefusalCode.BATCH_STILL_ACCEPTING, RefusalCode.VALIDATION_ERROR),
    },
)
@tracer.capture_method(capture_response=False)
def cancel_message(message_id: Annotated[str, Path(max_length=128)]) -> scheduled.CancelAnswer:
    answer = scheduled.cancel_message(_cancel_deps(), message_id, now=utc_now(), owner=owner(router))
    return _answered(answer, missing=f"no message {message_id}")


@router.delete(
    "/v1/batches/<batch_id>",
    summary="Cancel every recipient of a batch no provider has been asked to send yet; the others are listed as "
    "not cancelable",
    responses={
        200: success_answer(scheduled.CancelAnswer),
        **refusal_answers(RefusalCode.NOT_FOUND, RefusalCode.BATCH_STILL_ACCEPTING, RefusalCode.VALIDATION_ERROR),
    },
)
@tracer.capture_method(capture_response=False)
def cancel_batch(batch_id: Annotated[str, Path(max_length=64)]) -> scheduled.CancelAnswer:
    logger.append_keys(batch_id=batch_id)
    answer = scheduled.cancel_batch(_cancel_deps(), batch_id, now=utc_now(), owner=owner(router))
    return _answered(answer, missing=f"no batch {batch_id}")


def _answered(answer: scheduled.CancelAnswer | None, *, missing: str) -> scheduled.CancelAnswer:
    """The cancel's answer, logged; 404 `missing` when there was nothing of that id (or not the caller's)."""
    if answer is None:
        raise NotFound(missing)
    logger.info("cancel", extra={"canceled": len(answer.canceled), "not_cancelable": len(answer.not_cancelable)})
    return answer


def _cancel_deps() -> scheduled.CancelDeps:
    return scheduled.CancelDeps(
        store=wiring.message_store(),
        schedule=wiring.schedule_store(),
        claims=wiring.pack_claims(),
        webhooks=wiring.webhook_queue(),
        spend=wiring.spend_ledger(),
    )


@on_exception(router, scheduled.BatchStillAccepting)
def _still_accepting(exc: scheduled.BatchStillAccepting) -> Response[Any]:
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    response = error_response(RefusalCode.BATCH_STILL_ACCEPTING, str(exc))
    response.headers["Retry-After"] = str(scheduled.RETRY_SECONDS)
    return response
