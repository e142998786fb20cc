"""`OptOutStore` on the consent table (template.yaml `ConsentTable`).

The opt-out list of an owner is one partition, `pk = "OPTOUT#<owner>"`, one item per number, `sk = <E.164>`: a
page is one Query in number order, and accept asks for the numbers of a request with BatchGetItem (100 keys a call,
a few calls at once), never a scan. Entries have no TTL: a number stays listed until it is removed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from globesms.aws import clients
from globesms.aws.batch_reads import READ_BATCH, batch_get
from globesms.aws.message_items import from_item, to_item

READ_THREADS = 4


def opt_out_pk(owner: str) -> str:
    return f"OPTOUT#{owner}"


def reply_pk(owner: str) -> str:
    return f"REPLY#{owner}"


def _reply_key(owner: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": reply_pk(owner)}, "sk": {"S": sk}}


def _key(owner: str, number: str) -> dict[str, Any]:
    return {"pk": {"S": opt_out_pk(owner)}, "sk": {"S": number}}


def _entry(item: dict[str, Any]) -> dict[str, Any]:
    data = from_item(item)
    data.pop("pk", None)
    data.pop("sk", None)
    return data


class DynamoDBConsentStore:
    def __init__(self, table_name: str, client_factory: Callable[[], Any] = clients.dynamodb) -> None:
        self._table = table_name
        self._client = client_factory

    def listed(self, owner: str, numbers: Collection[str]) -> set[str]:
        ordered = sorted(numbers)
        chunks = [ordered[i : i + READ_BATCH] for i in range(0, len(ordered), READ_BATCH)]
        if len(chunks) <= 1:
            return set().union(*(self._listed_chunk(owner, c) for c in chunks))
        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            return set().union(*pool.map(lambda chunk: self._listed_chunk(owner, chunk), chunks))

    def _listed_chunk(self, owner: str, numbers: list[str]) -> set[str]:
        keys = [_key(owner, n) for n in numbers]
        return {item["sk"]["S"] for item in batch_get(self._client(), self._table, keys, projection="sk")}

    def get_opt_out(self, owner: str, number: str) -> dict[str, Any] | None:
        item = self._client().get_item(TableName=self._table, Key=_key(owner, number), ConsistentRead=True).get("Item")
        return None if item is None else _entry(item)

    def put_opt_out(self, owner: str, number: str, entry: dict[str, Any]) -> bool:
        try:
            self._client().put_item(
                TableName=self._table,
                Item={**to_item(entry), **_key(owner, number)},
                ConditionExpression="attribute_not_exists(sk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def delete_opt_out(self, owner: str, number: str) -> dict[str, Any] | None:
        response = self._client().delete_item(TableName=self._table, Key=_key(owner, number), ReturnValues="ALL_OLD")
        old = response.get("Attributes")
        return None if not old else _entry(old)

    def page_opt_outs(self, owner: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        return self._page(opt_out_pk(owner), after=after, limit=limit)

    def put_reply(self, owner: str, sk: str, item: dict[str, Any]) -> dict[str, Any] | None:
        try:
            self._client().put_item(
                TableName=self._table,
                Item={**to_item(item), **_reply_key(owner, sk)},
                ConditionExpression="attribute_not_exists(sk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                stored: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
                return _entry(stored) or {"handled": False}
            raise
        return None

    def mark_reply_handled(self, owner: str, sk: str) -> None:
        self._client().update_item(
            TableName=self._table,
            Key=_reply_key(owner, sk),
            UpdateExpression="SET handled = :t",
            ExpressionAttributeValues={":t": {"BOOL": True}},
        )

    def page_replies(self, owner: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        return self._page(reply_pk(owner), after=after, limit=limit)

    def _page(self, pk: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": pk}},
            "Limit": limit,
            "ConsistentRead": True,
        }
        if after is not None:
            kwargs["ExclusiveStartKey"] = {"pk": {"S": pk}, "sk": {"S": after}}
        response = self._client().query(**kwargs)
        entries = [_entry(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return entries, (last["sk"]["S"] if last else None)
