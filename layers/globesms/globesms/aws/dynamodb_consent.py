"""`OptOutStore` on the consent table (template.yaml `ConsentTable`).

The opt-out list of an owner is one partition, `pk = "OPTOUT#<owner>"`, one item per number, `sk = <E.164>`: a
page is one Query in number order, and accept asks for the numbers of a request with BatchGetItem (100 keys a call,
a few calls at once), never a scan. Entries have no TTL: a number stays listed until it is removed.

A reply keyword also keeps, per number, when the person sent the last one applied (`pk = "KEYWORD#<owner>"`,
`sk = <E.164>`, `sent_at`, expiring with the replies), written in one transaction with the change to the list and
only if no later keyword's is there: a provider re-pushing an older reply (Alibaba after 1, 5 and 10 minutes) does
not undo a newer STOP or START, even with two receipts functions at work.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from globesms.aws import clients
from globesms.aws.batch_reads import READ_BATCH, batch_get
from globesms.aws.conditions import condition_failed, written
from globesms.aws.message_items import from_item, to_item
from globesms.ports import KeywordWrite

READ_THREADS = 4
KEYWORD_ATTEMPTS = 5  # the entry changed between its read and the transaction: read it again (another keyword)


class KeywordConflict(RuntimeError):
    """The number's entry kept changing under a keyword: the push fails and the provider pushes it again."""


def opt_out_pk(owner: str) -> str:
    return f"OPTOUT#{owner}"


def reply_pk(owner: str) -> str:
    return f"REPLY#{owner}"


def _reply_key(owner: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": reply_pk(owner)}, "sk": {"S": sk}}


def keyword_pk(owner: str) -> str:
    return f"KEYWORD#{owner}"


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
        return written(
            self._client().put_item,
            TableName=self._table,
            Item={**to_item(entry), **_key(owner, number)},
            ConditionExpression="attribute_not_exists(sk)",
        )

    def delete_opt_out(self, owner: str, number: str) -> dict[str, Any] | None:
        response = self._client().delete_item(TableName=self._table, Key=_key(owner, number), ReturnValues="ALL_OLD")
        old = response.get("Attributes")
        return None if not old else _entry(old)

    def page_opt_outs(self, owner: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        return self._page(opt_out_pk(owner), after=after, limit=limit)

    def apply_keyword(
        self, owner: str, number: str, sent_at: str, entry: dict[str, Any] | None, *, expires_at: int
    ) -> KeywordWrite:
        mark = {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": keyword_pk(owner)}, "sk": {"S": number}},
                "UpdateExpression": "SET sent_at = :t, expires_at = :e",
                # A tie (one second, Tencent's resolution) goes to the later arrival, as before.
                "ConditionExpression": "attribute_not_exists(sent_at) OR sent_at <= :t",
                "ExpressionAttributeValues": {":t": {"S": sent_at}, ":e": {"N": str(expires_at)}},
            }
        }
        for _ in range(KEYWORD_ATTEMPTS):
            listed = self.get_opt_out(owner, number)
            change, outcome = self._listing_change(owner, number, listed, entry)
            try:
                self._client().transact_write_items(TransactItems=[mark, change])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return KeywordWrite(stale=True)
                continue  # the entry is not as read (or a transaction on it was under way): read it again
            return outcome
        raise KeywordConflict(f"the opt-out entry kept changing ({KEYWORD_ATTEMPTS} attempts)")

    def _listing_change(
        self, owner: str, number: str, listed: dict[str, Any] | None, entry: dict[str, Any] | None
    ) -> tuple[dict[str, Any], KeywordWrite]:
        """The transaction's write to the list for the entry as read (its condition: still as read)."""
        where = {"TableName": self._table, "Key": _key(owner, number)}
        if entry is not None and listed is None:
            put = {"TableName": self._table, "Item": {**to_item(entry), **_key(owner, number)}}
            return {"Put": put | {"ConditionExpression": "attribute_not_exists(sk)"}}, KeywordWrite(added=True)
        if entry is None and listed is not None:
            return {"Delete": where | {"ConditionExpression": "attribute_exists(sk)"}}, KeywordWrite(removed=listed)
        # Listed already (a STOP) or not listed (a START): nothing to change but the time, while it stays so.
        unchanged = "attribute_exists(sk)" if listed is not None else "attribute_not_exists(sk)"
        return {"ConditionCheck": where | {"ConditionExpression": unchanged}}, KeywordWrite()

    def get_reply(self, owner: str, sk: str) -> dict[str, Any] | None:
        item = (
            self._client().get_item(TableName=self._table, Key=_reply_key(owner, sk), ConsistentRead=True).get("Item")
        )
        return None if item is None else _entry(item)

    def put_reply(self, owner: str, sk: str, item: dict[str, Any]) -> dict[str, Any] | None:
        try:
            self._client().put_item(
                TableName=self._table,
                Item={**to_item(item), **_reply_key(owner, sk)},
                ConditionExpression="attribute_not_exists(sk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if condition_failed(exc):
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
