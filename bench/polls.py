"""Figures 4 and 5 of the issue: what one batch poll and one early receipt read, on a 10,000-recipient batch.

One batch of 10,000 recipients (quick: 300) is accepted on moto with the table as template.yaml declares it (its
stream included), every record is then moved to SUBMITTED as a dispatcher writes it, and the table's stream is
handed to the real StatusCountsFunction handler (local/streams.py) as the event source mapping would. Read units are
computed from item sizes by the AWS rules (`bench._cost_meter`).

- `polls.read_units`: one `GET /v1/batches/{id}?limit=100` (`accept.queries.get_batch`), read units, against the
  goal of 30. The detail gives the same poll as it was before the counts were kept (the status of every record of
  the partition read to count them, measured in this run) and what keeping the counts cost (stream invocations,
  write units per recipient).
- `polls.early_receipt_reads`: a delivery receipt that arrives before its message's SUBMITTED write, echoing the
  call's first id (the batch's first message) for the batch's last recipient: read units to match it and hold it
  for dispatch, against the goal of 3; the detail gives what the echo's range read before (the partition from the
  echoed id on, measured from the records' sizes in this run).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from bench._cost_meter import Meter, MotoTables
from bench._cost_pipeline import ACCOUNT_ID, REGION, environment
from bench.figures import Figure

ROOT = Path(__file__).resolve().parent.parent
RECIPIENTS = 10_000
QUICK_RECIPIENTS = 300
PAGE = 100
GOAL_POLL_READ_UNITS = 30.0
GOAL_EARLY_RECEIPT_READS = 3.0
NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
BATCH_ID = "01KBPOLLBENCH0000000000000"


class KeptPacks:
    """The provider queues, kept in memory: the bench reads the table, not the queues."""

    def __init__(self) -> None:
        self.packs: list[Any] = []

    def send_packs(self, provider: Any, packs: Sequence[Any], *, delay_seconds: int = 0) -> None:
        self.packs.extend(packs)


def load_counts_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_status_counts", ROOT / "functions" / "status_counts" / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Context:
    function_name = "StatusCountsFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:StatusCountsFunction"
    aws_request_id = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def partition_status_count(client: Any, table: str, batch_id: str) -> dict[str, int]:
    """How a poll counted statuses before the counts were kept: the status of every record of the partition."""
    counts: Counter[str] = Counter()
    pages = client.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :m)",
        ExpressionAttributeValues={":pk": {"S": f"B#{batch_id}"}, ":m": {"S": "M#"}},
        ProjectionExpression="#s",
        ExpressionAttributeNames={"#s": "status"},
        ConsistentRead=True,
    )
    for page in pages:
        counts.update(item["status"]["S"] for item in page.get("Items", []))
    return dict(counts)


def read_units_of_record(meter: Meter, table: str, message_id: str) -> float:
    from bench._cost_meter import item_size, read_units

    batch_id, seq = message_id.rsplit(".", 1)
    key = {"pk": {"S": f"B#{batch_id}"}, "sk": {"S": f"M#{seq}"}}
    return read_units(item_size(meter.tables.item(table, key)), consistent=True)


def partition_read_units(meter: Meter, table: str, batch_id: str, recipients: int) -> float:
    from bench._cost_meter import item_size, read_units

    units = 0.0
    page = 0
    for n in range(recipients):
        key = {"pk": {"S": f"B#{batch_id}"}, "sk": {"S": f"M#{n:05d}"}}
        size = item_size(meter.tables.item(table, key))
        if page + size > 1_048_576:
            units += read_units(page, consistent=True)
            page = 0
        page += size
    return units + read_units(page, consistent=True)


def measure(quick: bool) -> list[Figure]:
    from moto import mock_aws

    recipients = QUICK_RECIPIENTS if quick else RECIPIENTS
    base = {"AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "POWERTOOLS_TRACE_DISABLED": "true"}
    with environment(base, drop_prefixes=("GLOBESMS_", "AWS_ENDPOINT_URL", "AWS_PROFILE")), mock_aws():
        meter = Meter(MotoTables(ACCOUNT_ID, REGION))
        with meter.installed():
            return _run(meter, recipients)


def _run(meter: Meter, recipients: int) -> list[Figure]:
    import boto3

    from globesms.accept.queries import get_batch
    from globesms.accept.service import accept
    from globesms.aws import clients, wiring
    from globesms.aws.dynamodb_store import DynamoDBMessageStore
    from globesms.config import settings
    from globesms.domain.status import Status
    from globesms.models.api import MessageSpec
    from local.stack import LocalStack
    from local.streams import StreamReader

    deployed = LocalStack.deploy(environ={"AWS_DEFAULT_REGION": REGION})
    table = deployed.context.refs["MessagesTable"]
    with environment({"GLOBESMS_TABLE_NAME": table}):
        clients.reset()
        wiring.reset()
        settings.cache_clear()
        handler = load_counts_handler()
        dynamodb = boto3.client("dynamodb")
        source = next(s for s in deployed.template.stream_event_sources if s.function_id == "StatusCountsFunction")
        invocations: list[int] = []

        def invoke(event: dict[str, Any]) -> None:
            invocations.append(len(event["Records"]))
            with meter.phase_of("status_counts"):
                handler.lambda_handler(event, Context())

        arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        streams = boto3.client("dynamodbstreams", endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com")
        reader = StreamReader(streams, arn, source, invoke, from_start=True)
        store = DynamoDBMessageStore(table)

        numbers = [f"+852512{n:05d}" for n in range(recipients)]
        specs = [
            MessageSpec.model_validate({"to": numbers[i : i + 1000], "text": "Your code is 123456"})
            for i in range(0, recipients, 1000)
        ]
        accept(specs, batch_id=BATCH_ID, source="api", now=NOW, retention_days=90, store=store, queues=KeptPacks())
        reader.read()
        ids = [f"{BATCH_ID}.{n:05d}" for n in range(recipients)]
        early = early_receipt(meter, store, table, ids[-1], numbers[-1])
        for start in range(0, recipients, 1000):
            records = store.get_messages(ids[start : start + 1000])
            store.put_messages(
                [
                    r.model_copy(update={"status": Status.SUBMITTED, "provider_message_id": f"m{r.id}"})
                    for r in records.values()
                ]
            )
        reader.read()

        with meter.phase_of("poll"):
            view = get_batch(store, BATCH_ID, limit=PAGE, after=None)
        with meter.phase_of("poll_before"):
            counted_before = partition_status_count(dynamodb, table, BATCH_ID)
            get_batch(store, BATCH_ID, limit=PAGE, after=None)  # the page and header, as the poll reads them
        # DynamoDB bills a Query on the whole items it reads, whatever the projection returns (the meter sizes the
        # items returned): the partition count is billed here from the records' full sizes, 1 MB a page.
        partition_units = partition_read_units(meter, table, BATCH_ID, recipients)
        assert view is not None and view.counts == counted_before == {Status.SUBMITTED: recipients}, (
            view and view.counts,
            counted_before,
        )
        poll = meter.total("poll")
        before = meter.total("poll_before")
        before_units = sum(u for op, u in before.read_units.items() if op != "dynamodb.Query")
        before_units += partition_units + poll.read_units.get("dynamodb.Query", 0)  # the page, as read now
        counting = meter.total("status_counts")
    return [poll_figure(recipients, poll, before, before_units, partition_units, invocations, counting), early]


def early_receipt(meter: Meter, store: Any, table: str, message_id: str, number: str) -> Figure:
    """A delivery receipt for the batch's last recipient, pushed before its SUBMITTED write (the record is still
    ACCEPTED), echoing the call's first id (0) as Alibaba's batch TaskId does: matched by number, held for dispatch."""
    from globesms.aws.dynamodb_receipts import DynamoDBReceiptStore
    from globesms.domain.status import Status
    from globesms.models.receipts import DeliveryReport, EchoRange
    from globesms.receipts.apply import record_push

    recipients = int(message_id.rsplit(".", 1)[1]) + 1
    record = store.get_messages([message_id])[message_id]
    report = DeliveryReport(
        provider=record.provider,
        provider_message_id="early-receipt-1",
        status=Status.DELIVERED,
        raw_status="DELIVERED",
        to=number,
        echo=EchoRange(BATCH_ID, 0, 999),
    )
    with meter.phase_of("early_receipt"):
        result = record_push([report], store=DynamoDBReceiptStore(table), now=NOW)
    assert result.held == 1, result  # matched to its message and held for dispatch to apply
    usage = meter.total("early_receipt")
    units = sum(usage.read_units.values())
    reads = {
        op: n for op, n in usage.calls.items() if op in ("dynamodb.Query", "dynamodb.GetItem", "dynamodb.BatchGetItem")
    }
    # Before: the echo's range was found by reading the batch partition from the echoed first id to its end.
    scan = partition_read_units(meter, table, BATCH_ID, recipients)
    # Before: ProviderRef (half of today's two index queries), the partition from the echoed id, the re-read.
    before = usage.read_units.get("dynamodb.Query", 0) / 2 + scan + read_units_of_record(meter, table, message_id)
    return Figure.at_most(
        id="polls.early_receipt_reads",
        title=f"Early receipt: read units to match and hold one receipt, {recipients:,}-recipient batch",
        value=round(units, 2),
        unit="read units/receipt",
        limit=GOAL_EARLY_RECEIPT_READS,
        goal=f"<= {GOAL_EARLY_RECEIPT_READS:g} read units per early receipt (ratio <= 1)",
        detail={
            "recipients": recipients,
            "read_units_by_operation": {k: round(v, 2) for k, v in sorted(usage.read_units.items())},
            "read_requests": dict(sorted(reads.items())),
            "write_units": sum(usage.write_units.values()),
            "path": "ProviderRef (no match yet) -> Recipient index (the number's messages, filtered to the batch from "
            "the echoed id) -> the record (ACCEPTED) -> held under its id -> re-read (dispatch's SUBMITTED write may "
            "have landed meanwhile); dispatch applies the held receipt after it writes SUBMITTED",
            "before_read_units": round(before, 2),
            "before": "the echo's range read from the batch partition (Query, consistent, echoed first id to the end)",
        },
    )


def poll_figure(
    recipients: int,
    poll: Any,
    before: Any,
    before_units: float,
    partition_units: float,
    invocations: list[int],
    counting: Any,
) -> Figure:
    poll_units = sum(poll.read_units.values())
    return Figure.at_most(
        id="polls.read_units",
        title=f"Batch poll: read units of GET /v1/batches/{{id}}?limit={PAGE}, {recipients:,}-recipient batch",
        value=round(poll_units, 2),
        unit="read units/poll",
        limit=GOAL_POLL_READ_UNITS,
        goal=f"<= {GOAL_POLL_READ_UNITS:g} read units per poll of a 100-message page (ratio <= 1)",
        detail={
            "recipients": recipients,
            "page": PAGE,
            "read_units_by_operation": {k: round(v, 2) for k, v in sorted(poll.read_units.items())},
            "requests": dict(sorted(poll.calls.items())),
            "before_counts_were_kept": {
                "read_units": round(before_units, 2),
                "of_which_counting_the_partition": round(partition_units, 2),
                "requests": dict(sorted(before.calls.items())),
                "how": "the status of every record of the batch partition (Query, consistent, paginated), plus the "
                "header and the page",
            },
            "keeping_the_counts": {
                "stream_invocations": len(invocations),
                "stream_records_handed_over": sum(invocations),
                "write_units": sum(counting.write_units.values()),
                "write_units_per_recipient": round(sum(counting.write_units.values()) / recipients, 5),
                "read_units": round(sum(counting.read_units.values()), 2),
                "how": "StatusCountsFunction on the table's stream: one TransactWriteItems per 1,000 changes "
                "(a once-only marker and each batch's counts item, 2 write units each)",
            },
        },
    )


if __name__ == "__main__":
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    for figure in measure(quick="--quick" in sys.argv):
        print(figure.as_json())
