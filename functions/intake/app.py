"""The SQS intake queue's consumer: each record is a send request, accepted as through the API."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from globesms.accept import idempotency
from globesms.accept.intake import IntakeDeferred, IntakeRefused, accept_intake
from globesms.aws import wiring
from globesms.config import AcceptSettings, settings
from globesms.domain.clock import deadline, utc_now
from globesms.domain.ids import FIRST_MESSAGE_ID, first_message_id
from globesms.observability import emit_accept_metrics, emit_spend_limit_used, logger, metrics, tracer

# Report every failed record, even when all of a batch failed, instead of raising: the effect on the queue is the
# same (each failure is retried, then dead-lettered) and the function does not count as erroring.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@tracer.capture_method
def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    # A redriven body's first MessageId names its batch (`sqs-<id>` when the body names none): logged with it.
    first_id = _first_message_id(record)
    logger.append_keys(sqs_message_id=record.message_id, first_message_id=first_id)
    try:
        # Idempotent per record: on the body's idempotency_key when it has one (Powertools idempotency, 24 h),
        # and always on its batch id (accept's conditional header).
        outcome = accept_intake(
            record.body,
            sqs_message_id=first_id,
            now=utc_now(),
            retention_days=settings(AcceptSettings).retention_days,
            store=wiring.message_store(),
            queues=wiring.pack_queues(),
            run_once=idempotency.run_once,
            ledger=wiring.spend_ledger(),
            otp=wiring.otp_guard(),
            owner=settings(AcceptSettings).intake_owner,
            accepting_until=deadline(lambda_context),
        )
    except IntakeRefused as exc:
        logger.set_correlation_id(exc.batch_id)
        metrics.add_metric(name="IntakeBodiesRefused", unit=MetricUnit.Count, value=1)
        logger.warning("intake body refused", extra={"batch_id": exc.batch_id, "code": exc.refusal.code})
        raise
    except IntakeDeferred as exc:
        # Left on the queue: SQS delivers it again after the visibility timeout, and it gets the first answer.
        logger.set_correlation_id(exc.batch_id)
        metrics.add_metric(name=exc.metric, unit=MetricUnit.Count, value=1)
        logger.info("body left for a later receive", extra={"reason": str(exc)})
        raise
    result = outcome.answer
    logger.set_correlation_id(result.batch_id)
    if outcome.replayed:
        metrics.add_metric(name="IdempotentReplays", unit=MetricUnit.Count, value=1)
        logger.info("idempotency key seen before: first answer kept, nothing sent", extra={"batch_id": result.batch_id})
        return
    emit_accept_metrics(result)
    emit_spend_limit_used(wiring.spend_ledger(), utc_now())
    logger.info("batch accepted", extra={"accepted": result.accepted, "rejected": result.rejected})


def _first_message_id(record: SQSRecord) -> str:
    """The MessageId the body was first sent with: a redriven one carries it (`FIRST_MESSAGE_ID`)."""
    attribute = (record.raw_event.get("messageAttributes") or {}).get(FIRST_MESSAGE_ID)
    value = attribute.get("stringValue") if isinstance(attribute, dict) else None
    return first_message_id(record.message_id, value if isinstance(value, str) else None)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
