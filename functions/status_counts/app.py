"""The messages table's stream consumer: each batch's status counts follow its message records' status changes
(`globesms.counts`), so a batch poll reads one counts item instead of the whole batch.

The event source's filter hands over message records only (sort key `M#`); a failed invocation is retried from the
same first record (no bisecting), which is what `StatusCounts.add` needs to count each change once.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from globesms.aws import wiring
from globesms.config import StatusCountsSettings, settings
from globesms.counts.tally import StatusChange, status_change
from globesms.observability import logger, metrics, tracer


def changes_of(event: dict[str, Any]) -> list[StatusChange]:
    changes = []
    for record in DynamoDBStreamEvent(event).records:
        stream = record.dynamodb
        if stream is None or stream.sequence_number is None:
            continue
        change = status_change(stream.sequence_number, stream.keys or {}, stream.old_image, stream.new_image)
        if change is not None:
            changes.append(change)
    return changes


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> None:
    settings(StatusCountsSettings)  # a missing table name fails here, named, before anything is read
    changes = changes_of(event)
    wiring.status_counts().add(changes)
    metrics.add_metric(name="StatusChangesCounted", unit=MetricUnit.Count, value=len(changes))
    logger.info("status changes counted", extra={"records": len(event.get("Records", [])), "changes": len(changes)})
