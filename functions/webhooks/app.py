"""The webhook queue's consumer: each record is one signed status event to POST to a customer's status_callback.

Retries go through SQS: a failed delivery's message is made invisible for an exponential backoff with full jitter
(ChangeMessageVisibility, from its ApproximateReceiveCount) and reported as a batch item failure; after the
queue's maxReceiveCount receives SQS moves it to the dead-letter queue. A body or URL that can never be delivered
is not backed off: it comes back after the queue's visibility timeout and reaches the DLQ sooner.

The records of a batch are delivered concurrently (one thread each, from a pool made for this invocation alone),
so a batch takes as long as its slowest delivery, not the sum of them. Each delivery has its own client and ends by
its deadline (`DELIVERY_DEADLINE_SECONDS`, connection closed); one still running when the invocation is about to
time out is counted as failed rather than letting the whole batch time out, and its thread never holds a worker
of the next invocation. Logs carry the event id, the URL's host and the reason only.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from globesms.aws import clients
from globesms.config import WebhookSettings, settings
from globesms.domain.clock import utc_now
from globesms.models.webhooks import WebhookDelivery
from globesms.observability import logger, metrics, tracer
from globesms.webhooks.sender import (
    WebhookFailed,
    backoff_seconds,
    deliver,
    parse_delivery,
    url_host,
    webhook_secrets,
)

BATCH_SIZE = 10  # the event source's BatchSize: one thread per record
SETTINGS = settings(WebhookSettings)  # read once, at cold start
QUEUE_URL = SETTINGS.webhook_queue_url
MAX_RECEIVE_COUNT = SETTINGS.webhook_max_receive_count  # the queue's maxReceiveCount
SAFETY_MARGIN_SECONDS = 1.5  # what an invocation keeps to settle its batch before Lambda's timeout

# httpx logs every request's full URL at INFO; a customer's path or query may hold their tokens: only our own lines
# (with the host alone) say where an event went.
logging.getLogger("httpx").setLevel(logging.WARNING)

# Report every failed record, even when all of a batch failed, instead of raising: each failure is retried on its
# own schedule, then dead-lettered, and the function does not count as erroring.
processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class _Invocation:
    """The worker threads of the invocation being served (one invocation at a time per process)."""

    threads: ThreadPoolExecutor | None = None


def _send(delivery: WebhookDelivery) -> None:
    """One attempt, in a worker thread."""
    # The message's API key may have its own secret (docs/api.md): another client service cannot forge its events.
    deliver(delivery, secret=webhook_secrets(owner=delivery.owner), now=utc_now())


def _retry_later(record: SQSRecord, seconds: int) -> bool:
    try:
        clients.sqs().change_message_visibility(
            QueueUrl=QUEUE_URL, ReceiptHandle=record.receipt_handle, VisibilityTimeout=seconds
        )
    except Exception as exc:  # the record still fails; it then comes back after the queue's visibility timeout
        logger.warning("could not delay the retry", extra={"sqs_message_id": record.message_id, "error": repr(exc)})
        return False
    return True


async def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    fields: dict[str, Any] = {"sqs_message_id": record.message_id}
    try:
        delivery = parse_delivery(record.body)
        fields.update(event_id=delivery.event.id, host=url_host(delivery.url))
        worker = asyncio.get_running_loop().run_in_executor(_Invocation.threads, _send, delivery)
        try:
            await asyncio.wait_for(worker, timeout=_time_budget(lambda_context))
        except TimeoutError:
            # The thread may still finish (and deliver): the retry is then a duplicate the receiver drops by id.
            raise WebhookFailed("timeout (invocation deadline)") from None
    except WebhookFailed as failure:
        _settle_failure(record, failure, fields)
        raise
    metrics.add_metric(name="WebhooksDelivered", unit=MetricUnit.Count, value=1)
    logger.info("webhook delivered", extra=fields)


def _settle_failure(record: SQSRecord, failure: WebhookFailed, fields: dict[str, Any]) -> None:
    """Count and log the failure and, when another attempt can help, delay it by the backoff."""
    receives = int(record.attributes.approximate_receive_count or 1)
    fields.update(reason=failure.reason, receives=receives)
    metrics.add_metric(name="WebhooksFailed", unit=MetricUnit.Count, value=1)
    if receives >= MAX_RECEIVE_COUNT:
        metrics.add_metric(name="WebhooksDeadLettered", unit=MetricUnit.Count, value=1)
        logger.error("webhook given up: it goes to the dead-letter queue", extra=fields)
    elif failure.permanent:
        logger.error("webhook cannot be delivered: left for the dead-letter queue, without backoff", extra=fields)
    else:
        delay = backoff_seconds(receives)
        if _retry_later(record, delay):  # one quick SQS call
            fields["retry_in_seconds"] = delay
        logger.warning("webhook failed: will be retried", extra=fields)


def _time_budget(context: LambdaContext | None) -> float:
    if context is None:
        return 60.0
    return max(context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS, 1.0)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    _Invocation.threads = ThreadPoolExecutor(max_workers=BATCH_SIZE, thread_name_prefix="webhook")
    try:
        return async_process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    finally:
        # Nothing waits for a thread past the invocation (a delivery ends by its own deadline; a name that takes
        # long to resolve ends with the resolver's timeout), and the next invocation gets fresh workers.
        _Invocation.threads.shutdown(wait=False, cancel_futures=True)
