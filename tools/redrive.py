"""Move the messages of a dead-letter queue back to the queue they came from, after the cause is fixed.

    python -m tools.redrive QUEUE [--stack NAME] [--to QUEUE] [--max N] [--dry-run]
    make redrive QUEUE=AliyunDeadLetterQueue [STACK=globesms-prod] [MAX=100] [DRY_RUN=1]

QUEUE (and --to) is a queue URL or a logical id of template.yaml: `AliyunDeadLetterQueue`, `Aliyun` (its DLQ) or
`AliyunQueue` (a queue with a RedrivePolicy: its DLQ is redriven into it). A logical id is looked up in the stack's
outputs (`<Name>DeadLetterQueueUrl`, `<Name>QueueUrl`); a stack that CloudFormation does not know, like the local
stack (`make run`, `AWS_ENDPOINT_URL` set), names its queues `<stack>-<LogicalId>`. Without --to the destination
is the one queue whose RedrivePolicy names the DLQ.

The move is an explicit loop, not SQS's StartMessageMoveTask: moto (tests, the local stack) does not implement that,
and the loop behaves the same everywhere. Each round receives up to 10 messages (invisible meanwhile), sends them
with SendMessageBatch (in more than one call when they come to over 1 MiB together; body and message attributes as
they were, but for `globesms-first-message-id`, set to the MessageId the intake named the body's batch after; a send
request named after its MessageId with no room for it stays in the DLQ, named) and deletes from the DLQ only those
the destination accepted: a message is in one of the two queues at any time, and one whose send failed stays in the
DLQ.
A delete that fails after a successful send leaves a copy in the DLQ (the consumers tolerate duplicates): each is
named and counted, and an AWS error that ends the run (a delete call refused, SQS unreachable) prints the counts so
far, such copies among them, before the error.
--dry-run lists the messages (the start of each body, its phone numbers masked) and makes them visible again;
nothing moves.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from globesms.domain.ids import FIRST_MESSAGE_ID, first_message_id
from globesms.domain.masking import mask_message_body
from globesms.models.api import is_batch_id, is_idempotency_key
from tools.stack import AWS_ERRORS, UsageError, default_stack, exit_for_aws_error, stack_outputs

BATCH = 10  # the most SQS receives, sends or deletes in one call
VISIBILITY_SECONDS = 120  # long enough for a round; a message whose send failed stays hidden till the run ends


class RedriveError(UsageError):
    """A queue that cannot be found or a destination that cannot be told; the message says which and why."""


@dataclass
class RedriveResult:
    source: str  # the dead-letter queue
    destination: str
    moved: int = 0
    failed: int = 0  # sends the destination refused: still in the DLQ
    not_deleted: int = 0  # sent, but the delete failed: also still in the DLQ
    listed: list[dict[str, Any]] = field(default_factory=list)  # dry run: what would move


def is_url(queue: str) -> bool:
    return queue.startswith(("http://", "https://"))


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _candidates(name: str) -> list[str]:
    """Logical ids a name may mean, most specific first: `Aliyun` is the Aliyun DLQ (this is a redrive tool)."""
    if name.endswith("Queue"):
        return [name]
    return [f"{name}DeadLetterQueue", f"{name}Queue"]


def resolve_queue(name: str, *, stack: str, sqs: Any, cloudformation: Any) -> str:
    """A queue's URL from a URL or a logical id (see the module's docstring)."""
    if is_url(name):
        try:
            sqs.get_queue_attributes(QueueUrl=name, AttributeNames=["QueueArn"])
        except ClientError as exc:
            raise RedriveError(f"queue {name} not found ({_error_code(exc)})") from exc
        return name
    outputs = stack_outputs(cloudformation, stack)
    for logical_id in _candidates(name):
        if outputs is not None:
            if f"{logical_id}Url" in outputs:
                return outputs[f"{logical_id}Url"]
            continue
        try:
            return str(sqs.get_queue_url(QueueName=f"{stack}-{logical_id}")["QueueUrl"])
        except ClientError as exc:
            if _error_code(exc) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                raise
    if outputs is not None:
        known = sorted(k.removesuffix("Url") for k in outputs if k.endswith("QueueUrl"))
        raise RedriveError(f"no queue {name!r} in the outputs of stack {stack}; known: {', '.join(known)}")
    names = " or ".join(f"{stack}-{logical_id}" for logical_id in _candidates(name))
    raise RedriveError(f"no queue {name!r}: stack {stack} does not exist and there is no queue named {names}")


def _attributes(sqs: Any, url: str, *names: str) -> dict[str, str]:
    return dict(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(names)).get("Attributes", {}))


def dead_letter_queue_of(sqs: Any, url: str) -> str | None:
    """The URL of the DLQ named by the queue's RedrivePolicy, None when it has none."""
    policy = _attributes(sqs, url, "RedrivePolicy").get("RedrivePolicy")
    if not policy:
        return None
    arn = json.loads(policy)["deadLetterTargetArn"]
    account, name = arn.split(":")[4], arn.split(":")[5]
    return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


