"""`CircuitBreakers` on the messages table: one item per provider, `pk = CB#<provider>`, `sk = #`, holding `failures`
(failed packs in a row) and `open_until` (epoch seconds).

A key space of its own: the breakers were once `B#<provider>`, `#`, the key of the header of a batch whose id is a
provider's name (a batch id may be `aliyun`), so polling, cancelling or accepting such a batch read a breaker as its
header. Items left at the old key are orphans nothing reads (a deployment's breakers started closed once).

Reads are eventually consistent (half a read unit per pack): a dispatcher that sees a breaker a moment late sends
one more pack to a provider that is down (which then fails and is retried) or moves one more pack away from one
that has just come back; neither sends anything twice. Counting is an atomic `ADD`, so concurrent dispatchers
never lose a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from globesms.aws import clients
from globesms.models.outbound import ProviderName
from globesms.ports import BreakerState

BREAKER_PK_PREFIX = "CB#"
BREAKER_SK = "#"


def breaker_key(provider: ProviderName) -> dict[str, Any]:
    return {"pk": {"S": f"{BREAKER_PK_PREFIX}{provider}"}, "sk": {"S": BREAKER_SK}}


class DynamoDBCircuitBreakers:
    def __init__(self, table_name: str, client_factory: Callable[[], Any] = clients.dynamodb) -> None:
        self._table = table_name
        self._client = client_factory

    def state(self, provider: ProviderName) -> BreakerState:
        item = self._client().get_item(TableName=self._table, Key=breaker_key(provider)).get("Item")
        return _state(item)

    def record_failure(
        self, provider: ProviderName, *, now: datetime, failures_to_open: int, cooldown_seconds: int
    ) -> BreakerState:
        counted = self._client().update_item(
            TableName=self._table,
            Key=breaker_key(provider),
            UpdateExpression="ADD failures :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )
        state = _state(counted.get("Attributes"))
        if state.failures < failures_to_open:
            return state
        open_until = int(now.timestamp()) + cooldown_seconds
        self._client().update_item(
            TableName=self._table,
            Key=breaker_key(provider),
            UpdateExpression="SET open_until = :until",
            ExpressionAttributeValues={":until": {"N": str(open_until)}},
        )
        return BreakerState(state.failures, open_until)

    def record_success(self, provider: ProviderName) -> None:
        self._client().update_item(
            TableName=self._table,
            Key=breaker_key(provider),
            UpdateExpression="SET failures = :zero REMOVE open_until",
            ExpressionAttributeValues={":zero": {"N": "0"}},
        )


def _state(item: dict[str, Any] | None) -> BreakerState:
    if not item:
        return BreakerState()
    return BreakerState(
        failures=int(item.get("failures", {"N": "0"})["N"]), open_until=int(item.get("open_until", {"N": "0"})["N"])
    )
