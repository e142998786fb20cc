"""Lambda's SQS event source mapping, locally: long-poll a queue, hand the function a real SQS event, and settle
the batch the way Lambda does.

Polling, as Lambda does it for a standard queue:
- several pollers per queue in each function host (LOCAL_SQS_POLLERS, default 2; Lambda starts with 5 per queue,
  spread here over the function's hosts), each long-polling (WaitTimeSeconds 20: ReceiveMessage answers as soon as
  a message is there) and invoking the function with what it received at once;
- one invocation at a time per host (an execution environment), so while one poller's batch runs, another's batch
  is handed to the environment the moment it is free, and the first poller settles its batch meanwhile, off the
  environment's path. A host therefore holds at most LOCAL_SQS_POLLERS - 1 batches it cannot start yet;
- the event source's MaximumBatchingWindowInSeconds (template.yaml; Lambda's default 0 for standard queues): with
  0, a batch is what one ReceiveMessage returned (up to BatchSize, never waiting to fill it); with a window, the
  poller keeps receiving after the first message until the batch is full or the window has passed.

Settling, as Lambda does it:
- the handler returns: every record is deleted, except (with ReportBatchItemFailures) those it lists in
  `batchItemFailures`; a list naming an unknown or empty id fails the whole batch;
- the handler raises: nothing is deleted.
Records that are not deleted become visible again and, after the queue's maxReceiveCount receives, go to its
dead-letter queue (moto enforces the RedrivePolicy on receive, see local/aws.py).

One local difference, for speed: a failed record would stay invisible for the rest of the queue's visibility
timeout (180 s here); the poller makes it visible again after LOCAL_SQS_RETRY_VISIBILITY_SECONDS (default 2 s)
instead, so retries and dead-lettering happen in seconds. Set it to the queue's timeout to see the real pace.

A fault for `make soak`: LOCAL_SQS_DUPLICATE_RATE (default 0) is the share of records the function handled that
are not deleted but made visible again the same way, as if the DeleteMessage had been lost: SQS delivers them
again, with the same MessageId and a higher receive count (SQS's at-least-once delivery).

For `make bench` (the OTP latency figure): LOCAL_SQS_TRACE_FILE names a file to which each poller appends a JSON
line per record it handed to the function: when SQS took the message (`sent`, its SentTimestamp), when the
ReceiveMessage that returned it answered (`received`), when the handler started (`invoked`, after waiting for the
host) and returned (`returned`), all epoch seconds, with the queue, the function, the host's pid and the body.
Unset (the default), nothing is written.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from local.template import SqsEventSource

RETRY_VISIBILITY_ENV = "LOCAL_SQS_RETRY_VISIBILITY_SECONDS"
DUPLICATE_RATE_ENV = "LOCAL_SQS_DUPLICATE_RATE"
TRACE_FILE_ENV = "LOCAL_SQS_TRACE_FILE"
DEFAULT_RETRY_VISIBILITY_SECONDS = 2
POLLERS_ENV = "LOCAL_SQS_POLLERS"
DEFAULT_POLLERS = 2
LONG_POLL_SECONDS = 20  # SQS's longest; ReceiveMessage answers as soon as a message is there
EMPTY_SHORT_POLL_PAUSE_SECONDS = 0.05  # inside a batching window shorter than a second (WaitTimeSeconds is whole)
SQS_MAX_MESSAGES_PER_CALL = 10  # ReceiveMessage, DeleteMessageBatch and ChangeMessageVisibilityBatch limits

log = logging.getLogger("local.pollers")

#: Calls the function with an event; calls its second argument when the handler starts (after waiting for the
#: execution environment); raises when the function fails.
Invoke = Callable[[dict[str, Any], Callable[[], None]], Any]


def sqs_event(messages: Iterable[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda builds from ReceiveMessage results."""
    return {"Records": [_record(message, queue_arn, region) for message in messages]}


