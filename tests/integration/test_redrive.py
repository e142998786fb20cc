"""tools/redrive.py against moto: the local stack's queues (named `globesms-local-<LogicalId>`, no CloudFormation
stack) and, for the lookup by stack outputs, a CloudFormation stub."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from globesms.domain.ids import FIRST_MESSAGE_ID
from tests.integration.conftest import MotoStack
from tools import redrive

STACK = ["--stack", "globesms-local", "--wait-seconds", "0"]
EVENTS = Path(__file__).resolve().parents[2] / "events"


def _urls(stack: MotoStack) -> tuple[str, str]:
    refs = stack.deployed.context.refs
    return refs["AliyunDeadLetterQueue"], refs["AliyunQueue"]


def _fill(stack: MotoStack, dlq: str, count: int) -> list[str]:
    bodies = [f'{{"pack_id": "p{i}", "to": "+8613800{i:06d}"}}' for i in range(count)]
    for start in range(0, count, 10):
        stack.sqs.send_message_batch(
            QueueUrl=dlq,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": body,
                    "MessageAttributes": {
                        "origin": {"DataType": "String", "StringValue": f"test-{start + i}"},
                        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
                    },
                }
                for i, body in enumerate(bodies[start : start + 10])
            ],
        )
    return bodies


def _drain(stack: MotoStack, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while True:
        got = stack.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=300
        ).get("Messages", [])
        if not got:
            return messages
        messages.extend(got)


def test_moves_every_message_back_exactly_once_with_bodies_and_attributes(
    stack: MotoStack, capsys: pytest.CaptureFixture[str]
) -> None:
    dlq, source = _urls(stack)
    bodies = _fill(stack, dlq, 23)
    assert redrive.main(["AliyunDeadLetterQueue", *STACK], environ={}) == 0
    assert "moved 23, failed 0" in capsys.readouterr().out
    moved = _drain(stack, source)
    assert sorted(m["Body"] for m in moved) == sorted(bodies)  # each once: no duplicates, none lost
    by_body = {m["Body"]: m for m in moved}
    attributes = by_body[bodies[7]]["MessageAttributes"]
    assert attributes["origin"]["StringValue"] == "test-7"
    assert attributes["blob"]["BinaryValue"] == b"\x00\x01"
    assert _drain(stack, dlq) == []
    assert redrive.main(["AliyunDeadLetterQueue", *STACK], environ={}) == 0  # a second run finds nothing
    assert "moved 0" in capsys.readouterr().out
    assert _drain(stack, source) == []


def test_a_moved_message_carries_the_message_id_it_was_first_sent_with(stack: MotoStack) -> None:
    """Sent again, a message gets a new MessageId; the intake derives a body's batch id from the first one."""
    dlq, source = _urls(stack)
    first = stack.sqs.send_message(QueueUrl=dlq, MessageBody='{"n": 1}')["MessageId"]
    assert redrive.main(["AliyunDeadLetterQueue", *STACK], environ={}) == 0
    [moved] = _drain(stack, source)
    assert moved["MessageId"] != first and moved["MessageAttributes"][FIRST_MESSAGE_ID]["StringValue"] == first
    # dead-lettered again and moved again: still the first one
    again = {
        k: {"DataType": v["DataType"], "StringValue": v["StringValue"]} for k, v in moved["MessageAttributes"].items()
    }
    stack.sqs.send_message(QueueUrl=dlq, MessageBody=moved["Body"], MessageAttributes=again)
    assert redrive.main(["AliyunDeadLetterQueue", *STACK], environ={}) == 0
    [twice] = _drain(stack, source)
    assert twice["MessageAttributes"][FIRST_MESSAGE_ID]["StringValue"] == first


