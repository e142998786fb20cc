"""Deadline entries and the reconcile run against moto, with the table as template.yaml declares it."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from globesms.aws.deadline_items import deadline_item, entry_from_item
from globesms.aws.dynamodb_deadlines import WATERMARK_KEY, DynamoDBReceiptDeadlines
from globesms.aws.dynamodb_receipts import DynamoDBReceiptStore
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.dispatch.records import outcome_record
from globesms.domain.status import Status
from globesms.models.outbound import SendOutcome
from globesms.models.packs import DispatchPack
from globesms.reconcile.deadline import DeadlineEntry, DeadlinePolicy, deadline_entries
from tests.integration.test_dispatch_metrics_emitted import emitted, value
from tests.integration.test_dynamodb_route_stats import second_save_fails

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
    DynamoDBMessageStore(stack.table_name).put_messages(records, deadline_entries(records))
    return [r.id for r in records]


def test_an_entry_round_trips_through_its_item() -> None:
    ids = (*(f"B.{i:05d}" for i in range(1_000)), "other-batch.123456")
    entry = DeadlineEntry(1_764_669_600, ids)
    item = deadline_item(entry)
    assert entry_from_item(item) == entry
    assert item["sk"]["S"] == entry.key and item["expires_at"]["N"] > item["due_at"]["N"]  # the TTL deletes it
    assert len(str(item)) < 8_000  # ~6 bytes per id: about 8 write units for a pack of 1,000


def test_a_packs_entry_is_found_only_once_due_and_lists_its_messages(stack) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    ids = submitted(stack, "huawei", now, count=30)  # 30 records and their entry: two batch writes
    deadlines = DynamoDBReceiptDeadlines(stack.table_name)
    due_at = int(now.timestamp()) + 120
    entry = DeadlineEntry(due_at, tuple(ids))
    assert list(deadlines.due(entry.bucket, after=due_at - 60, until=due_at - 1)) == []
    assert list(deadlines.due(entry.bucket, after=due_at - 60, until=due_at)) == [entry]
    assert list(deadlines.due(entry.bucket, after=due_at, until=due_at + 60)) == []  # `after` is done already
    assert [r.id for r in deadlines.waiting(ids, until=due_at)] == ids
    assert deadlines.waiting(ids, until=due_at - 1) == []


def test_rescheduling_writes_an_entry_and_a_final_message_is_no_longer_waiting(stack) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    [message_id] = submitted(stack, "aliyun", now)
    deadlines = DynamoDBReceiptDeadlines(stack.table_name)
    receipts = DynamoDBReceiptStore(stack.table_name)
    record = receipts.reload(message_id)
    assert record is not None
    later = int(now.timestamp()) + 3600
    assert deadlines.reschedule(record, due_at=later, tries=1)
    # An overlapping run that read the record before this reschedule cannot move its deadline again.
    assert not deadlines.reschedule(record, due_at=later + 1800, tries=1)
    moved_entry = DeadlineEntry(later, (message_id,))
    assert list(deadlines.due(moved_entry.bucket, after=later - 1, until=later)) == [moved_entry]
    assert deadlines.waiting([message_id], until=later - 1) == []  # its first entry passes it over
    moved = receipts.reload(message_id)
    assert moved is not None and (moved.reconcile_tries, moved.receipt_due_at) == (1, later)
    delivered = moved.model_copy(update={"status": Status.DELIVERED, "version": moved.version + 1})
    assert receipts.save_delivery(delivered, expected_version=moved.version)
    assert deadlines.waiting([message_id], until=later) == []
    # A reschedule after the receipt changes nothing: the message is no longer SUBMITTED.
    assert not deadlines.reschedule(moved, due_at=later + 60, tries=2)


def test_the_watermark_round_trips_and_one_of_the_earlier_design_reads_as_none(stack) -> None:  # type: ignore[no-untyped-def]
    deadlines = DynamoDBReceiptDeadlines(stack.table_name)
    assert deadlines.watermark() is None
    stack.dynamodb.put_item(TableName=stack.table_name, Item={**WATERMARK_KEY, "minute": {"S": "2026-12-02T10:00"}})
    assert deadlines.watermark() is None
    deadlines.set_watermark(1_764_669_600)
    assert deadlines.watermark() == 1_764_669_600


def test_the_scheduled_function_expires_huawei_messages_without_receipts(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, capsys: pytest.CaptureFixture[str]
) -> None:
    submitted_at = datetime.now(UTC) - timedelta(seconds=POLICY.grace_seconds + 60 + 120)
    ids = submitted(stack, "huawei", submitted_at, count=3)
    reconcile = load_handler("reconcile", GLOBESMS_RECEIPT_GRACE_SECONDS="60")
    result = reconcile.lambda_handler(json.loads((EVENTS / "reconcile_schedule.json").read_text()), lambda_context)
    assert result["expired"] == 3
    lines, huawei = emitted(capsys.readouterr().out), {"service": "globesms", "provider": "huawei"}
    assert value(lines, "ReceiptsMissing", huawei) == 3  # the dashboard's no-receipt line
    assert value(lines, "RecipientsUndelivered", huawei) == 0  # not a carrier's outcome: not in the delivery rate
    receipts = DynamoDBReceiptStore(stack.table_name)
    for message_id in ids:
        record = receipts.reload(message_id)
        assert record is not None and (record.status, record.error_code) == (Status.EXPIRED, "NO_RECEIPT")
    webhook_queue = stack.deployed.context.refs["WebhookQueue"]
    events = stack.sqs.receive_message(QueueUrl=webhook_queue, MaxNumberOfMessages=10).get("Messages", [])
    assert sorted(json.loads(m["Body"])["event"]["type"] for m in events) == ["message.expired"] * 3
    again = reconcile.lambda_handler(json.loads((EVENTS / "reconcile_schedule.json").read_text()), lambda_context)
    assert again["expired"] == 0
    after = int(datetime.now(UTC).timestamp())
    done_until = DynamoDBReceiptDeadlines(stack.table_name).watermark()
    assert done_until is not None and after - 5 <= done_until <= after  # the run's own second


def test_a_run_that_fails_midway_queues_and_counts_what_it_settled(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    submitted_at = datetime.now(UTC) - timedelta(seconds=POLICY.grace_seconds + 60 + 120)
    submitted(stack, "huawei", submitted_at, count=2)
    reconcile = load_handler("reconcile", GLOBESMS_RECEIPT_GRACE_SECONDS="60")
    writes = second_save_fails(monkeypatch)
    with pytest.raises(OSError):
        reconcile.lambda_handler(json.loads((EVENTS / "reconcile_schedule.json").read_text()), lambda_context)

    webhook_queue = stack.deployed.context.refs["WebhookQueue"]
    events = stack.sqs.receive_message(QueueUrl=webhook_queue, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["event"]["id"] for m in events] == [f"{writes[0]}.expired"]  # its customer hears
    stats = stack.dynamodb.query(
        TableName=stack.deployed.context.refs["RouteStatsTable"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "SG"}},
    )["Items"]
    assert [int(item["x"]["N"]) for item in stats] == [1]  # and its expiry is counted: the next run will not


def test_an_invalid_rate_limits_variable_stops_the_status_queries_only(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Until 2026-12-07 ReconcileSettings, read at import, validated GLOBESMS_RATE_LIMITS: an invalid value failed
    every run's init, and nothing was settled, not even Huawei's deadlines, which need no query. Now the run goes
    on without status queries (each unavailable, as without credentials), and says so."""
    submitted_at = datetime.now(UTC) - timedelta(seconds=POLICY.grace_seconds + 60 + 120)
    ids = submitted(stack, "huawei", submitted_at, count=2)
    reconcile = load_handler(
        "reconcile", GLOBESMS_RECEIPT_GRACE_SECONDS="60", GLOBESMS_RATE_LIMITS='{"QueryMessage": 0}'
    )
    with caplog.at_level(logging.ERROR):
        result = reconcile.lambda_handler(json.loads((EVENTS / "reconcile_schedule.json").read_text()), lambda_context)
    assert result["expired"] == 2
    lines = emitted(capsys.readouterr().out)  # whatever default dimensions an earlier handler left on the metrics
    assert [
        line["values"]["ReconcileQueriesUnavailable"]
        for line in lines
        if "ReconcileQueriesUnavailable" in line["values"]
    ] == [1]
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("status queries unavailable")]
    assert "GLOBESMS_RATE_LIMITS: QueryMessage" in str(getattr(logged, "error", ""))  # the rule, named
    records = [DynamoDBReceiptStore(stack.table_name).reload(i) for i in ids]
    assert {(r.status, r.error_code) for r in records if r is not None} == {(Status.EXPIRED, "NO_RECEIPT")}


