"""A DynamoDB write under a condition: whether it was written, or found its condition false. Every adapter's
conditional write asks that one question (a claim taken, a cursor moved, a counter within its room); any other
error is an error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError


def condition_failed(exc: ClientError) -> bool:
    return bool(exc.response["Error"]["Code"] == "ConditionalCheckFailedException")


def written(write: Callable[..., Any], **params: Any) -> bool:
    """`write(**params)` (a client's put_item, update_item, delete_item): True once written, False when its
    condition was false (nothing written)."""
    try:
        write(**params)
    except ClientError as exc:
        if not condition_failed(exc):
            raise
        return False
    return True
