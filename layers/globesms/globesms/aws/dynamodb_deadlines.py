"""`ReceiptDeadlines` on the messages table: the deadline entries (aws/deadline_items.py), the records they list,
and one watermark item (`pk = RECONCILE#watermark`). reconcile/deadline.py says why entries and not an index."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from globesms.aws import clients
from globesms.aws.conditions import written
from globesms.aws.deadline_items import deadline_item, entry_from_item, entry_pk
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.aws.message_items import batch_pk, message_id_of_keys, message_sk
from globesms.domain.status import Status
from globesms.models.records import MessageRecord, split_message_id
from globesms.reconcile.deadline import DeadlineEntry, is_due

WATERMARK_KEY: Final = {"pk": {"S": "RECONCILE#watermark"}, "sk": {"S": "#"}}
DUE_FIELDS: Final = "pk, sk, #status, receipt_due_at"
ENTRY_PAGE: Final = 25  # entries per Query page (up to ~6 KB each for a pack of 1,000)


def _due_item(item: dict[str, Any], until: int) -> bool:
    """`is_due` on an item of `DUE_FIELDS`."""
    due_at = item.get("receipt_due_at", {}).get("N")
    return item.get("status", {}).get("S") == Status.SUBMITTED.value and due_at is not None and int(due_at) <= until


def _key(message: str) -> dict[str, Any]:
    parts = split_message_id(message)
    if parts is None:
        raise ValueError(f"not a message id: {message!r}")
    return {"pk": {"S": batch_pk(parts[0])}, "sk": {"S": message_sk(parts[1])}}


class DynamoDBReceiptDeadlines:
    def __init__(self, table_name: str, client_factory: Callable[[], Any] = clients.dynamodb) -> None:
        self._table = table_name
        self._client = client_factory
        self._records = DynamoDBMessageStore(table_name, client_factory)

    def due(self, bucket: str, *, after: int, until: int) -> Iterator[DeadlineEntry]:
        if after >= until:
            return  # BETWEEN refuses a range whose start sorts after its end
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :from AND :to",
            # `sk` starts with the zero-padded deadline: "after" is exclusive ("#" sorts after every digit).
            "ExpressionAttributeValues": {
                ":pk": {"S": entry_pk(bucket)},
                ":from": {"S": f"{after:010d}#~"},
                ":to": {"S": f"{until:010d}#~"},
            },
            "Limit": ENTRY_PAGE,
        }
        while True:
            response = self._client().query(**request)
            for item in response.get("Items", []):
                yield entry_from_item(item)
            if not response.get("LastEvaluatedKey"):
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def waiting(self, message_ids: Sequence[str], *, until: int) -> list[MessageRecord]:
        # Most messages an entry lists are final by its deadline: their status and deadline are read first (the
        # same read units as whole records, a fraction of the bytes), and only those still due are read whole.
        statuses = self._records.message_items(message_ids, projection=DUE_FIELDS, names={"#status": "status"})
        due = {message_id_of_keys(item) for item in statuses if _due_item(item, until)}
        if not due:
            return []
        found = self._records.get_messages([m for m in message_ids if m in due])
        return [found[m] for m in message_ids if m in found and is_due(found[m], until)]

    def reschedule(self, record: MessageRecord, *, due_at: int, tries: int, failures: int = 0) -> bool:
        # The entry first: if the record's update then fails (a receipt got there first), the entry lists a message
        # that is no longer due, which the reconciler skips. The update moves the version on, as every versioned
        # write does: a reconcile run overlapping this one, that read the record before it, cannot move the deadline
        # again from what it read (a second "still delivering" extension, the tries counted from the old value).
        self._client().put_item(TableName=self._table, Item=deadline_item(DeadlineEntry(due_at, (record.id,))))
        return written(
            self._client().update_item,
            TableName=self._table,
            Key=_key(record.id),
            UpdateExpression=(
                "SET receipt_due_at = :at, reconcile_tries = :tries, query_failures = :failures, version = :next"
            ),
            ConditionExpression="#status = :submitted AND version = :version"
            if record.version
            else "#status = :submitted AND (attribute_not_exists(version) OR version = :version)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":at": {"N": str(due_at)},
                ":tries": {"N": str(tries)},
                ":failures": {"N": str(failures)},
                ":submitted": {"S": Status.SUBMITTED.value},
                ":version": {"N": str(record.version)},
                ":next": {"N": str(record.version + 1)},
            },
        )

    def watermark(self) -> int | None:
        item = self._client().get_item(TableName=self._table, Key=WATERMARK_KEY, ConsistentRead=True).get("Item")
        # An item of the earlier design holds a minute ("2026-12-02T10:00") under another name: read as none.
        return int(item["done_until"]["N"]) if item and "done_until" in item else None

    def set_watermark(self, done_until: int) -> None:
        self._client().put_item(TableName=self._table, Item={**WATERMARK_KEY, "done_until": {"N": str(done_until)}})
