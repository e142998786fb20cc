"""`MessageFinder` on the messages table's two sparse, keys-only indexes:

- `ClientRef`: `client_ref` (only messages sent with one), sorted by `created_at`;
- `Recipient`: `to` (E.164; only message items have it: batch headers, claims, counters and held receipts do not),
  sorted by `created_at`.

A page is one Query of the index (newest first) and one BatchGetItem of the records and their batch headers.

The cursor is opaque: a random token naming an item (`C#<token>`) that keeps the Query's LastEvaluatedKey and the
lookup it belongs to for a day. The LastEvaluatedKey itself is the last index entry read, which may be another API
key's message (the owner filter runs on the records, `accept.queries.find_messages`): handed out, it told its
batch id, its time and that it was sent to this number. One PutItem for a page that has a next one, one GetItem to
follow it. A cursor that is malformed, unknown, expired or names another lookup is refused.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from globesms.aws import clients
from globesms.aws.batch_reads import batch_get
from globesms.aws.message_items import HEADER_SK, batch_from_item, message_from_item
from globesms.models.records import BatchRecord, MessageRecord
from globesms.ports import InvalidCursor, MessageLookup

INDEXES = {"client_ref": "ClientRef", "to": "Recipient"}
SORT_KEY = "created_at"


#: A page's cursor item: `C#<token>`, a partition of its own (never a batch's `B#`, so the status counts pass it).
CURSOR_PK_PREFIX = "C#"
#: How long a cursor can be followed: a client pages through a lookup in minutes.
CURSOR_TTL_SECONDS = 24 * 3600
CURSOR_TOKEN_BYTES = 16  # 128 random bits: not to be guessed
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")


class DynamoDBMessageFinder:
    def __init__(
        self,
        table_name: str,
        client_factory: Callable[[], Any] = clients.dynamodb,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table_name
        self._client = client_factory
        self._clock = clock

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
            kwargs["ExclusiveStartKey"] = self._position(cursor, lookup)
        response = self._client().query(**kwargs)
        keys = [{"pk": item["pk"], "sk": item["sk"]} for item in response.get("Items", [])]
        records, batches = self._read(keys)
        ordered = [records[(k["pk"]["S"], k["sk"]["S"])] for k in keys if (k["pk"]["S"], k["sk"]["S"]) in records]
        last = response.get("LastEvaluatedKey")
        return ordered, batches, self._cursor(lookup, last) if last and len(keys) == limit else None

    def _cursor(self, lookup: MessageLookup, last_evaluated_key: dict[str, Any]) -> str:
        """A new token for the position after `last_evaluated_key` (kept, never handed out)."""
        token = secrets.token_urlsafe(CURSOR_TOKEN_BYTES)
        position = {name: value["S"] for name, value in sorted(last_evaluated_key.items())}
        self._client().put_item(
            TableName=self._table,
            # No `to` or `client_ref` attribute: the item stays out of the sparse indexes it pages.
            Item={
                **cursor_key(token),
                "lookup_field": {"S": lookup.field},
                "lookup_value": {"S": lookup.value},
                "position": {"S": json.dumps(position, separators=(",", ":"))},
                "expires_at": {"N": str(int(self._clock()) + CURSOR_TTL_SECONDS)},
            },
        )
        return token

    def _position(self, cursor: str, lookup: MessageLookup) -> dict[str, Any]:
        """The ExclusiveStartKey a token names. Raises InvalidCursor."""
        if not _TOKEN.fullmatch(cursor):
            raise InvalidCursor()
        item = self._client().get_item(TableName=self._table, Key=cursor_key(cursor), ConsistentRead=True).get("Item")
        if item is None or int(item["expires_at"]["N"]) <= self._clock():  # TTL deletes within days, not at once
            raise InvalidCursor("the cursor has expired or was never given: start again without `after`")
        if (item["lookup_field"]["S"], item["lookup_value"]["S"]) != (lookup.field, lookup.value):
            raise InvalidCursor("the cursor belongs to another query")
        return {name: {"S": value} for name, value in json.loads(item["position"]["S"]).items()}

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


def cursor_key(token: str) -> dict[str, Any]:
    return {"pk": {"S": f"{CURSOR_PK_PREFIX}{token}"}, "sk": {"S": "#"}}
