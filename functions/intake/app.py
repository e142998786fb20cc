"""The SQS intake queue's consumer: each record is a send request, accepted as through the API."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from globesms.aws import wiring
from globesms.clock import utc_now
from globesms.config import settings
from globesms.intake import IntakeRefused, accept_intake_body
from globesms.observability import emit_accept_metrics, logger, metrics, tracer

# Report every failed record, even when all of a batch failed, instead of raising: the effect on the queue is the
# same (each failure is retried, then dead-lettered) and the function does not count as erroring.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    logger.append_keys(sqs_message_id=record.message_id)
    try:
        result = accept_intake_body(
            record.body,
            sqs_message_id=record.message_id,
            now=utc_now(),
            retention_days=settings().retention_days,
            store=wiring.message_store(),
            queues=wiring.pack_queues(),
        )
    except IntakeRefused as exc:
        logger.set_correlation_id(exc.batch_id)
        metrics.add_metric(name="IntakeBodiesRefused", unit=MetricUnit.Count, value=1)
        logger.warning("intake body refused", extra={"batch_id": exc.batch_id, "code": exc.refusal.code})
        raise
    logger.set_correlation_id(result.batch_id)
    emit_accept_metrics(result)
    logger.info("batch accepted", extra={"accepted": result.accepted, "rejected": result.rejected})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
