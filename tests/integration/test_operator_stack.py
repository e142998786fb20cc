"""tools/stack.py: which messages table the operator commands (recount, pumping) reach for a --stack, against moto's
CloudFormation (which knows no stack) and stubs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from tools import pumping, recount, stack
from tools.stack import messages_table


class CloudFormation:
    def __init__(self, outputs: dict[str, str] | None) -> None:
        self.outputs = outputs

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        if self.outputs is None:
            raise ClientError({"Error": {"Code": "ValidationError", "Message": "does not exist"}}, "DescribeStacks")
        return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]}]}


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.mark.parametrize(
    ("command", "run"),
    [
        ("recount", lambda: recount.main(["01ABC", "--stack", "globesms-prdo"], environ={})),
        ("pumping", lambda: pumping.main(["status", "HK", "--stack", "globesms-prdo"])),
        ("pumping", lambda: pumping.main(["release", "HK", "--stack", "globesms-prdo"])),
    ],
    ids=["recount", "pumping-status", "pumping-release"],
)
def test_a_stack_aws_does_not_know_is_a_usage_error(
    aws: None, capsys: pytest.CaptureFixture[str], command: str, run: Any
) -> None:
    """A mistyped --stack on AWS read a table named `<stack>-MessagesTable` and failed with AWS's "refused:
    ResourceNotFoundException ... GetItem", exit 1; redrive said the stack does not exist, exit 2 (a reviewer's
    finding). Now all three say it."""
    assert run() == 2
    assert capsys.readouterr().err.startswith(f"{command}: usage: stack globesms-prdo does not exist")


def test_the_table_is_the_stack_s_output_else_on_the_local_stack_the_name_it_gives() -> None:
    deployed = CloudFormation({"TableName": "globesms-prod-MessagesTable-1X2Y"})
    assert messages_table("globesms-prod", deployed, {}) == "globesms-prod-MessagesTable-1X2Y"
    local = {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}
    assert messages_table("globesms-local", CloudFormation(None), local) == "globesms-local-MessagesTable"
    with pytest.raises(stack.StackNotFound, match="stack globesms-prdo does not exist"):
        messages_table("globesms-prdo", CloudFormation(None), {})
    with pytest.raises(stack.UsageError, match="stack other has no output TableName"):
        messages_table("other", CloudFormation({"ApiUrl": "https://x"}), {})