def _record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """SQS API shape (`StringValue`, bytes) to Lambda event shape (`stringValue`, base64 text)."""

    def text(binary: bytes) -> str:
        return base64.b64encode(binary).decode()

    attribute: dict[str, Any] = {
        "dataType": value["DataType"],
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [text(b) for b in value.get("BinaryListValues", [])],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = text(value["BinaryValue"])
    return attribute


def failed_message_ids(response: Any, message_ids: list[str], report_batch_item_failures: bool) -> set[str]:
    """Which records of a batch whose handler returned `response` count as failed."""
    if not report_batch_item_failures or not isinstance(response, dict) or not response.get("batchItemFailures"):
        return set()
    failures = {str(item.get("itemIdentifier") or "") for item in response["batchItemFailures"]}
    if not failures <= set(message_ids):
        log.warning("batchItemFailures names ids not in the batch (%s): the whole batch fails", failures)
        return set(message_ids)
    return failures


def retry_visibility_seconds() -> int:
    return int(os.environ.get(RETRY_VISIBILITY_ENV, DEFAULT_RETRY_VISIBILITY_SECONDS))


def duplicate_rate() -> float:
    return float(os.environ.get(DUPLICATE_RATE_ENV, "0"))


def pollers_per_queue() -> int:
    return max(1, int(os.environ.get(POLLERS_ENV, DEFAULT_POLLERS)))


class BatchTrace:
    """The LOCAL_SQS_TRACE_FILE lines (see the module's docstring); one write per batch, in append mode, so the
    lines of several pollers and processes sharing the file do not interleave."""

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> BatchTrace:
        return cls(os.environ.get(TRACE_FILE_ENV) or None)

    def write(self, source: SqsEventSource, messages: list[dict[str, Any]], times: dict[str, float]) -> None:
        if not self._path:
            return
        lines = "".join(
            json.dumps(
                {
                    "queue": source.queue_id,
                    "function": source.function_id,
                    "pid": os.getpid(),
                    "message_id": m["MessageId"],
                    "sent": int(m.get("Attributes", {}).get("SentTimestamp", 0)) / 1000,
                    **times,
                    "body": m["Body"],
                }
            )
            + "\n"
            for m in messages
        )
        with self._lock, open(self._path, "a", encoding="utf-8") as trace:
            trace.write(lines)


def _chunks(items: list[Any], size: int = SQS_MAX_MESSAGES_PER_CALL) -> Iterable[list[Any]]:
    return (items[i : i + size] for i in range(0, len(items), size))


class SqsPoller:
    """One poller of an event source mapping: polls `queue_url` and invokes the function with batches of its
    messages. Several may poll one queue at once (`start_pollers`); each settles the batches it received."""

    def __init__(
        self,
        source: SqsEventSource,
        *,
        queue_url: str,
        queue_arn: str,
        region: str,
        invoke: Invoke,
        sqs: Any,
    ) -> None:
        self.source = source
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.region = region
        self._invoke = invoke
        self._sqs = sqs
        self._retry_visibility = retry_visibility_seconds()
        self._duplicate_rate = duplicate_rate()
        self.duplicated = 0  # records left undeleted on purpose (LOCAL_SQS_DUPLICATE_RATE)
        self._count_lock = threading.Lock()  # several poller threads share this object
        self._trace = BatchTrace.from_environment()
        self._in_hand = 0  # batches received and not yet settled, across this poller's threads
        self._settled = threading.Condition(self._count_lock)

    def run(self, stop: threading.Event) -> None:
        log.info("polling %s for %s (batch size %d)", self.queue_url, self.source.function_id, self.source.batch_size)
        while not stop.is_set():
            try:
                self.poll_once(stop)
            except Exception:  # e.g. the AWS endpoint going away on shutdown; keep polling until told to stop
                log.exception("polling %s failed", self.queue_url)
                stop.wait(1.0)

    def poll_once(self, stop: threading.Event | None = None) -> int:
        """Receive one batch, invoke the function with it, settle it. Returns how many records it carried."""
        messages = self._receive_batch()
        if not messages:
            return 0
        with self._count_lock:
            self._in_hand += 1
        try:
            return self._handle(messages, stop)
        finally:
            with self._count_lock:
                self._in_hand -= 1
                self._settled.notify_all()

    def wait_until_settled(self, deadline: float) -> bool:
        """Wait (until the `time.monotonic()` deadline) for every batch this poller's threads hold to be settled."""
        with self._count_lock:
            return self._settled.wait_for(lambda: self._in_hand == 0, timeout=max(0.0, deadline - time.monotonic()))

    def _handle(self, messages: list[dict[str, Any]], stop: threading.Event | None) -> int:
        times = {"received": time.time()}
        if stop is not None and stop.is_set():  # received during shutdown: visible again now, for the next host
            self._make_visible(messages, 0)
            return 0
        ids = [m["MessageId"] for m in messages]
        try:
            event = sqs_event(messages, self.queue_arn, self.region)
            response = self._invoke(event, lambda: times.__setitem__("invoked", time.time()))
            failed = failed_message_ids(response, ids, self.source.report_batch_item_failures)
        except Exception:
            log.exception("%s failed on a batch of %d: every record will be retried", self.source.function_id, len(ids))
            failed = set(ids)
        times["returned"] = time.time()
        self._trace.write(self.source, messages, times)
        done = [m for m in messages if m["MessageId"] not in failed]
        again = [m for m in messages if m["MessageId"] in failed]
        if self._duplicate_rate:
            duplicates = [m for m in done if random.random() < self._duplicate_rate]
            if duplicates:
                log.info("delivering %d handled record(s) again (%s)", len(duplicates), DUPLICATE_RATE_ENV)
                with self._count_lock:
                    self.duplicated += len(duplicates)
                done = [m for m in done if all(m is not d for d in duplicates)]
                again += duplicates
        self._delete(done)
        self._make_visible(again, self._retry_visibility)
        return len(messages)

    def _receive_batch(self) -> list[dict[str, Any]]:
        """Up to BatchSize messages: what the first ReceiveMessage that finds any returns, and then, within the
        MaximumBatchingWindowInSeconds from that moment, more until the batch is full (no window: no more)."""
        batch = self._receive(self.source.batch_size, LONG_POLL_SECONDS)
        if not batch:
            return []
        window_ends = time.monotonic() + self.source.maximum_batching_window_seconds
        while len(batch) < self.source.batch_size:
            remaining = window_ends - time.monotonic()
            if remaining <= 0:
                break
            more = self._receive(self.source.batch_size - len(batch), int(remaining))
            if not more and remaining < 1:
                time.sleep(min(remaining, EMPTY_SHORT_POLL_PAUSE_SECONDS))
            batch += more
        return batch

    def _receive(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(count, SQS_MAX_MESSAGES_PER_CALL),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return messages

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for chunk in _chunks(messages):
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )

    def _make_visible(self, messages: list[dict[str, Any]], after_seconds: int) -> None:
        for chunk in _chunks(messages):
            self._sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": after_seconds}
                    for i, m in enumerate(chunk)
                ],
            )