def source_queues_of(sqs: Any, dlq_url: str) -> list[str]:
    """The queues whose RedrivePolicy names this dead-letter queue."""
    urls: list[str] = []
    for page in sqs.get_paginator("list_dead_letter_source_queues").paginate(QueueUrl=dlq_url):
        urls.extend(page.get("queueUrls", []))
    return urls


def plan(queue: str, *, to: str | None, stack: str, sqs: Any, cloudformation: Any) -> tuple[str, str]:
    """(dead-letter queue, destination) for QUEUE and --to; never one queue twice."""
    source, destination = _ends(queue, to=to, stack=stack, sqs=sqs, cloudformation=cloudformation)
    if _attributes(sqs, source, "QueueArn") == _attributes(sqs, destination, "QueueArn"):
        raise _into_itself(source)
    return source, destination


def _into_itself(queue: str) -> RedriveError:
    # Each message sent back would be received again in the same run, under a new MessageId: a loop without end,
    # every message's receive count reset at each turn.
    return RedriveError(
        f"{queue} is both the dead-letter queue and the destination: a queue is never redriven into itself; pass "
        "--to another queue"
    )


def _ends(queue: str, *, to: str | None, stack: str, sqs: Any, cloudformation: Any) -> tuple[str, str]:
    url = resolve_queue(queue, stack=stack, sqs=sqs, cloudformation=cloudformation)
    dlq = dead_letter_queue_of(sqs, url)
    if to is not None:
        # QUEUE a source queue names its DLQ here too: with --to, `AliyunQueue` emptied the live queue itself, its
        # packs still waiting for their dispatcher, into another (a review).
        return dlq or url, resolve_queue(to, stack=stack, sqs=sqs, cloudformation=cloudformation)
    if dlq is not None:  # QUEUE is a source queue: redrive its DLQ into it
        return dlq, url
    sources = source_queues_of(sqs, url)
    if len(sources) != 1:
        found = ", ".join(sources) if sources else "none"
        raise RedriveError(
            f"cannot tell where {url} redrives to: queues whose RedrivePolicy names it: {found}; pass --to"
        )
    return url, sources[0]


MAX_ATTRIBUTES = 10  # SQS's limit of attributes on a message
# The most bytes of body and attributes together a queue takes when its MaximumMessageSize does not say (SQS's
# default and most since 2025; the template's queues keep it). The destination's own attribute decides.
MAX_MESSAGE_BYTES = 1_048_576
MAX_BATCH_BYTES = 1_048_576  # SendMessageBatch's limit on the messages of one call together


def _attribute_bytes(name: str, value: dict[str, Any]) -> int:
    data = value.get("StringValue") or value.get("BinaryValue") or b""
    return (
        len(name.encode())
        + len(str(value.get("DataType", "")).encode())
        + len(data.encode() if isinstance(data, str) else data)
    )


