"""`ReceiptDeadlines` on the messages table: the sparse, keys-only `ReceiptDue` index (hash `receipt_due`, a minute
bucket and shard; range `receipt_due_at`, epoch seconds) and one watermark item (`pk = RECONCILE#watermark`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from globesms.aws import clients
from globesms.aws.dynamodb_store import batch_pk, message_sk
from globesms.domain.status import Status
from globesms.models.records import MessageRecord, message_id, split_message_id

INDEX = "ReceiptDue"
WATERMARK_KEY = {"pk": {"S": "RECONCILE#watermark"}, "sk": {"S": "#"}}


def _key(message: str) -> dict[str, Any]:
    parts = split_message_id(message)
    if parts is None:
        raise ValueError(f"not a message id: {message!r}")
    return {"pk": {"S": batch_pk(parts[0])}, "sk": {"S": message_sk(parts[1])}}


class DynamoDBReceiptDeadlines:
    def __init__(self, table_name: str, client_factory: Callable[[], Any] = clients.dynamodb) -> None:
        self._table = table_name
        self._client = client_factory

    def due(self, bucket: str, *, until: int, limit: int) -> list[str]:
        response = self._client().query(
            TableName=self._table,
            IndexName=INDEX,
            KeyConditionExpression="receipt_due = :b AND receipt_due_at <= :until",
            ExpressionAttributeValues={":b": {"S": bucket}, ":until": {"N": str(until)}},
            Limit=limit,
        )
        ids = []
        for item in response.get("Items", []):
            batch_id = item["pk"]["S"].removeprefix("B#")
            ids.append(message_id(batch_id, int(item["sk"]["S"].removeprefix("M#"))))
        return ids

    def reschedule(self, record: MessageRecord, *, due_at: int, bucket: str, tries: int) -> bool:
        try:
            self._client().update_item(
                TableName=self._table,
                Key=_key(record.id),
                UpdateExpression="SET receipt_due = :b, receipt_due_at = :at, reconcile_tries = :tries",
                ConditionExpression="#status = :submitted AND version = :version"
                if record.version
                else "#status = :submitted AND (attribute_not_exists(version) OR version = :version)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":b": {"S": bucket},
                    ":at": {"N": str(due_at)},
                    ":tries": {"N": str(tries)},
                    ":submitted": {"S": Status.SUBMITTED.value},
                    ":version": {"N": str(record.version)},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def clear(self, message: str) -> None:
        try:
            self._client().update_item(
                TableName=self._table,
                Key=_key(message),
                UpdateExpression="REMOVE receipt_due, receipt_due_at",
                ConditionExpression="attribute_exists(pk)",  # never create an item for an id that has none
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def watermark(self) -> str | None:
        item = self._client().get_item(TableName=self._table, Key=WATERMARK_KEY, ConsistentRead=True).get("Item")
        return item["minute"]["S"] if item else None

    def set_watermark(self, minute: str) -> None:
        self._client().put_item(TableName=self._table, Item={**WATERMARK_KEY, "minute": {"S": minute}})