def test_a_receipt_held_past_the_dispatcher_is_applied_by_reconcile_not_expired(stack) -> None:  # type: ignore[no-untyped-def]
    """A receipt held while the ProviderRef index lagged (or whose hold mark failed) after the dispatcher had
    finished was answered 200: its provider never pushes it again. Reconcile expired the message (Huawei has no
    status query) as NO_RECEIPT, with message.expired, though the carrier said DELIVERED (found by a review)."""
    from globesms.models.outbound import ProviderName
    from globesms.models.receipts import DeliveryReport
    from globesms.reconcile.service import ReconcileDeps, reconcile_due
    from tests.fakes import MemoryRateLimiter, MemoryWebhooks

    sent_at = datetime.now(UTC) - timedelta(seconds=POLICY.grace_seconds + 60 + 120)
    [message_id] = submitted(stack, "huawei", sent_at)
    receipts = DynamoDBReceiptStore(stack.table_name)
    report = DeliveryReport(
        ProviderName.HUAWEI, "pm-0", Status.DELIVERED, "DELIVRD", to="+6591230000", provider_time="2026-12-02T10:00:05Z"
    )
    assert receipts.hold_receipt(ProviderName.HUAWEI, "pm-0", report.event(sent_at.isoformat()), None)
    now, webhooks = datetime.now(UTC), MemoryWebhooks()
    deps = ReconcileDeps(
        receipts=receipts,
        deadlines=DynamoDBReceiptDeadlines(stack.table_name),
        queries={},
        limiter=MemoryRateLimiter({}),
        webhooks=webhooks,
        clock=lambda: now,
    )
    summary = reconcile_due(deps, POLICY)
    record = receipts.reload(message_id)
    assert record is not None and (record.status, record.error_code) == (Status.DELIVERED, None)
    assert (summary.settled_from_held, summary.settled, summary.expired) == (1, 0, 0)
    assert [d.event.type for d in webhooks.sent] == ["message.delivered"]