def test_a_run_an_aws_error_ends_reports_what_it_moved_so_far(
    stack: MotoStack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The docstring said a failed delete is reported; when delete_message_batch raised, the run ended with the
    error's one line and no counts, though 10 messages sat in both queues (a reviewer's finding)."""
    dlq, source = _urls(stack)
    _fill(stack, dlq, 23)
    deletes = {"n": 0}

    def second_fails(delete: Any, **kwargs: Any) -> Any:
        deletes["n"] += 1
        if deletes["n"] == 2:
            error = {
                "Error": {"Code": "InternalError", "Message": "try again"},
                "ResponseMetadata": {"HTTPStatusCode": 500},
            }
            raise ClientError(error, "DeleteMessageBatch")  # type: ignore[arg-type]
        return delete(**kwargs)

    _wrap_sqs(monkeypatch, delete_message_batch=second_fails)
    assert redrive.main(["AliyunDeadLetterQueue", *STACK], environ={}) == 3  # unavailable: safe to run again
    out, err = capsys.readouterr()
    assert "stopped by the error below, after: moved 20, failed 0, moved but not deleted 10" in out
    assert out.count("moved but still in the DLQ (the run stopped before its delete)") == 10
    assert err.startswith("redrive: unavailable: ") and "InternalError" in err
    assert len(_drain(stack, source)) == 20  # the second round's 10 are in both queues, as reported


def test_max_is_honoured(stack: MotoStack, capsys: pytest.CaptureFixture[str]) -> None:
    dlq, source = _urls(stack)
    _fill(stack, dlq, 15)
    assert redrive.main(["Aliyun", *STACK, "--max", "12"], environ={}) == 0
    assert "moved 12," in capsys.readouterr().out
    assert len(_drain(stack, source)) == 12
    assert len(_drain(stack, dlq)) == 3


def test_dry_run_lists_and_moves_nothing(stack: MotoStack, capsys: pytest.CaptureFixture[str]) -> None:
    dlq, source = _urls(stack)
    bodies = _fill(stack, dlq, 12)
    assert redrive.main([dlq, *STACK, "--dry-run"], environ={}) == 0
    out = capsys.readouterr().out
    assert "would move 12 message(s); moved 0" in out
    # Each body's start, its phone number masked (what an operator's terminal, or a CI log, keeps).
    assert all(f'"pack_id": "p{i}", "to": "+861********{i:02d}"' in out for i in range(12))
    assert "+8613800" not in out
    assert _drain(stack, source) == []
    assert sorted(m["Body"] for m in _drain(stack, dlq)) == sorted(bodies)  # visible again, all there


def test_the_source_queue_names_its_dead_letter_queue(stack: MotoStack) -> None:
    dlq, source = _urls(stack)
    plan = redrive.plan("AliyunQueue", to=None, stack="globesms-local", sqs=stack.sqs, cloudformation=_NoStacks())
    assert plan == (dlq, source)
    assert redrive.plan(dlq, to=None, stack="x", sqs=stack.sqs, cloudformation=_NoStacks()) == (dlq, source)


def test_to_overrides_the_destination(stack: MotoStack) -> None:
    dlq, _ = _urls(stack)
    _fill(stack, dlq, 3)
    assert redrive.main(["AliyunDeadLetterQueue", *STACK, "--to", "TencentQueue"], environ={}) == 0
    assert len(_drain(stack, stack.deployed.context.refs["TencentQueue"])) == 3


@pytest.mark.parametrize("queue", ["NoSuchDeadLetterQueue", "https://sqs.us-east-1.amazonaws.com/123456789012/nope"])
def test_an_unknown_queue_is_a_clear_error(stack: MotoStack, capsys: pytest.CaptureFixture[str], queue: str) -> None:
    assert redrive.main([queue, *STACK], environ={}) == 2
    err = capsys.readouterr().err
    assert err.startswith("redrive: ") and ("not found" in err or "no queue" in err), err


def _wrap_sqs(monkeypatch: pytest.MonkeyPatch, **wrappers: Callable[..., Any]) -> None:
    """The SQS client `redrive.main` makes, with each named method called through its wrapper (given the method)."""
    clients = redrive.aws_clients

    def wrapped_clients(environ: Any) -> tuple[Any, Any]:
        sqs, cloudformation = clients(environ)
        for name, wrapper in wrappers.items():
            setattr(sqs, name, functools.partial(wrapper, getattr(sqs, name)))
        return sqs, cloudformation

    monkeypatch.setattr(redrive, "aws_clients", wrapped_clients)


@pytest.mark.parametrize("to", ["AliyunDeadLetterQueue", "Aliyun", "dlq-url"])
def test_a_queue_is_never_redriven_into_itself(
    stack: MotoStack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, to: str
) -> None:
    """Into itself, each message moved came back in the same run under a new MessageId: it never ended, and reset
    every message's receive count (a reviewer's finding)."""
    dlq, _ = _urls(stack)
    stack.sqs.send_message(QueueUrl=dlq, MessageBody='{"pack_id": "p1"}')
    sends = {"n": 0}

    def counted(send: Any, **kwargs: Any) -> Any:
        sends["n"] += 1
        if sends["n"] > 20:
            raise RuntimeError("still moving the one message after 20 rounds")
        return send(**kwargs)

    _wrap_sqs(monkeypatch, send_message_batch=counted)
    assert redrive.main(["AliyunDeadLetterQueue", *STACK, "--to", dlq if to == "dlq-url" else to], environ={}) == 2
    assert "is both the dead-letter queue and the destination" in capsys.readouterr().err
    assert sends["n"] == 0 and len(_drain(stack, dlq)) == 1
    with pytest.raises(redrive.RedriveError, match="is both the dead-letter queue and the destination"):
        redrive.redrive(stack.sqs, dlq, dlq, wait_seconds=0)  # without plan()


def test_a_dlq_with_no_source_needs_to(stack: MotoStack, capsys: pytest.CaptureFixture[str]) -> None:
    orphan = stack.sqs.create_queue(QueueName="orphan-dlq")["QueueUrl"]
    assert redrive.main([orphan, *STACK], environ={}) == 2
    assert "pass --to" in capsys.readouterr().err


class _NoStacks:
    def describe_stacks(self, StackName: str) -> Any:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "ValidationError", "Message": "does not exist"}}, "DescribeStacks")


class _Outputs:
    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs

    def describe_stacks(self, StackName: str) -> Any:
        return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]}]}


def test_a_deployed_stack_is_resolved_through_its_outputs(stack: MotoStack) -> None:
    dlq, source = _urls(stack)
    outputs = _Outputs({"AliyunDeadLetterQueueUrl": dlq, "AliyunQueueUrl": source, "ApiUrl": "https://x"})
    assert redrive.resolve_queue("AliyunDeadLetterQueue", stack="s", sqs=stack.sqs, cloudformation=outputs) == dlq
    assert redrive.resolve_queue("Aliyun", stack="s", sqs=stack.sqs, cloudformation=outputs) == dlq
    with pytest.raises(redrive.RedriveError, match="no queue 'Tencent' in the outputs of stack s; known: Aliyun"):
        redrive.resolve_queue("Tencent", stack="s", sqs=stack.sqs, cloudformation=outputs)


def test_a_message_without_room_for_its_first_message_id_stays_in_the_dead_letter_queue(
    stack: MotoStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQS refuses an 11th attribute, or more than the queue's MaximumMessageSize of body and attributes. Such a
    message moved without it, and an intake body dead-lettered half way was then accepted as a new batch: its
    recipients the first attempt reached were texted again (a review). It stays in the DLQ, named."""
    full = {f"a{i}": {"DataType": "String", "StringValue": "x"} for i in range(redrive.MAX_ATTRIBUTES)}
    message = {"MessageId": "m-1", "Body": '{"to": "+85251234567", "text": "hi"}', "MessageAttributes": full}
    assert redrive._send_entry(0, message, fifo=False, max_bytes=redrive.MAX_MESSAGE_BYTES) is None
    large = '{"to": "+85251234567", "text": "' + "x" * (redrive.MAX_MESSAGE_BYTES - 50) + '"}'
    assert redrive._send_entry(0, {"MessageId": "m-2", "Body": large}, fifo=False, max_bytes=len(large) + 10) is None
    for unset in (
        '{"to": "+85251234567", "batch_id": null}',
        '{"messages": [], "idempotency_key": null}',
        '{"to": "+85251234567", "idempotency_key": " padded"}',
        '{"to": "+85251234567", "batch_id": "bad id", "idempotency_key": "k1"}',
    ):
        # Read as the intake reads them: a null names no batch, a malformed one is refused under sqs-<MessageId>.
        assert (
            redrive._send_entry(0, {**message, "Body": unset}, fifo=False, max_bytes=redrive.MAX_MESSAGE_BYTES) is None
        )
    # A body that comes back the same without it (naming its batch, a pack, a webhook delivery) moves as it was.
    for body in (
        '{"to": "+85251234567", "batch_id": "b1"}',
        '{"to": "+85251234567", "idempotency_key": "k1"}',
        '{"pack_id": "B:aliyun:0"}',
        "not json",
    ):
        entry = redrive._send_entry(0, {**message, "Body": body}, fifo=False, max_bytes=redrive.MAX_MESSAGE_BYTES)
        assert entry is not None and FIRST_MESSAGE_ID not in entry["MessageAttributes"]
    room = redrive._send_entry(0, {"MessageId": "m-3", "Body": "{}"}, fifo=False, max_bytes=redrive.MAX_MESSAGE_BYTES)
    assert room is not None and room["MessageAttributes"][FIRST_MESSAGE_ID]["StringValue"] == "m-3"

    refs = stack.deployed.context.refs
    dlq, source = refs["IntakeDeadLetterQueue"], refs["IntakeQueue"]
    crowded = {f"a{i}": {"DataType": "String", "StringValue": "x"} for i in range(redrive.MAX_ATTRIBUTES)}
    for _ in range(10):  # a whole round of them does not stop the run: the message behind them still moves
        kept = stack.sqs.send_message(QueueUrl=dlq, MessageBody='{"to": "+85251234567"}', MessageAttributes=crowded)
    moved = stack.sqs.send_message(QueueUrl=dlq, MessageBody='{"to": "+85251234568"}')
    assert redrive.main(["IntakeDeadLetterQueue", *STACK], environ={}) == 1  # not everything moved
    [arrived] = _drain(stack, source)
    assert arrived["MessageAttributes"][FIRST_MESSAGE_ID]["StringValue"] == moved["MessageId"]
    assert f"not moved: {kept['MessageId']}: no room for {FIRST_MESSAGE_ID}" in capsys.readouterr().out
    depth = stack.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert depth["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "10"  # still there, hidden for the run


def test_a_body_over_256_kib_carries_its_first_message_id(stack: MotoStack) -> None:
    """The template's queues take up to 1 MiB (SQS's default MaximumMessageSize): an intake body of 300 KB is a
    normal message. Checked against a stale 256 KiB instead of the destination's size, it moved without its first
    MessageId, and the intake accepted it as a second batch (a reviewer's finding)."""
    refs = stack.deployed.context.refs
    dlq, source = refs["IntakeDeadLetterQueue"], refs["IntakeQueue"]
    size = stack.sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["MaximumMessageSize"])["Attributes"]
    assert size["MaximumMessageSize"] == "1048576"
    body = '{"to": ["+85251234567"], "text": "hi", "pad": "' + "x" * 300_000 + '"}'
    first = stack.sqs.send_message(QueueUrl=dlq, MessageBody=body)["MessageId"]
    assert redrive.main(["IntakeDeadLetterQueue", *STACK], environ={}) == 0
    [moved] = _drain(stack, source)
    assert moved["Body"] == body and moved["MessageAttributes"][FIRST_MESSAGE_ID]["StringValue"] == first