def start_pollers(
    pollers: Iterable[SqsPoller], stop: threading.Event, per_queue: int | None = None
) -> list[threading.Thread]:
    """`per_queue` threads (default LOCAL_SQS_POLLERS) running each poller's loop."""
    count = per_queue if per_queue is not None else pollers_per_queue()
    threads = [
        threading.Thread(target=p.run, args=(stop,), name=f"poll-{p.source.queue_id}-{n}", daemon=True)
        for p in pollers
        for n in range(1, count + 1)
    ]
    for thread in threads:
        thread.start()
    return threads


def settle_pollers(pollers: Iterable[SqsPoller], timeout: float) -> None:
    """On shutdown, wait up to `timeout` seconds in all for the batches the pollers hold to be settled, as Lambda
    finishes an invocation. A thread waiting in a long poll (up to 20 s) holds nothing and is not waited for: the
    process ends under it (the threads are daemons). A message that poll returns in that moment stays invisible for
    its visibility timeout and is then delivered again, as when a Lambda poller is stopped."""
    deadline = time.monotonic() + timeout
    for poller in pollers:
        poller.wait_until_settled(deadline)


def join_pollers(threads: Iterable[threading.Thread], timeout: float) -> None:
    """Wait up to `timeout` seconds in all for the pollers to finish the batch each is running."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