def test_the_receipts_held_for_a_due_pack_are_looked_for_together(stack) -> None:  # type: ignore[no-untyped-def]
    """One held-receipts read per due message, one after the other, was 300 round trips for a pack of 300 in a
    receipts outage, where its records were read in 3: a run settled a tenth of its budget (a review)."""
    from collections.abc import Sequence

    from globesms.models.outbound import ProviderName
    from globesms.reconcile.service import ReconcileDeps, reconcile_due
    from tests.fakes import MemoryRateLimiter, MemoryWebhooks

    reads: list[int] = []

    class Counting(DynamoDBReceiptStore):
        def held_receipts(self, provider: ProviderName, message_ids: Sequence[str], pmids: Sequence[str]) -> Any:
            reads.append(len(message_ids))
            return super().held_receipts(provider, message_ids, pmids)

    sent_at = datetime.now(UTC) - timedelta(seconds=POLICY.grace_seconds + 60 + 120)
    ids = submitted(stack, "huawei", sent_at, count=300)
    now = datetime.now(UTC)
    deps = ReconcileDeps(
        receipts=Counting(stack.table_name),
        deadlines=DynamoDBReceiptDeadlines(stack.table_name),
        queries={},
        limiter=MemoryRateLimiter({}),
        webhooks=MemoryWebhooks(),
        clock=lambda: now,
    )
    assert reconcile_due(deps, POLICY).expired == len(ids) == 300
    assert reads == [300]  # the entry's waiting records, together


