"""tools/recount: a batch's counts set again from its records, after the status-counts consumer set changes aside."""

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoRegionError

from globesms.accept.service import accept
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.aws.message_items import COUNTS_SK, batch_pk
from globesms.models.api import MessageSpec
from tests.fakes import MemoryQueues
from tools import recount
from tools.stack import messages_table

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


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
    assert store.count_batch_statuses("B") == {"ACCEPTED": 4, "QUEUED": -1}  # a dry run writes nothing
    assert "would set {'ACCEPTED': 3}" in capsys.readouterr().out
    assert run(stack, "B", "NO-SUCH-BATCH") == 0
    assert store.count_batch_statuses("B") == {"ACCEPTED": 3}  # the status no record has any more: 0
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
