"""Lazily created, cached boto3 clients (thread-safe to share)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient


@cache
def _client(service: str, *, retried: bool = True) -> Any:
    import boto3  # deferred: most of a cold start is importing boto3, and the receipts path may not need it
    from botocore.config import Config

    # boto3 honours AWS_ENDPOINT_URL itself, which is how the local stack points every function at moto.
    # No client-side parameter validation ("You can disable parameter validation for performance reasons", botocore's
    # Config reference): it walks every attribute of every item against the model, ~half of botocore's CPU per item
    # of a BatchWriteItem (3.7 -> 1.7 ms a 25-item request, docs/performance.md, "Memory size and CPU"), and the
    # service validates each request anyway. Our adapters' requests are validated in the tests instead
    # (tests/conftest.py validates every request any client makes there).
    retries: Any = {"mode": "adaptive", "max_attempts": 5} if retried else {"mode": "standard", "total_max_attempts": 1}
    config = Config(retries=retries, max_pool_connections=16, parameter_validation=False)
    return boto3.client(service, config=config)  # type: ignore[call-overload]


def dynamodb() -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb")
    return client


def dynamodb_once() -> DynamoDBClient:
    """A DynamoDB client that never sends a request again: for a write that must not land twice and is not made
    conditional (a retry after an answer lost on the way back would apply it a second time)."""
    client: DynamoDBClient = _client("dynamodb", retried=False)
    return client


def sqs() -> SQSClient:
    client: SQSClient = _client("sqs")
    return client


def reset() -> None:
    """Forget cached clients (tests switch endpoints and credentials between cases)."""
    _client.cache_clear()
