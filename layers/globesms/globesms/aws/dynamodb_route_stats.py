"""`RouteStatsStore` on the route statistics table (template RouteStatsTable): one item per country x bucket x
provider x type, `pk = <country>`, `sk = <bucket start, 10 digits>#<provider>#<type>` (a window of one country is
one Query of a key range), counters `d` delivered, `u` undelivered, `x` expired, `p` SMS parts and `l0`..`l11` the
latency histogram's slots, added with ADD (atomic across Lambdas), and `expires_at` (TTL, 14 days)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from globesms.aws import clients
from globesms.models.outbound import MessageType, ProviderName
from globesms.stats.tally import RETENTION_SECONDS, SLOTS, BucketKey, Tally

_COUNTERS = {"d": "delivered", "u": "undelivered", "x": "expired", "p": "parts"}


def sort_key(key: BucketKey) -> str:
    return f"{key.bucket:010d}#{key.provider.value}#{key.message_type.value}"


def _update_of(tally: Tally) -> tuple[str, dict[str, Any]]:
    values: dict[str, Any] = {}
    for name, field in _COUNTERS.items():
        count = getattr(tally, field)
        if count:
            values[f":{name}"] = {"N": str(count)}
    for slot, count in enumerate(tally.latency):
        if count:
            values[f":l{slot}"] = {"N": str(count)}
    adds = ", ".join(f"{name[1:]} {name}" for name in values)
    return f"ADD {adds} SET expires_at = :ttl", values


def _tally_of(item: Mapping[str, Any]) -> Tally:
    def number(name: str) -> int:
        return int(item[name]["N"]) if name in item else 0

    return Tally(
        delivered=number("d"),
        undelivered=number("u"),
        expired=number("x"),
        parts=number("p"),
        latency=[number(f"l{slot}") for slot in range(SLOTS)],
    )


class DynamoDBRouteStats:
    def __init__(self, table_name: str, client_factory: Callable[[], Any] = clients.dynamodb) -> None:
        self._table = table_name
        self._client = client_factory

    def add(self, tallies: Mapping[BucketKey, Tally]) -> None:
        for key, tally in tallies.items():
            expression, values = _update_of(tally)
            self._client().update_item(
                TableName=self._table,
                Key={"pk": {"S": key.country}, "sk": {"S": sort_key(key)}},
                UpdateExpression=expression,
                ExpressionAttributeValues={**values, ":ttl": {"N": str(key.bucket + RETENTION_SECONDS)}},
            )

    def buckets(self, country: str, since: int, until: int) -> list[tuple[BucketKey, Tally]]:
        found: list[tuple[BucketKey, Tally]] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :from AND :to",
            "ExpressionAttributeValues": {
                ":pk": {"S": country},
                ":from": {"S": f"{since:010d}#"},
                ":to": {"S": f"{until:010d}#~"},
            },
        }
        while True:
            page = self._client().query(**request)
            for item in page.get("Items", []):
                key = _key_of(country, item["sk"]["S"])
                if key is not None:
                    found.append((key, _tally_of(item)))
            if "LastEvaluatedKey" not in page:
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _key_of(country: str, sk: str) -> BucketKey | None:
    bucket, _, rest = sk.partition("#")
    provider, _, message_type = rest.partition("#")
    try:
        return BucketKey(country, ProviderName(provider), MessageType(message_type), int(bucket))
    except ValueError:  # an item this version does not know (a provider or type since removed): not counted
        return None
