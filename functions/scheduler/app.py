"""SchedulerFunction: the minute sweep of the release index (an EventBridge schedule), and the releases of held
packs (the release queue's messages), both from globesms.scheduling (docs/scheduling.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from globesms.aws import wiring
from globesms.config import SchedulerSettings, settings
from globesms.domain.clock import utc_now
from globesms.observability import logger, metrics, tracer
from globesms.scheduling.release import ReleaseMessage, release
from globesms.scheduling.sweep import TIME_SHARE as SWEEP_TIME_SHARE
from globesms.scheduling.sweep import sweep

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    ref = ReleaseMessage.model_validate_json(record.body).ref()  # a bad body fails alone, then to the DLQ
    logger.append_keys(batch_id=ref.batch_id)
    done = release(ref, wiring.schedule_store(), wiring.pack_queues(), wiring.release_queue(), now=utc_now())
    metrics.add_metric(name="ScheduledReleased", unit=MetricUnit.Count, value=done.released)
    logger.info(
        "release queued again: before its send_at" if done.requeued else "scheduled recipients released",
        extra={
            "send_at": ref.send_at,
            "packs": done.packs,
            "released": done.released,
            "not_released": done.not_released,
            "handed_on": done.handed_on,
        },
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings(SchedulerSettings)  # read and checked once per process: a misconfiguration fails the first invocation
    if event.get("detail-type") == "Scheduled Event":
        # Begins no page of releases past its share of the invocation's time (but its first): the next run goes on
        # from the cursor, which moves after each page.
        stop_at = utc_now() + timedelta(milliseconds=context.get_remaining_time_in_millis() * SWEEP_TIME_SHARE)
        done = sweep(wiring.schedule_store(), wiring.release_queue(), now=utc_now(), stop_at=stop_at, clock=utc_now)
        # Every sweep, 0 included: the count over time shows the sweep running (and a flush with no metric at all
        # makes Powertools warn in the log, once per execution environment).
        metrics.add_metric(name="ScheduledReleasesQueued", unit=MetricUnit.Count, value=done.releases)
        logger.info(
            "release index swept", extra={"buckets": done.buckets, "releases": done.releases, "left": done.left}
        )
        return {"buckets": done.buckets, "releases": done.releases}
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
