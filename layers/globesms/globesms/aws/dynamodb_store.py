"""`MessageStore` on one DynamoDB table (its keys and items: aws/message_items.py)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from globesms.aws import clients
from globesms.aws.batch_reads import batch_get
from globesms.aws.conditions import condition_failed, written
from globesms.aws.deadline_items import deadline_item
from globesms.aws.dynamodb_counts import tally_of_item
from globesms.aws.dynamodb_status_moves import mark_each, move_each, split_moves
from globesms.aws.message_items import (
    COUNTS_SK,
    HEADER_SK,
    OPEN_SHARDS,
    batch_from_item,
    batch_id_of_header_keys,
    batch_pk,
    header_item,
    is_batch_header,
    message_from_item,
    message_item,
    message_sk,
    open_accept_key,
)
from globesms.counts.tally import BatchTally
from globesms.domain.status import Status
from globesms.models.records import UNSETTLED_STATES, BatchRecord, MessageRecord, split_message_id
from globesms.models.records import message_id as id_of_message
from globesms.ports import InvalidCursor
from globesms.reconcile.deadline import DeadlineEntry

WRITE_BATCH = 25  # BatchWriteItem's limit
WRITE_THREADS = 4
CANCEL_STEP = "canceled"  # the history step of a cancel (scheduling/cancel.py)
OPEN_ACCEPTS_INDEX = "OpenAccepts"  # headers not settled yet, by shard and settle_after (template.yaml)
# A header that is new (nothing at its key, or an item that is no header: a circuit breaker an older version kept at
# `B#<provider>`, `#`, left in the table, `message_items.is_batch_header`).
_NEW = "attribute_not_exists(pk) OR attribute_not_exists(batch_id)"
# Or one that replaces a header refused_whole (REJECTED without a body hash: see BatchRecord).
_NEW_OR_REFUSED_WHOLE = f"{_NEW} OR (#state = :rejected AND attribute_not_exists(#hash))"


class DynamoDBMessageStore:
    def __init__(self, table_name: str, client_factory: Callable[[], Any] = clients.dynamodb) -> None:
        self._table = table_name
        self._client = client_factory

    # ---- batches ----

    def begin_batch(self, batch: BatchRecord) -> BatchRecord | None:
        condition: dict[str, Any] = {"ConditionExpression": _NEW}
        if batch.body_hash is not None:  # may replace a header refused_whole
            condition = {
                "ConditionExpression": _NEW_OR_REFUSED_WHOLE,
                "ExpressionAttributeNames": {"#state": "state", "#hash": "body_hash"},
                "ExpressionAttributeValues": {":rejected": {"S": "REJECTED"}},
            }
        try:
            self._client().put_item(
                TableName=self._table,
                Item=header_item(batch),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **condition,
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            return batch_from_item(old) if old else self.get_batch(batch.batch_id)
        return None

    def finish_batch(self, batch: BatchRecord) -> None:
        self._client().put_item(TableName=self._table, Item=header_item(batch))

    def take_over_batch(self, batch: BatchRecord, previous: BatchRecord) -> bool:
        if previous.state not in UNSETTLED_STATES:
            raise ValueError(f"a {previous.state} header is finished: nothing takes it over")
        values: dict[str, Any] = {":state": {"S": previous.state}}
        if previous.resumes is None:
            unchanged = "attribute_not_exists(#resumes)"
        else:
            unchanged, values[":resumes"] = "#resumes = :resumes", {"N": str(previous.resumes)}
        return written(
            self._client().put_item,
            TableName=self._table,
            Item=header_item(batch),
            ConditionExpression=f"#state = :state AND {unchanged}",
            ExpressionAttributeNames={"#state": "state", "#resumes": "resumes"},
            ExpressionAttributeValues=values,
        )

    def open_accepts(self, *, due_by: int) -> list[str]:
        # One Query per shard of the index (message_items.OPEN_SHARDS), each nearly always empty: 0.5 read units.
        return [batch_id for shard in range(OPEN_SHARDS) for batch_id in self._open_accepts_of(shard, due_by)]

    def _open_accepts_of(self, shard: int, due_by: int) -> Iterator[str]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": OPEN_ACCEPTS_INDEX,
            "KeyConditionExpression": "open_accept = :shard AND settle_after <= :due",
            "ExpressionAttributeValues": {":shard": {"S": open_accept_key(shard)}, ":due": {"N": str(due_by)}},
        }
        while True:
            response = self._client().query(**kwargs)
            yield from (batch_id_of_header_keys(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def get_batch(self, batch_id: str) -> BatchRecord | None:
        item = (
            self._client()
            .get_item(
                TableName=self._table,
                Key={"pk": {"S": batch_pk(batch_id)}, "sk": {"S": HEADER_SK}},
                ConsistentRead=True,
            )
            .get("Item")
        )
        return batch_from_item(item) if item and is_batch_header(item, batch_id) else None

    # ---- messages ----

    def put_messages(self, messages: Sequence[MessageRecord], deadlines: Sequence[DeadlineEntry] = ()) -> None:
        chunks: list[Sequence[MessageRecord | DeadlineEntry]] = [
            messages[i : i + WRITE_BATCH] for i in range(0, len(messages), WRITE_BATCH)
        ]
        if deadlines:  # in the last request's room if it has some (a pack of one: one request, as before)
            room = WRITE_BATCH - len(chunks[-1]) if chunks else 0
            if room:
                chunks[-1] = [*chunks[-1], *deadlines[:room]]
            rest = deadlines[room:]
            chunks += [rest[i : i + WRITE_BATCH] for i in range(0, len(rest), WRITE_BATCH)]
        if len(chunks) <= 2:
            for chunk in chunks:
                self._write_records(chunk)
            return
        # A 10,000-recipient request is 400 requests: in parallel it fits comfortably in API Gateway's 29 s. Items
        # are built per chunk, in the worker that writes it, so they are never all in memory at once (a 10,000-
        # recipient accept then fits a 128 MB function).
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            for _ in pool.map(self._write_records, chunks):
                pass

    def put_if_sending(self, messages: Sequence[MessageRecord]) -> set[str]:
        """One conditional PutItem a record (BatchWriteItem takes no condition), in parallel: a resend pack's, up to
        1,000, within the recording's reserve."""

        def put(record: MessageRecord) -> str | None:
            done = written(
                self._client().put_item,
                TableName=self._table,
                Item=message_item(record),
                ConditionExpression="#status = :sending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":sending": {"S": Status.SENDING.value}},
            )
            return None if done else record.id

        if len(messages) <= 1:
            return {i for i in map(put, messages) if i is not None}
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            return {i for i in pool.map(put, messages) if i is not None}

    def _write_records(self, records: Sequence[MessageRecord | DeadlineEntry]) -> None:
        self._write_chunk([deadline_item(r) if isinstance(r, DeadlineEntry) else message_item(r) for r in records])

    def _write_chunk(self, items: list[dict[str, Any]]) -> None:
        requests: dict[str, Any] = {self._table: [{"PutRequest": {"Item": item}} for item in items]}
        for attempt in range(8):
            unprocessed = self._client().batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
            if not unprocessed:
                return
            requests = unprocessed
            time.sleep(min(0.05 * 2**attempt, 2.0) * random.uniform(0.5, 1.0))
        raise RuntimeError(f"DynamoDB left {len(requests[self._table])} writes unprocessed after retries")

    def get_message(self, message_id: str) -> tuple[MessageRecord, BatchRecord | None] | None:
        parts = split_message_id(message_id)
        if parts is None:
            return None
        batch_id, seq = parts
        pk = {"S": batch_pk(batch_id)}
        response = self._client().batch_get_item(
            RequestItems={
                self._table: {
                    "Keys": [{"pk": pk, "sk": {"S": message_sk(seq)}}, {"pk": pk, "sk": {"S": HEADER_SK}}],
                    "ConsistentRead": True,
                }
            }
        )
        items = response["Responses"].get(self._table, [])
        message = next((i for i in items if i["sk"]["S"] != HEADER_SK), None)
        header = next((i for i in items if i["sk"]["S"] == HEADER_SK and is_batch_header(i, batch_id)), None)
        if message is None:
            return None
        return message_from_item(message), batch_from_item(header) if header else None

    def get_messages(self, message_ids: Sequence[str]) -> dict[str, MessageRecord]:
        records = (message_from_item(item) for item in self.message_items(message_ids))
        return {record.id: record for record in records}

    def message_items(
        self, message_ids: Sequence[str], *, projection: str | None = None, names: dict[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """The items of these messages (consistent reads, BatchGetItem), with only `projection`'s attributes if
        given (the same read units, fewer bytes); in no particular order, absent ones left out."""
        keys = []
        for message_id in message_ids:
            parts = split_message_id(message_id)
            if parts is not None:
                keys.append({"pk": {"S": batch_pk(parts[0])}, "sk": {"S": message_sk(parts[1])}})
        yield from batch_get(self._client(), self._table, keys, projection=projection, names=names)

    def cancel_unsent(self, message_ids: Sequence[str], *, now: datetime) -> tuple[list[MessageRecord], dict[str, str]]:
        results = move_each(
            self._client,
            self._table,
            message_ids,
            from_statuses=(Status.ACCEPTED, Status.QUEUED),
            to=Status.CANCELED,
            now=now,
            step=CANCEL_STEP,
        )
        return split_moves(results)

    def mark_held(self, message_ids: Sequence[str], *, held_key: str) -> None:
        mark_each(
            self._client, self._table, message_ids, held_key=held_key, from_statuses=(Status.ACCEPTED, Status.QUEUED)
        )

    def list_batch_messages(
        self, batch_id: str, *, limit: int, after: str | None
    ) -> tuple[list[MessageRecord], str | None]:
        start = None
        if after is not None:
            parts = split_message_id(after)
            # Refused rather than answered with an empty last page: a client would take it for the batch's end.
            if parts is None:
                raise InvalidCursor()
            if parts[0] != batch_id:
                raise InvalidCursor("the cursor belongs to another batch")
            start = {"pk": {"S": batch_pk(batch_id)}, "sk": {"S": message_sk(parts[1])}}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :m)",
            "ExpressionAttributeValues": {":pk": {"S": batch_pk(batch_id)}, ":m": {"S": "M#"}},
            "Limit": limit,
            "ConsistentRead": True,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self._client().query(**kwargs)
        records = [message_from_item(i) for i in response.get("Items", [])]
        # A LastEvaluatedKey means "there may be more", whether the page stopped at `limit` or at the 1 MB a Query
        # returns at once (about 300 messages of long texts): the page is then shorter than asked, never the last.
        last = response.get("LastEvaluatedKey")
        if last is None:
            return records, None
        return records, id_of_message(batch_id, int(last["sk"]["S"].removeprefix("M#")))

    def batch_tally(self, batch_id: str) -> BatchTally:
        # One item whatever the batch size (counting the partition read every record: some 1,200 read units for
        # 10,000 recipients); the stream keeps it (aws.dynamodb_counts).
        item = (
            self._client()
            .get_item(
                TableName=self._table,
                Key={"pk": {"S": batch_pk(batch_id)}, "sk": {"S": COUNTS_SK}},
                ConsistentRead=True,
            )
            .get("Item", {})
        )
        return tally_of_item(item)
