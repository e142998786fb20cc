"""The local SQS event source (local/pollers.py) behaves as Lambda's: a batch is what one ReceiveMessage returned
unless the event source has a batching window, long polls, several pollers per queue, settling by
ReportBatchItemFailures, the redelivery fault, and the trace the latency figure reads.

A scripted SQS client stands in for the queue, so what each test asserts is the calls the poller made, in order,
never how long anything took."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from local import pollers
from local.pollers import SqsPoller, start_pollers
from local.template import SqsEventSource


class ScriptedSqs:
    """Answers ReceiveMessage from a script of batches (then nothing) and records every call."""

    def __init__(self, batches: list[list[dict[str, Any]]]) -> None:
        self.batches = list(batches)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls.append(("receive", kwargs))
            batch = self.batches.pop(0) if self.batches else []
        return {"Messages": batch[: kwargs["MaxNumberOfMessages"]]}

    def delete_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls.append(("delete", kwargs))
        return {}

    def change_message_visibility_batch(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls.append(("visibility", kwargs))
        return {}

    def named(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for call, kwargs in self.calls if call == name]


def message(n: int) -> dict[str, Any]:
    return {
        "MessageId": f"m{n}",
        "ReceiptHandle": f"r{n}",
        "Body": json.dumps({"n": n}),
        "MD5OfBody": "x",
        "Attributes": {"SentTimestamp": "1700000000000", "ApproximateReceiveCount": "1"},
    }


def source(batch_size: int = 10, window: int = 0, failures: bool = True) -> SqsEventSource:
    return SqsEventSource(
        function_id="AliyunDispatchFunction",
        event_name="Packs",
        queue_id="AliyunQueue",
        batch_size=batch_size,
        maximum_batching_window_seconds=window,
        report_batch_item_failures=failures,
    )


def poller(sqs: ScriptedSqs, invoke: Any, **source_args: Any) -> SqsPoller:
    return SqsPoller(
        source(**source_args),
        queue_url="http://sqs/q",
        queue_arn="arn:aws:sqs:us-east-1:123456789012:q",
        region="us-east-1",
        invoke=invoke,
        sqs=sqs,
    )


def recording_invoke(events: list[dict[str, Any]], answer: Any = None) -> Any:
    def invoke(event: dict[str, Any], started: Any) -> Any:
        started()
        events.append(event)
        return answer

    return invoke


def test_without_a_batching_window_a_batch_is_what_one_long_poll_returned() -> None:
    sqs = ScriptedSqs([[message(1)], [message(2)]])
    events: list[dict[str, Any]] = []

    assert poller(sqs, recording_invoke(events), batch_size=10, window=0).poll_once() == 1

    receives = sqs.named("receive")
    assert len(receives) == 1, "a standard queue's default window is 0: no waiting to fill the batch"
    assert receives[0]["WaitTimeSeconds"] == pollers.LONG_POLL_SECONDS == 20
    assert [r["messageId"] for r in events[0]["Records"]] == ["m1"]
    assert sqs.named("delete")[0]["Entries"] == [{"Id": "0", "ReceiptHandle": "r1"}]


def test_a_batching_window_keeps_receiving_until_the_batch_is_full() -> None:
    sqs = ScriptedSqs([[message(1)], [message(2)], [message(3)]])
    events: list[dict[str, Any]] = []

    assert poller(sqs, recording_invoke(events), batch_size=2, window=30).poll_once() == 2

    receives = sqs.named("receive")
    assert len(receives) == 2
    assert receives[1]["MaxNumberOfMessages"] == 1
    assert 0 <= receives[1]["WaitTimeSeconds"] <= 30
    assert [r["messageId"] for r in events[0]["Records"]] == ["m1", "m2"]


def test_reported_item_failures_come_back_soon_and_the_rest_is_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pollers.RETRY_VISIBILITY_ENV, "3")
    sqs = ScriptedSqs([[message(1), message(2)]])
    answer = {"batchItemFailures": [{"itemIdentifier": "m2"}]}

    poller(sqs, recording_invoke([], answer), batch_size=2).poll_once()

    assert sqs.named("delete")[0]["Entries"] == [{"Id": "0", "ReceiptHandle": "r1"}]
    assert sqs.named("visibility")[0]["Entries"] == [{"Id": "0", "ReceiptHandle": "r2", "VisibilityTimeout": 3}]


def test_a_failing_function_settles_nothing_and_every_record_comes_back() -> None:
    sqs = ScriptedSqs([[message(1), message(2)]])

    def fails(event: dict[str, Any], started: Any) -> Any:
        started()
        raise RuntimeError("handler failed")

    poller(sqs, fails, batch_size=2).poll_once()

    assert sqs.named("delete") == []
    assert [e["ReceiptHandle"] for e in sqs.named("visibility")[0]["Entries"]] == ["r1", "r2"]


def test_the_duplicate_fault_leaves_handled_records_to_be_delivered_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pollers.DUPLICATE_RATE_ENV, "1")
    sqs = ScriptedSqs([[message(1)]])
    subject = poller(sqs, recording_invoke([]))

    subject.poll_once()

    assert subject.duplicated == 1
    assert sqs.named("delete") == []
    assert sqs.named("visibility")[0]["Entries"][0]["ReceiptHandle"] == "r1"


def test_a_batch_received_while_stopping_is_made_visible_at_once_not_invoked() -> None:
    sqs = ScriptedSqs([[message(1)]])
    events: list[dict[str, Any]] = []
    stop = threading.Event()
    stop.set()

    assert poller(sqs, recording_invoke(events)).poll_once(stop) == 0

    assert events == []
    assert sqs.named("visibility")[0]["Entries"] == [{"Id": "0", "ReceiptHandle": "r1", "VisibilityTimeout": 0}]


def test_the_trace_has_a_line_per_record_with_its_times_and_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv(pollers.TRACE_FILE_ENV, str(trace))
    sqs = ScriptedSqs([[message(1), message(2)]])

    poller(sqs, recording_invoke([]), batch_size=2).poll_once()

    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [(x["message_id"], x["queue"], x["function"]) for x in lines] == [
        ("m1", "AliyunQueue", "AliyunDispatchFunction"),
        ("m2", "AliyunQueue", "AliyunDispatchFunction"),
    ]
    for line in lines:
        assert line["sent"] == 1_700_000_000.0
        assert line["received"] <= line["invoked"] <= line["returned"]
        assert json.loads(line["body"])["n"] in (1, 2)


def test_several_pollers_poll_one_queue_and_a_waiting_batch_starts_once_the_environment_is_free() -> None:
    """Two pollers, one environment (a lock, as in local.lambda_host): the second poller receives its batch while
    the first batch runs and starts it after the first returned."""
    sqs = ScriptedSqs([[message(1)], [message(2)]])
    environment = threading.Lock()
    first_running, release_first = threading.Event(), threading.Event()
    order: list[str] = []

    def invoke(event: dict[str, Any], started: Any) -> Any:
        with environment:
            started()
            name = event["Records"][0]["messageId"]
            order.append(f"start {name}")
            if name == "m1":
                first_running.set()
                assert release_first.wait(10)
            order.append(f"end {name}")

    subject = poller(sqs, invoke)
    first = threading.Thread(target=subject.poll_once)
    first.start()
    assert first_running.wait(10)
    second = threading.Thread(target=subject.poll_once)
    second.start()
    for _ in range(1000):  # the second poller's receive happens while m1 runs
        if len(sqs.named("receive")) >= 2:
            break
        threading.Event().wait(0.01)
    assert len(sqs.named("receive")) >= 2
    release_first.set()
    first.join(10)
    second.join(10)

    assert order == ["start m1", "end m1", "start m2", "end m2"]
    assert {e["ReceiptHandle"] for d in sqs.named("delete") for e in d["Entries"]} == {"r1", "r2"}


def test_start_pollers_runs_the_configured_number_of_pollers_per_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pollers.POLLERS_ENV, "3")
    stop = threading.Event()
    stop.set()  # the threads end at once: what is checked is how many were started, and for which queue

    threads = start_pollers([poller(ScriptedSqs([]), recording_invoke([]))], stop)
    pollers.join_pollers(threads, timeout=5)

    assert [t.name for t in threads] == ["poll-AliyunQueue-1", "poll-AliyunQueue-2", "poll-AliyunQueue-3"]