def _room_for(
    body: str, attributes: dict[str, dict[str, Any]], name: str, value: dict[str, Any], max_bytes: int
) -> bool:
    if len(attributes) >= MAX_ATTRIBUTES:
        return False
    size = len(body.encode()) + sum(_attribute_bytes(n, v) for n, v in attributes.items())
    return size + _attribute_bytes(name, value) <= max_bytes


def maximum_message_bytes(sqs: Any, url: str) -> int:
    """The most bytes of body and attributes the queue takes (its MaximumMessageSize)."""
    return int(_attributes(sqs, url, "MaximumMessageSize").get("MaximumMessageSize", MAX_MESSAGE_BYTES))


def _with_first_message_id(
    message: dict[str, Any], attributes: dict[str, dict[str, Any]], max_bytes: int
) -> dict[str, dict[str, Any]] | None:
    """The attributes with FIRST_MESSAGE_ID set to the MessageId the intake named the body's batch after.

    Sent again, the message gets a new MessageId: the first one goes with it, so the intake resumes the batch it
    derived from it instead of accepting the body as a new one. Which one is the intake's own reading
    (`first_message_id`): the attribute's value when it is an SQS MessageId (kept from an earlier redrive), else the
    message's own; a value the producer set that the intake ignored is overwritten, or the copy would be a new batch
    again. Where SQS has no room for it (10 attributes, or the destination's MaximumMessageSize with them): None for
    a send request the intake names after its MessageId, which is then not moved (`_move`), since, moved without it,
    one dead-lettered half way would be accepted as a new batch and its recipients the first attempt reached texted
    again (until 2026-12-07 it moved as it was; a review); any other message moves with its attributes as they were."""
    kept = attributes.get(FIRST_MESSAGE_ID, {}).get("StringValue")
    value = first_message_id(message["MessageId"], kept if isinstance(kept, str) else None)
    first = {"DataType": "String", "StringValue": value}
    others = {name: v for name, v in attributes.items() if name != FIRST_MESSAGE_ID}
    if not _room_for(message["Body"], others, FIRST_MESSAGE_ID, first, max_bytes):
        return None if _named_after_its_message_id(message["Body"]) else attributes
    return {**others, FIRST_MESSAGE_ID: first}


def _named_after_its_message_id(body: str) -> bool:
    """Whether the intake would name this body's batch (or its refusal) after its MessageId: a send request (`to`
    or `messages`) naming no well-formed `batch_id`, nor, with no `batch_id` at all, a well-formed `idempotency_key`
    (`accept.intake`: a `null` names none, which many serializers write for an unset field, and a malformed one is
    refused under `sqs-<MessageId>`; a review). Any other body (a pack, a release, a webhook delivery, a send
    naming its batch) comes back the same without the attribute, and moves as it was."""
    try:
        document = json.loads(body)
    except ValueError:
        return False
    if not isinstance(document, dict) or not ("to" in document or "messages" in document):
        return False
    batch_id, key = document.get("batch_id"), document.get("idempotency_key")
    return not is_batch_id(batch_id) and not (batch_id is None and is_idempotency_key(key))


#: Why a send request without room for FIRST_MESSAGE_ID stays in the dead-letter queue (the log says it of each).
NO_ROOM = (
    f"no room for {FIRST_MESSAGE_ID} (10 attributes already, or the queue's MaximumMessageSize): moved without it, "
    "this send request would be taken for a new batch and its recipients texted again; left in the dead-letter queue"
)


def _send_entry(index: int, message: dict[str, Any], fifo: bool, max_bytes: int) -> dict[str, Any] | None:
    """The message as SendMessageBatch sends it again; None when it has no room for FIRST_MESSAGE_ID."""
    entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["Body"]}
    given = {
        name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, value in message.get("MessageAttributes", {}).items()
    }
    attributes = _with_first_message_id(message, given, max_bytes)
    if attributes is None:
        return None
    if attributes:
        entry["MessageAttributes"] = attributes
    system = message.get("Attributes", {})
    if fifo:
        entry["MessageGroupId"] = system.get("MessageGroupId", "redrive")
        entry["MessageDeduplicationId"] = system.get("MessageDeduplicationId", message["MessageId"])
    return entry


