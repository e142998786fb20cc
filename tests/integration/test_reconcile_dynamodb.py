"""The ReceiptDue index and the reconcile run against moto, with the table as template.yaml declares it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from globesms.aws.dynamodb_deadlines import DynamoDBReceiptDeadlines
from globesms.aws.dynamodb_receipts import DynamoDBReceiptStore
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.dispatch.records import outcome_record
from globesms.domain.status import Status
from globesms.models.outbound import SendOutcome
from globesms.models.packs import DispatchPack
from globesms.reconcile.deadline import DeadlinePolicy, due_bucket, minute_of

EVENTS = Path(__file__).resolve().parents[2] / "events"
POLICY = DeadlinePolicy(grace_seconds=60)


def submitted(stack: Any, provider: str, now: datetime, count: int = 1) -> list[str]:  # type: ignore[no-untyped-def]
    pack = DispatchPack.model_validate(
        {
            "pack_id": f"B:{provider}:0",
            "batch_id": "B",
            "provider": provider,
            "created_at": now.isoformat(),
            "contents": [
                {"type": "OTP", "template_id": "1", "validity_seconds": 60, "status_callback": "https://h.example/s"}
            ],
            "recipients": [{"id": f"B.{i:05d}", "to": f"+659123{i:04d}", "c": 0} for i in range(count)],
        }
    )
    records = [
        outcome_record(pack, i, SendOutcome(f"B.{i:05d}", provider_message_id=f"pm-{i}"), now, POLICY)
        for i in range(count)
    ]
    DynamoDBMessageStore(stack.table_name).put_messages(records)
    return [r.id for r in records]


def test_a_submitted_message_is_found_through_the_index_only_once_due(stack) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    [message_id] = submitted(stack, "huawei", now)
    deadlines = DynamoDBReceiptDeadlines(stack.table_name)
    due_at = int(now.timestamp()) + 120
    bucket = due_bucket(due_at, message_id)
    assert deadlines.due(bucket, until=due_at - 1, limit=10) == []
    assert deadlines.due(bucket, until=due_at, limit=10) == [message_id]


def test_rescheduling_moves_the_entry_and_a_final_status_takes_it_off_the_index(stack) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    [message_id] = submitted(stack, "aliyun", now)
    deadlines = DynamoDBReceiptDeadlines(stack.table_name)
    receipts = DynamoDBReceiptStore(stack.table_name)
    record = receipts.reload(message_id)
    assert record is not None
    later = int(now.timestamp()) + 3600
    assert deadlines.reschedule(record, due_at=later, bucket=due_bucket(later, message_id), tries=1)
    assert deadlines.due(due_bucket(later, message_id), until=later, limit=10) == [message_id]
    moved = receipts.reload(message_id)
    assert moved is not None and moved.reconcile_tries == 1
    delivered = moved.model_copy(update={"status": Status.DELIVERED, "version": moved.version + 1})
    assert receipts.save_delivery(delivered, expected_version=moved.version)
    assert deadlines.due(due_bucket(later, message_id), until=later, limit=10) == []
    # A reschedule after the receipt changes nothing: the message is no longer SUBMITTED.
    assert not deadlines.reschedule(moved, due_at=later + 60, bucket=due_bucket(later + 60, message_id), tries=2)


def test_the_watermark_round_trips(stack) -> None:  # type: ignore[no-untyped-def]
    deadlines = DynamoDBReceiptDeadlines(stack.table_name)
    assert deadlines.watermark() is None
    deadlines.set_watermark("2026-12-02T10:00")
    assert deadlines.watermark() == "2026-12-02T10:00"


def test_the_scheduled_function_expires_huawei_messages_without_receipts(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    submitted_at = datetime.now(UTC) - timedelta(seconds=POLICY.grace_seconds + 60 + 120)
    ids = submitted(stack, "huawei", submitted_at, count=3)
    reconcile = load_handler("reconcile", GLOBESMS_RECEIPT_GRACE_SECONDS="60")
    result = reconcile.lambda_handler(json.loads((EVENTS / "reconcile_schedule.json").read_text()), lambda_context)
    assert result["expired"] == 3
    receipts = DynamoDBReceiptStore(stack.table_name)
    for message_id in ids:
        record = receipts.reload(message_id)
        assert record is not None and (record.status, record.error_code) == (Status.EXPIRED, "NO_RECEIPT")
        assert record.receipt_due is None
    webhook_queue = stack.deployed.context.refs["WebhookQueue"]
    events = stack.sqs.receive_message(QueueUrl=webhook_queue, MaxNumberOfMessages=10).get("Messages", [])
    assert sorted(json.loads(m["Body"])["event"]["type"] for m in events) == ["message.expired"] * 3
    again = reconcile.lambda_handler(json.loads((EVENTS / "reconcile_schedule.json").read_text()), lambda_context)
    assert again["expired"] == 0
    after = int(datetime.now(UTC).timestamp())
    # The run's own minute (the test reads the clock after it, perhaps in the next minute).
    assert DynamoDBReceiptDeadlines(stack.table_name).watermark() in {minute_of(after), minute_of(after - 60)}