def test_a_round_of_large_messages_is_sent_in_calls_sqs_takes(
    stack: MotoStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """SendMessageBatch refuses a call of more than 1 MiB in all: four bodies of 300 KB, received in one round,
    were sent in one call, refused with BatchRequestTooLong at every run, and nothing moved (a reviewer's finding)."""
    dlq, source = _urls(stack)
    bodies = [json.dumps({"n": i, "pad": "x" * 300_000}) for i in range(4)]
    for body in bodies:
        stack.sqs.send_message(QueueUrl=dlq, MessageBody=body)
    assert redrive.main(["AliyunDeadLetterQueue", *STACK], environ={}) == 0
    assert "moved 4, failed 0" in capsys.readouterr().out
    assert sorted(m["Body"] for m in _drain(stack, source)) == sorted(bodies)
    assert _drain(stack, dlq) == []


def test_the_calls_keep_each_within_1_mib_and_a_message_too_large_goes_alone() -> None:
    def entry(size: int) -> dict[str, Any]:
        return {"Id": str(size), "MessageBody": "x" * size}

    calls = redrive.send_calls([entry(300_000)] * 4 + [entry(2_000_000), entry(10)])
    assert [[len(e["MessageBody"]) for e in call] for call in calls] == [
        [300_000] * 3,
        [300_000],
        [2_000_000],
        [10],
    ]
    big = {**entry(524_000), "MessageAttributes": {"a": {"DataType": "String", "StringValue": "y" * 1_000}}}
    assert len(redrive.send_calls([big, big])) == 2  # attributes count: 2 x 525,000 bytes is over 1 MiB


def _intake_event(message: dict[str, Any]) -> dict[str, Any]:
    """The IntakeFunction's event for an SQS message, as Lambda's event source mapping gives it."""
    record = json.loads((EVENTS / "intake_batch.json").read_text())["Records"][0]
    record.update(messageId=message["MessageId"], receiptHandle=message["ReceiptHandle"], body=message["Body"])
    record["messageAttributes"] = {
        name: {"dataType": value["DataType"], "stringValue": value.get("StringValue"), "binaryValue": None}
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {"Records": [record]}


def _batches(stack: MotoStack) -> set[str]:
    items = stack.dynamodb.scan(TableName=stack.table_name)["Items"]
    return {item["pk"]["S"] for item in items if item["sk"]["S"] == "#"}


@pytest.mark.parametrize(
    "producers",
    [{"DataType": "String", "StringValue": "trace-42"}, {"DataType": "Binary", "BinaryValue": b"\x01"}],
    ids=["not-a-message-id", "binary"],
)
def test_a_redriven_body_resumes_its_batch_whatever_the_producer_set_as_first_message_id(
    stack: MotoStack, load_handler: Any, lambda_context: Any, producers: dict[str, Any]
) -> None:
    """The attribute is the sender's to set, and the intake ignores a value that is no SQS MessageId: its batch is
    `sqs-<MessageId>`. Kept as the producer set it, the redriven copy (a new MessageId) became a second batch and
    everyone was texted twice (a reviewer's finding); redrive now sets what the intake used."""
    refs = stack.deployed.context.refs
    body = json.dumps({"to": ["+85251234567"], "text": "Your code is 123456"})
    attributes = {FIRST_MESSAGE_ID: producers}
    stack.sqs.send_message(QueueUrl=refs["IntakeDeadLetterQueue"], MessageBody=body, MessageAttributes=attributes)
    # Its first delivery (the DLQ keeps the MessageId): accepted, then dead-lettered by a failure after queueing.
    [dead] = stack.sqs.receive_message(
        QueueUrl=refs["IntakeDeadLetterQueue"], MessageAttributeNames=["All"], VisibilityTimeout=0
    )["Messages"]
    intake = load_handler("intake")
    assert intake.lambda_handler(_intake_event(dead), lambda_context) == {"batchItemFailures": []}
    assert _batches(stack) == {f"B#sqs-{dead['MessageId']}"}
    assert redrive.main(["IntakeDeadLetterQueue", *STACK], environ={}) == 0
    [moved] = _drain(stack, refs["IntakeQueue"])
    assert intake.lambda_handler(_intake_event(moved), lambda_context) == {"batchItemFailures": []}
    assert _batches(stack) == {f"B#sqs-{dead['MessageId']}"}  # the first batch resumed, not a second one
    assert moved["MessageAttributes"][FIRST_MESSAGE_ID] == {"DataType": "String", "StringValue": dead["MessageId"]}


def test_a_source_queue_with_to_redrives_its_dead_letter_queue_never_the_live_queue(stack: MotoStack) -> None:
    """`AliyunQueue` names its DLQ, as the docs say, with --to too: it emptied the live queue itself, packs still
    waiting for their dispatcher, into Tencent's, whose dispatcher refuses them (a review)."""
    refs = stack.deployed.context.refs
    live = stack.sqs.send_message(QueueUrl=refs["AliyunQueue"], MessageBody='{"pack_id": "live"}')["MessageId"]
    dead = stack.sqs.send_message(QueueUrl=refs["AliyunDeadLetterQueue"], MessageBody='{"pack_id": "d"}')["MessageId"]
    assert redrive.main(["AliyunQueue", "--to", "TencentQueue", *STACK], environ={}) == 0
    assert [m["MessageId"] for m in _drain(stack, refs["AliyunQueue"])] == [live]
    [moved] = _drain(stack, refs["TencentQueue"])
    assert moved["MessageAttributes"][FIRST_MESSAGE_ID]["StringValue"] == dead
