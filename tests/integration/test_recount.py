"""tools/recount: a batch's counts set again from its records, after the status-counts consumer set changes aside."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoRegionError

from globesms.accept.queries import get_batch
from globesms.accept.service import accept
from globesms.aws.dynamodb_counts import DynamoDBStatusCounts
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.aws.message_items import COUNTS_SK, batch_pk
from globesms.counts.tally import StatusChange
from globesms.domain.status import Status
from globesms.models.api import MessageSpec
from globesms.models.records import message_id
from tests.fakes import MemoryQueues
from tools import recount
from tools.stack import messages_table

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def counts_key(batch_id: str) -> dict[str, Any]:
    return {"pk": {"S": batch_pk(batch_id)}, "sk": {"S": COUNTS_SK}}


def off_counts(stack: Any) -> DynamoDBMessageStore:
    """A batch of three records (ACCEPTED) whose counts item lost one change and counted another twice."""
    store = DynamoDBMessageStore(stack.table_name)
    spec = MessageSpec.model_validate({"to": ["+85251234567", "+85251234568", "+85251234569"], "text": "hi"})
    accept([spec], batch_id="B", source="api", now=NOW, retention_days=90, store=store, queues=MemoryQueues())
    stack.dynamodb.put_item(
        TableName=stack.table_name,
        Item={"pk": {"S": batch_pk("B")}, "sk": {"S": COUNTS_SK}, "n_ACCEPTED": {"N": "4"}, "n_QUEUED": {"N": "-1"}},
    )
    return store


def run(stack: Any, *argv: str) -> int:
    clients = {"dynamodb": stack.dynamodb}
    return recount.main([*argv, "--table", stack.table_name], environ={}, client=clients.__getitem__)


def test_a_recount_sets_each_status_to_what_the_records_say(stack, capsys) -> None:  # type: ignore[no-untyped-def]
    store = off_counts(stack)
    assert run(stack, "B", "--dry-run") == 0
    assert store.batch_tally("B").statuses == {"ACCEPTED": 4, "QUEUED": -1}  # a dry run writes nothing
    shown = capsys.readouterr().out
    assert "would set {'ACCEPTED': 3}" in shown
    assert shown.startswith(f"dry run: table {stack.table_name}\n")  # which deployment (a review)
    assert run(stack, "B", "NO-SUCH-BATCH") == 0
    assert store.batch_tally("B").statuses == {"ACCEPTED": 3}  # the status no record has any more: 0
    assert "NO-SUCH-BATCH: no records: left alone" in capsys.readouterr().out
    assert run(stack, "B") == 0
    assert "B: unchanged" in capsys.readouterr().out


def test_the_table_is_the_stack_s_output_else_the_local_stack_s_name() -> None:
    class CloudFormation:
        def __init__(self, outputs: list[dict[str, str]] | None) -> None:
            self.outputs = outputs

        def describe_stacks(self, StackName: str) -> dict[str, Any]:
            if self.outputs is None:
                raise ClientError({"Error": {"Code": "ValidationError", "Message": "no"}}, "DescribeStacks")
            return {"Stacks": [{"Outputs": self.outputs}]}

    deployed = CloudFormation([{"OutputKey": "TableName", "OutputValue": "globesms-prod-MessagesTable-1X2Y"}])
    assert messages_table("globesms-prod", deployed) == "globesms-prod-MessagesTable-1X2Y"
    local = {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}  # `make run`'s
    assert messages_table("globesms-local", CloudFormation(None), local) == "globesms-local-MessagesTable"


@pytest.mark.parametrize(
    ("error", "code", "kind"),
    [
        (NoRegionError(), 2, "usage"),
        (ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Query"), 1, "refused"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:5001"), 3, "unavailable"),
    ],
)
def test_an_aws_error_is_one_line_and_an_exit_code_never_a_traceback(error, code, kind, capsys) -> None:  # type: ignore[no-untyped-def]
    def client(service: str) -> Any:
        raise error

    assert recount.main(["B", "--table", "T"], environ={}, client=client) == code
    assert capsys.readouterr().err.startswith(f"recount: {kind}: ")


def accepted_before_the_counts(stack: Any, batch_id: str, *, now: datetime = NOW) -> DynamoDBMessageStore:
    """A batch of ten accepted and delivered before the table had its stream: no counts item."""
    store = DynamoDBMessageStore(stack.table_name)
    spec = MessageSpec.model_validate({"to": [f"+8525123{i:04d}" for i in range(10)], "text": "hello"})
    accept([spec], batch_id=batch_id, source="api", now=now, retention_days=90, store=store, queues=MemoryQueues())
    records = store.get_messages([message_id(batch_id, i) for i in range(10)]).values()
    store.put_messages([r.model_copy(update={"status": Status.DELIVERED}) for r in records])
    return store


def test_all_recounts_every_batch_in_retention_once_after_the_upgrade_to_the_counts(stack, capsys) -> None:  # type: ignore[no-untyped-def]
    # A batch accepted before the counts existed has no counts item: its poll showed every record QUEUED (not
    # counted yet) for as long as it was kept.
    store = accepted_before_the_counts(stack, "OLD")
    view = get_batch(store, "OLD", limit=1, after=None)
    assert view is not None and view.counts == {"QUEUED": 10}
    gone = accepted_before_the_counts(stack, "GONE", now=datetime.now(UTC) - timedelta(days=91))  # TTL not yet run
    orphan = {"pk": {"S": "B#aliyun"}, "sk": {"S": "#"}, "failures": {"N": "0"}}  # an older version's breaker
    stack.dynamodb.put_item(TableName=stack.table_name, Item=orphan)

    assert run(stack, "--all") == 0

    assert "OLD: set {'DELIVERED': 10} (was {})" in capsys.readouterr().out
    view = get_batch(store, "OLD", limit=1, after=None)
    assert view is not None and view.counts == {"DELIVERED": 10}
    counts = stack.dynamodb.get_item(TableName=stack.table_name, Key=counts_key("OLD"))["Item"]
    header = store.get_batch("OLD")
    assert header is not None and counts["expires_at"] == {"N": str(header.expires_at)}  # expires with the batch
    assert counts["created_ACCEPTED"] == {"N": "10"}
    assert gone.batch_tally("GONE").statuses == {}  # past its retention: not recounted
    assert run(stack, "--all") == 0 and "OLD: unchanged" in capsys.readouterr().out


def test_a_recount_does_not_overwrite_a_change_counted_while_it_read(stack, capsys) -> None:  # type: ignore[no-untyped-def]
    # Off by one (a change counted twice): ACCEPTED 4 for 3 records. While the recount reads the records, one moves
    # ACCEPTED -> QUEUED and the consumer counts it: an unconditional SET wrote {ACCEPTED: 3, QUEUED: 1} over it.
    store = off_counts(stack)
    stack.dynamodb.delete_item(TableName=stack.table_name, Key=counts_key("B"))
    stack.dynamodb.put_item(TableName=stack.table_name, Item={**counts_key("B"), "n_ACCEPTED": {"N": "4"}})
    read = store.list_batch_messages
    moves = iter([Status.QUEUED])

    def list_while_one_moves(batch_id: str, **page: Any) -> Any:
        found = read(batch_id, **page)
        for status in moves:  # once
            (record,) = store.get_messages([message_id("B", 0)]).values()
            store.put_messages([record.model_copy(update={"status": status})])
            DynamoDBStatusCounts(stack.table_name).add([StatusChange("100", "B", "ACCEPTED", status)])
        return found

    store.list_batch_messages = list_while_one_moves  # type: ignore[method-assign]
    result = recount.recount(store, stack.dynamodb, stack.table_name, "B", dry_run=False)

    assert result.settled and store.batch_tally("B").statuses == {"ACCEPTED": 2, "QUEUED": 1}


def test_a_batch_whose_counts_keep_changing_is_left_and_named(stack, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = off_counts(stack)
    counts = DynamoDBStatusCounts(stack.table_name)
    read = DynamoDBMessageStore.list_batch_messages
    sequence = iter(range(1000, 2000))

    def list_while_counted(self: DynamoDBMessageStore, batch_id: str, **page: Any) -> Any:
        counts.add([StatusChange(str(next(sequence)), "B", None, "ACCEPTED")])  # a consumer counting on and on
        return read(self, batch_id, **page)

    monkeypatch.setattr(DynamoDBMessageStore, "list_batch_messages", list_while_counted)
    assert run(stack, "B") == recount.NOT_SETTLED
    error = capsys.readouterr().err
    assert f"B: its counts kept changing while it was read ({recount.MAX_ATTEMPTS} times): left as they were" in error
    assert store.batch_tally("B").statuses == {"ACCEPTED": 4 + recount.MAX_ATTEMPTS, "QUEUED": -1}  # as counted


@pytest.mark.parametrize("argv", [[], ["B", "--all"]])
def test_recount_takes_batch_ids_or_all(argv: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exit_:
        recount.main([*argv, "--table", "T"], environ={}, client=lambda service: None)
    assert exit_.value.code == 2 and "BATCH_ID ...) or give --all" in capsys.readouterr().err
