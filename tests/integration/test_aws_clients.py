"""The deployed boto3 clients skip botocore's parameter validation; the tests put it back for every request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.exceptions import ParamValidationError
from botocore.validate import ParamValidationDecorator
from moto import mock_aws

from globesms.aws import clients


@pytest.fixture
def fresh_clients() -> Iterator[None]:
    clients.reset()
    with mock_aws():
        yield
    clients.reset()


def test_deployed_clients_leave_parameter_validation_to_the_service(fresh_clients: None) -> None:
    # botocore validates by wrapping the client's serializer (its `meta.config` does not tell): none is wrapped.
    for client in (clients.dynamodb(), clients.sqs()):
        assert not isinstance(client._serializer, ParamValidationDecorator)


def test_a_malformed_request_still_fails_a_test(fresh_clients: None) -> None:
    """tests/conftest.py validates each request before botocore builds it: a number given as an int (DynamoDB
    wants its digits as a string) is caught here, as botocore's own validation would catch it."""
    with pytest.raises(ParamValidationError, match=r"Item\.n\.N"):
        clients.dynamodb().put_item(TableName="any", Item={"pk": {"S": "a"}, "n": {"N": 5}})  # type: ignore[dict-item]
    with pytest.raises(ParamValidationError, match="QueueUrl"):
        clients.sqs().send_message(MessageBody="{}")  # type: ignore[call-arg]
