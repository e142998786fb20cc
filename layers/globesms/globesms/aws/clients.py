"""Lazily created, cached boto3 clients (thread-safe to share)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient


@cache
def _client(service: str) -> Any:
    import boto3  # deferred: most of a cold start is importing boto3, and the receipts path may not need it
    from botocore.config import Config

    # boto3 honours AWS_ENDPOINT_URL itself, which is how the local stack points every function at moto.
    config = Config(retries={"mode": "adaptive", "max_attempts": 5}, max_pool_connections=16)
    return boto3.client(service, config=config)  # type: ignore[call-overload]


def dynamodb() -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb")
    return client


def sqs() -> SQSClient:
    client: SQSClient = _client("sqs")
    return client


def reset() -> None:
    """Forget cached clients (tests switch endpoints and credentials between cases)."""
    _client.cache_clear()
