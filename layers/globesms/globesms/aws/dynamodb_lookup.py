"""`MessageFinder` on the messages table's two sparse, keys-only indexes:

- `ClientRef`: `client_ref` (only messages sent with one), sorted by `created_at`;
- `Recipient`: `to` (E.164; only message items have it: batch headers, claims, counters and held receipts do not),
  sorted by `created_at`.

A page is one Query of the index (newest first) and one BatchGetItem of the records and their batch headers. The
cursor is the Query's LastEvaluatedKey, base64url JSON; one that is malformed or names another lookup is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from globesms.aws import clients
from globesms.aws.batch_reads import batch_get
from globesms.aws.message_items import HEADER_SK, batch_from_item, batch_pk, message_from_item
from globesms.models.records import BatchRecord, MessageRecord
from globesms.ports import InvalidCursor, MessageLookup

INDEXES = {"client_ref": "ClientRef", "to": "Recipient"}
SORT_KEY = "created_at"


class DynamoDBMessageFinder:
    def __init__(self, table_name: str, client_factory: Callable[[], Any] = clients.dynamodb) -> None:
        self._table = table_name
        self._client = client_factory

    def find_messages(
        self, lookup: MessageLookup, *, limit: int, cursor: str | None
    ) -> tuple[list[MessageRecord], dict[str, BatchRecord], str | None]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": INDEXES[lookup.field],
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": lookup.field},  # `to` is a DynamoDB reserved word
            "ExpressionAttributeValues": {":v": {"S": lookup.value}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor is not None:
            kwargs["ExclusiveStartKey"] = decode_cursor(cursor, lookup)
        response = self._client().query(**kwargs)
        keys = [{"pk": item["pk"], "sk": item["sk"]} for item in response.get("Items", [])]
        records, batches = self._read(keys)
        ordered = [records[(k["pk"]["S"], k["sk"]["S"])] for k in keys if (k["pk"]["S"], k["sk"]["S"]) in records]
        last = response.get("LastEvaluatedKey")
        return ordered, batches, encode_cursor(last) if last and len(keys) == limit else None

    def _read(self, keys: list[dict[str, Any]]) -> tuple[dict[tuple[str, str], MessageRecord], dict[str, BatchRecord]]:
        """The records (a record removed by TTL since the Query is left out) and the headers of their batches."""
        headers = [{"pk": pk, "sk": {"S": HEADER_SK}} for pk in {k["pk"]["S"]: k["pk"] for k in keys}.values()]
        wanted = keys + headers
        records: dict[tuple[str, str], MessageRecord] = {}
        batches: dict[str, BatchRecord] = {}
        for item in batch_get(self._client(), self._table, wanted, consistent=False):
            if item["sk"]["S"] == HEADER_SK:
                batch = batch_from_item(item)
                batches[batch.batch_id] = batch
            else:
                records[(item["pk"]["S"], item["sk"]["S"])] = message_from_item(item)
        return records, batches


def encode_cursor(last_evaluated_key: dict[str, Any]) -> str:
    plain = {name: value["S"] for name, value in sorted(last_evaluated_key.items())}
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, lookup: MessageLookup) -> dict[str, Any]:
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidCursor() from None
    expected = {lookup.field, SORT_KEY, "pk", "sk"}
    # Non-empty strings: DynamoDB refuses an empty key value in ExclusiveStartKey (a ValidationException, a 5xx).
    if not (
        isinstance(plain, dict) and set(plain) == expected and all(isinstance(v, str) and v for v in plain.values())
    ):
        raise InvalidCursor()
    if plain[lookup.field] != lookup.value or not plain["pk"].startswith(batch_pk("")):
        raise InvalidCursor("the cursor belongs to another query")
    return {name: {"S": value} for name, value in plain.items()}