def _hold_delivered(receipts: DynamoDBReceiptStore, i: int, sent_at: datetime) -> None:
    from globesms.models.outbound import ProviderName
    from globesms.models.receipts import DeliveryReport

    report = DeliveryReport(
        ProviderName.HUAWEI,
        f"pm-{i}",
        Status.DELIVERED,
        "DELIVRD",
        to=f"+659123{i:04d}",
        provider_time="2026-12-02T10:00:05Z",
    )
    assert receipts.hold_receipt(ProviderName.HUAWEI, f"pm-{i}", report.event(sent_at.isoformat()), None)


def _reconcile_deps(stack: Any, receipts: DynamoDBReceiptStore, now: datetime) -> Any:
    from globesms.reconcile.service import ReconcileDeps
    from tests.fakes import MemoryRateLimiter, MemoryWebhooks

    return ReconcileDeps(
        receipts=receipts,
        deadlines=DynamoDBReceiptDeadlines(stack.table_name),
        queries={},
        limiter=MemoryRateLimiter({}),
        webhooks=MemoryWebhooks(),
        clock=lambda: now,
    )


def test_a_write_failing_midway_through_the_held_receipts_loses_no_event_of_those_applied(stack, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Counted only once the whole entry's held receipts were applied, the first message's settlement was lost when
    the second's write failed: DELIVERED in the table, never looked at again, its event never queued (a review)."""
    from globesms.reconcile.service import reconcile_due

    sent_at = datetime.now(UTC) - timedelta(seconds=POLICY.grace_seconds + 60 + 120)
    submitted(stack, "huawei", sent_at, count=2)
    receipts = DynamoDBReceiptStore(stack.table_name)
    for i in range(2):
        _hold_delivered(receipts, i, sent_at)
    writes = second_save_fails(monkeypatch)
    deps = _reconcile_deps(stack, receipts, datetime.now(UTC))
    with pytest.raises(OSError):
        reconcile_due(deps, POLICY)
    first = receipts.reload(writes[0])
    assert first is not None and first.status is Status.DELIVERED
    assert [d.event.type for d in deps.webhooks.sent] == ["message.delivered"]  # queued by the run's `finally`


def test_the_held_receipts_of_an_entry_are_looked_for_under_each_messages_own_provider(stack) -> None:  # type: ignore[no-untyped-def]
    """An entry lists one pack, but a message failed over since is the next provider's: looked for under the first
    message's provider, the others' held receipts were missed and Huawei's expired NO_RECEIPT (a review)."""
    from globesms.aws.dynamodb_deadlines import _key
    from globesms.models.outbound import ProviderName
    from globesms.reconcile.service import reconcile_due

    sent_at = datetime.now(UTC) - timedelta(seconds=POLICY.grace_seconds + 60 + 120)
    ids = submitted(stack, "huawei", sent_at, count=2)
    receipts = DynamoDBReceiptStore(stack.table_name)
    stack.dynamodb.update_item(  # the first message failed over to Alibaba since
        TableName=stack.table_name,
        Key=_key(ids[0]),
        UpdateExpression="SET provider = :p",
        ExpressionAttributeValues={":p": {"S": ProviderName.ALIYUN.value}},
    )
    _hold_delivered(receipts, 1, sent_at)
    reconcile_due(_reconcile_deps(stack, receipts, datetime.now(UTC)), POLICY)
    second = receipts.reload(ids[1])
    assert second is not None and second.status is Status.DELIVERED, (second.status, second.error_code)