def _entry_bytes(entry: dict[str, Any]) -> int:
    attributes = entry.get("MessageAttributes", {})
    return len(entry["MessageBody"].encode()) + sum(_attribute_bytes(n, v) for n, v in attributes.items())


def send_calls(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The entries, in order, grouped into SendMessageBatch calls SQS takes: it refuses a call whose messages
    (bodies and attributes) come to more than MAX_BATCH_BYTES in all (BatchRequestTooLong), so four bodies of
    300 KB go in two calls. A message that large on its own goes alone."""
    calls: list[list[dict[str, Any]]] = []
    size = 0
    for entry in entries:
        length = _entry_bytes(entry)
        if not calls or size + length > MAX_BATCH_BYTES:
            calls.append([])
            size = 0
        calls[-1].append(entry)
        size += length
    return calls


def _move(
    sqs: Any,
    source: str,
    destination: str,
    messages: list[dict[str, Any]],
    *,
    fifo: bool,
    max_bytes: int,
    result: RedriveResult,
    log: Callable[[str], None],
) -> bool:
    """Send one round's messages, then delete from the DLQ those the destination accepted; False when it accepted
    none. When an AWS error stops it between the two, those sent are counted moved but not deleted (a copy left in
    the DLQ, said for each) before the error goes on."""
    entries = []
    for index, message in enumerate(messages):
        entry = _send_entry(index, message, fifo, max_bytes)
        if entry is None:
            log(f"not moved: {message['MessageId']}: {NO_ROOM}")
            result.failed += 1
        else:
            entries.append(entry)
    if not entries:
        return True  # every one left in the DLQ for want of room: the next round's may move (`seen` ends the run)
    done: list[dict[str, Any]] = []
    try:
        for call in send_calls(entries):
            sent = sqs.send_message_batch(QueueUrl=destination, Entries=call)
            for failure in sent.get("Failed", []):
                message_id = messages[int(failure["Id"])]["MessageId"]
                log(f"not moved: {message_id}: {failure.get('Code')} {failure.get('Message', '')}")
            result.failed += len(sent.get("Failed", []))
            done.extend(messages[int(s["Id"])] for s in sent.get("Successful", []))
        if not done:
            return False
        deleted = sqs.delete_message_batch(
            QueueUrl=source,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
        )
    except AWS_ERRORS:
        for message in done:
            log(f"moved but still in the DLQ (the run stopped before its delete): {message['MessageId']}")
        result.moved += len(done)
        result.not_deleted += len(done)
        raise
    for failure in deleted.get("Failed", []):
        log(f"moved but still in the DLQ (delete failed): {done[int(failure['Id'])]['MessageId']}")
    result.not_deleted += len(deleted.get("Failed", []))
    result.moved += len(done)
    return True


def redrive(
    sqs: Any,
    source: str,
    destination: str,
    *,
    maximum: int | None = None,
    dry_run: bool = False,
    wait_seconds: int = 2,
    log: Callable[[str], None] = lambda line: None,
    result: RedriveResult | None = None,
) -> RedriveResult:
    """Move up to `maximum` messages (all when None) from `source` to `destination`; see the module's docstring.
    The counts go into `result` as the run goes: given, the caller has those so far when an AWS error ends it."""
    if source == destination:  # plan() tells the same queue by its ARN; a caller without it, by its URL
        raise _into_itself(source)
    if result is None:
        result = RedriveResult(source=source, destination=destination)
    fifo = destination.endswith(".fifo")
    max_bytes = maximum_message_bytes(sqs, destination)
    hidden: list[str] = []  # dry run: receipt handles to make visible again
    seen: set[str] = set()
    try:
        while maximum is None or result.moved + len(result.listed) < maximum:
            want = BATCH if maximum is None else min(BATCH, maximum - result.moved - len(result.listed))
            messages = sqs.receive_message(
                QueueUrl=source,
                MaxNumberOfMessages=want,
                VisibilityTimeout=VISIBILITY_SECONDS,
                WaitTimeSeconds=wait_seconds,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            messages = [m for m in messages if m["MessageId"] not in seen]
            if not messages:
                break
            seen.update(m["MessageId"] for m in messages)
            if dry_run:
                hidden.extend(m["ReceiptHandle"] for m in messages)
                for m in messages:
                    receives = m.get("Attributes", {}).get("ApproximateReceiveCount", "?")
                    result.listed.append(m)
                    log(f"{m['MessageId']}  receives={receives}  {mask_message_body(m['Body'])[:100]}")
                continue
            if not _move(sqs, source, destination, messages, fifo=fifo, max_bytes=max_bytes, result=result, log=log):
                break  # the destination refuses everything: stop rather than spin
    finally:
        for start in range(0, len(hidden), BATCH):
            chunk = hidden[start : start + BATCH]
            sqs.change_message_visibility_batch(
                QueueUrl=source,
                Entries=[{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(chunk)],
            )
    return result


def aws_clients(environ: Mapping[str, str] | None = None) -> tuple[Any, Any]:
    """(sqs, cloudformation) clients, on AWS_ENDPOINT_URL when it is set (the local stack)."""
    env = os.environ if environ is None else environ
    endpoint = env.get("AWS_ENDPOINT_URL") or None  # boto3 reads it as well; explicit for older botocore
    return boto3.client("sqs", endpoint_url=endpoint), boto3.client("cloudformation", endpoint_url=endpoint)


def parse_arguments(argv: Sequence[str] | None, environ: dict[str, str]) -> argparse.Namespace:
    default = default_stack(environ)
    parser = argparse.ArgumentParser(
        prog="python -m tools.redrive", description="Move a dead-letter queue's messages back to their queue."
    )
    parser.add_argument("queue", help="the DLQ or its source queue: a URL or a logical id (AliyunDeadLetterQueue)")
    parser.add_argument("--to", help="the destination (URL or logical id); default: the DLQ's source queue")
    parser.add_argument("--stack", default=default, help=f"stack name (default: {default})")
    parser.add_argument("--max", type=int, default=None, help="move at most this many messages")
    parser.add_argument("--dry-run", action="store_true", help="list the messages, move nothing")
    parser.add_argument("--wait-seconds", type=int, default=2, help="long-poll time of each receive (default 2)")
    arguments = parser.parse_args(argv)
    if arguments.max is not None and arguments.max < 1:
        parser.error("--max must be at least 1")
    return arguments


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    arguments = parse_arguments(argv, env)
    try:
        return _run(arguments, env)
    except AWS_ERRORS as exc:  # a queue or stack not found, no credentials, access denied: one line, no traceback
        code, kind = exit_for_aws_error(exc)
        print(f"redrive: {kind}: {exc}", file=sys.stderr)
        return code


def _run(arguments: argparse.Namespace, env: dict[str, str]) -> int:
    sqs, cloudformation = aws_clients(env)
    source, destination = plan(
        arguments.queue, to=arguments.to, stack=arguments.stack, sqs=sqs, cloudformation=cloudformation
    )
    print(f"{'dry run: ' if arguments.dry_run else ''}from {source}\n  to {destination}")
    result = RedriveResult(source=source, destination=destination)
    try:
        redrive(
            sqs,
            source,
            destination,
            maximum=arguments.max,
            dry_run=arguments.dry_run,
            wait_seconds=arguments.wait_seconds,
            log=print,
            result=result,
        )
    except AWS_ERRORS:
        print(f"stopped by the error below, after: {summary(result, dry_run=arguments.dry_run)}")
        raise
    print(summary(result, dry_run=arguments.dry_run))
    return 1 if result.failed or result.not_deleted else 0


def summary(result: RedriveResult, *, dry_run: bool) -> str:
    if dry_run:
        return f"would move {len(result.listed)} message(s); moved 0"
    return f"moved {result.moved}, failed {result.failed}, moved but not deleted {result.not_deleted}"


if __name__ == "__main__":
    sys.exit(main())
