"""`RateLimiter` on the messages table: a fixed-window counter per provider operation per wall-clock second.

One item per operation and epoch second that saw a call, `pk = L#<operation>#<second>`, `sk = #`, holding `used`
(permits taken) and `expires_at` (TTL: a few minutes; a past second is never read again). Taking `n` permits is
one conditional write, `ADD used :n` if `used <= limit - n` (or the item does not exist yet), so concurrent
dispatchers can never take more than the limit between them: DynamoDB applies conditional updates to one item one
after the other.

A pack may need permits of two operations (Alibaba: batch and single calls). DynamoDB cannot take them atomically
across items without a transaction (twice the write cost, on the hottest items of the table), so they are taken
one operation at a time in a fixed (sorted) order, and when one is short the ones already taken are given back
with a decrement. In between, other dispatchers may see fewer permits than there are, never more: the failure
mode is sending a little less, not more, than the limit (and a dispatcher that dies before giving back only
wastes those permits until its second ends). The decrement is sent once, never retried (`clients.dynamodb_once`):
a retry after its answer was lost would apply it twice and leave the second with more permits than its limit; a
give-back that fails is let go (logged), which only wastes those permits.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from globesms.aws import clients
from globesms.aws.batch_reads import batch_get
from globesms.aws.conditions import written
from globesms.observability import logger

COUNTER_SK = "#"
#: A counter is read and written during its own second only; TTL removes it some time later.
COUNTER_TTL_SECONDS = 300


def counter_key(operation: str, second: int) -> dict[str, Any]:
    return {"pk": {"S": f"L#{operation}#{second}"}, "sk": {"S": COUNTER_SK}}


class DynamoDBRateLimiter:
    def __init__(
        self,
        table_name: str,
        limits: Mapping[str, int],
        client_factory: Callable[[], Any] = clients.dynamodb,
        once_client_factory: Callable[[], Any] = clients.dynamodb_once,
    ) -> None:
        self._table = table_name
        self._limits = dict(limits)
        self._client = client_factory
        self._once_client = once_client_factory

    def limit(self, operation: str) -> int:
        try:
            return self._limits[operation]
        except KeyError:
            raise KeyError(f"no rate limit configured for provider operation {operation!r}") from None

    def free(self, operations: Collection[str], *, second: int) -> dict[str, int]:
        wanted = sorted(set(operations))
        if not wanted:
            return {}
        used: dict[str, int] = {}
        for item in batch_get(self._client(), self._table, [counter_key(op, second) for op in wanted]):
            operation = item["pk"]["S"][2:].rsplit("#", 1)[0]
            used[operation] = int(item.get("used", {"N": "0"})["N"])
        return {op: max(0, self.limit(op) - used.get(op, 0)) for op in wanted}

    def acquire(self, permits: Mapping[str, int], *, second: int) -> bool:
        taken: list[tuple[str, int]] = []
        for operation in sorted(permits):
            count = permits[operation]
            if count <= 0:
                continue
            if not self._take(operation, count, second):
                for done, n in reversed(taken):
                    self._give_back(done, n, second)
                return False
            taken.append((operation, count))
        return True

    def _take(self, operation: str, count: int, second: int) -> bool:
        room = self.limit(operation) - count
        if room < 0:
            return False
        return written(
            self._client().update_item,
            TableName=self._table,
            Key=counter_key(operation, second),
            UpdateExpression="ADD used :n SET expires_at = if_not_exists(expires_at, :ttl)",
            ConditionExpression="attribute_not_exists(used) OR used <= :room",
            ExpressionAttributeValues={
                ":n": {"N": str(count)},
                ":room": {"N": str(room)},
                ":ttl": {"N": str(second + COUNTER_TTL_SECONDS)},
            },
        )

    def _give_back(self, operation: str, count: int, second: int) -> None:
        try:
            self._once_client().update_item(
                TableName=self._table,
                Key=counter_key(operation, second),
                UpdateExpression="ADD used :minus",
                ExpressionAttributeValues={":minus": {"N": str(-count)}},
            )
        except (BotoCoreError, ClientError) as exc:
            logger.warning("rate-limit permits not given back", extra={"operation": operation, "error": repr(exc)})
