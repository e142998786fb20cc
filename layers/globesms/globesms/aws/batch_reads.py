"""BatchGetItem, done one way for every adapter: at most `READ_BATCH` keys a request, and the keys DynamoDB leaves
unprocessed (a partition's read throughput spent, or an answer past 16 MB) asked for again after a short, growing,
jittered pause, `READ_ATTEMPTS` times at most. A loop that asked again at once would only keep a throttled partition
hot; after the last attempt the read fails (RuntimeError) rather than spin."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from typing import Any, Final

READ_BATCH: Final = 100  # BatchGetItem's limit
READ_ATTEMPTS: Final = 8


def batch_get(
    client: Any,
    table: str,
    keys: Sequence[dict[str, Any]],
    *,
    consistent: bool = True,
    projection: str | None = None,
    names: dict[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """The items of `keys` that exist (in no particular order), `projection`'s attributes only if given."""
    shape: dict[str, Any] = {"ConsistentRead": True} if consistent else {}
    if projection:
        shape["ProjectionExpression"] = projection
    if names:
        shape["ExpressionAttributeNames"] = names
    for start in range(0, len(keys), READ_BATCH):
        request: dict[str, Any] = {table: {"Keys": list(keys[start : start + READ_BATCH]), **shape}}
        for attempt in range(READ_ATTEMPTS):
            response = client.batch_get_item(RequestItems=request)
            yield from response.get("Responses", {}).get(table, [])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            time.sleep(min(0.05 * 2**attempt, 2.0) * random.uniform(0.5, 1.0))
        else:
            raise RuntimeError(f"DynamoDB left {len(request[table]['Keys'])} reads unprocessed after retries")
