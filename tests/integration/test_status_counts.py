"""Batch status counts kept from the messages table's stream: moto's stream, read as the event source mapping
does (local/streams.py), handed to the real StatusCountsFunction handler."""

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from globesms.accept.queries import get_batch
from globesms.accept.service import accept
from globesms.aws.dynamodb_counts import DynamoDBStatusCounts
from globesms.aws.dynamodb_receipts import DynamoDBReceiptStore
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.counts.tally import BatchTally, StatusChange
from globesms.domain.status import Status
from globesms.models.api import MessageSpec
from tests.fakes import MemoryQueues
from tests.integration.gateway import InProcessApi

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def actual_counts(stack, batch_id: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    items = stack.dynamodb.query(
        TableName=stack.table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :m)",
        ExpressionAttributeValues={":pk": {"S": f"B#{batch_id}"}, ":m": {"S": "M#"}},
    )["Items"]
    return dict(Counter(i["status"]["S"] for i in items))


def test_counts_follow_every_status_change_and_a_poll_reads_them(stack, counted) -> None:  # type: ignore[no-untyped-def]
    reader, handed, _ = counted
    store = DynamoDBMessageStore(stack.table_name)
    spec = MessageSpec.model_validate({"to": [f"+8525123{i:04d}" for i in range(40)], "text": "hello"})
    accept([spec], batch_id="B", source="api", now=NOW, retention_days=90, store=store, queues=MemoryQueues())
    reader.read()
    assert store.batch_tally("B").statuses == {Status.ACCEPTED: 40}

    records = store.get_messages([f"B.{i:05d}" for i in range(30)])
    submitted = [
        r.model_copy(update={"status": Status.SUBMITTED, "provider_message_id": f"m-{r.id}"}) for r in records.values()
    ]
    store.put_messages(submitted[:25] + [r.model_copy(update={"status": Status.FAILED}) for r in submitted[25:]])
    receipts = DynamoDBReceiptStore(stack.table_name)
    for record in submitted[:10]:
        assert receipts.save_delivery(
            record.model_copy(update={"status": Status.DELIVERED, "version": 1}), expected_version=0
        )
    # A write that keeps the status (an intermediate receipt) changes no count.
    assert receipts.save_delivery(submitted[10].model_copy(update={"version": 1}), expected_version=0)
    reader.read()

    expected = {"ACCEPTED": 10, "SUBMITTED": 15, "FAILED": 5, "DELIVERED": 10}
    assert actual_counts(stack, "B") == expected
    assert store.batch_tally("B").statuses == expected
    view = get_batch(store, "B", limit=5, after=None)
    assert view is not None and view.counts == {"QUEUED": 10, "SUBMITTED": 15, "FAILED": 5, "DELIVERED": 10}
    # Only message records reached the handler (the filter), whatever else the partition and the table hold.
    assert all(r["dynamodb"]["Keys"]["sk"]["S"].startswith("M#") for e in handed for r in e["Records"])


def test_a_stream_batch_handed_over_again_is_counted_once(stack, counted, lambda_context) -> None:  # type: ignore[no-untyped-def]
    reader, handed, handler = counted
    store = DynamoDBMessageStore(stack.table_name)
    spec = MessageSpec.model_validate({"to": [f"+8525123{i:04d}" for i in range(12)], "text": "hello"})
    accept([spec], batch_id="R", source="api", now=NOW, retention_days=90, store=store, queues=MemoryQueues())
    reader.read()
    assert store.batch_tally("R").statuses == {"ACCEPTED": 12}
    (first,) = handed
    handler.lambda_handler(first, lambda_context)  # the same batch again: an invocation that failed after committing
    assert store.batch_tally("R").statuses == {"ACCEPTED": 12}

    records = list(store.get_messages([f"R.{i:05d}" for i in range(12)]).values())
    store.put_messages([r.model_copy(update={"status": Status.SUBMITTED}) for r in records])
    reader.read()
    # A retry that starts at the same record and holds more than the attempt that committed: only the rest counts.
    longer = {"Records": first["Records"] + handed[-1]["Records"]}
    handler.lambda_handler(longer, lambda_context)
    handler.lambda_handler(handed[-1], lambda_context)
    assert store.batch_tally("R").statuses == {"SUBMITTED": 12}


def test_changes_of_many_batches_commit_in_several_transactions(stack) -> None:  # type: ignore[no-untyped-def]
    counts = DynamoDBStatusCounts(stack.table_name)
    changes = [StatusChange(f"{i:021d}", f"b{i % 150}", None, "ACCEPTED") for i in range(300)]
    counts.add(changes)
    counts.add(changes)  # the whole stream batch again: every transaction meets its marker
    store = DynamoDBMessageStore(stack.table_name)
    assert {store.batch_tally(f"b{n}").statuses["ACCEPTED"] for n in range(150)} == {2}


def test_the_shipped_stream_event_counts_its_change(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    """events/status_counts_stream.json (`make invoke-StatusCountsFunction`, the cold start figure): a record
    created ACCEPTED, then SUBMITTED."""
    event = json.loads((Path(__file__).resolve().parents[2] / "events" / "status_counts_stream.json").read_text())
    load_handler("status_counts").lambda_handler(event, lambda_context)
    store = DynamoDBMessageStore(stack.table_name)
    assert store.batch_tally("01JDEXAMPLEBATCH0000000000").statuses == {Status.SUBMITTED: 1}


def test_records_not_counted_yet_show_in_the_status_they_were_created_in(
    stack, counted, load_handler, lambda_context
) -> None:  # type: ignore[no-untyped-def]
    # They were all shown ACCEPTED, QUEUED once the batch was: a scheduled batch polled in the stream's delay (about
    # a second, the mapping's batching window two) claimed its recipients were queued for sending.
    reader, _, _ = counted
    api = InProcessApi(load_handler("send_api").lambda_handler, lambda_context)
    send_at = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0).isoformat()
    later = {"to": ["+6591234567", "+85251234567"], "text": "sale", "send_at": send_at}
    now = {"to": ["+6591234568", "+85251234568", "+85251234569"], "text": "now"}
    sent = api.call("POST", "/v1/messages", body={"messages": [later, now]})
    assert sent.status == 202, sent.body
    batch_id = sent.json()["batch_id"]
    store = DynamoDBMessageStore(stack.table_name)
    header = store.get_batch(batch_id)
    assert header is not None and (header.accepted, header.scheduled) == (5, 2)
    expected = {"SCHEDULED": 2, "QUEUED": 3}
    assert api.call("GET", f"/v1/batches/{batch_id}").json()["counts"] == expected  # nothing counted yet

    # Part counted: one record of each kind created, the one to go now sent since.
    counts = DynamoDBStatusCounts(stack.table_name)
    counts.add([StatusChange("1", batch_id, None, "SCHEDULED"), StatusChange("2", batch_id, None, "ACCEPTED")])
    counts.add([StatusChange("3", batch_id, "ACCEPTED", "SUBMITTED")])
    assert api.call("GET", f"/v1/batches/{batch_id}").json()["counts"] == {**expected, "QUEUED": 2, "SUBMITTED": 1}

    key = {"pk": {"S": f"B#{batch_id}"}, "sk": {"S": "#counts"}}
    stack.dynamodb.delete_item(TableName=stack.table_name, Key=key)  # the stream counts it all from here
    reader.read()
    assert store.batch_tally(batch_id) == BatchTally({"SCHEDULED": 2, "ACCEPTED": 3}, {"SCHEDULED": 2, "ACCEPTED": 3})
    assert api.call("GET", f"/v1/batches/{batch_id}").json()["counts"] == expected
