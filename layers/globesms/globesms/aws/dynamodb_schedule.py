"""`ScheduleStore` on the messages table.

Items (beside the batches' `B#<batch id>` partitions, whose message records the claims and cancels update):
- held packs: `pk = S#<batch id>`, `sk = <send_at>#<pack id>`, the pack's JSON in `pack` (under SQS's 256 KB, so
  well under DynamoDB's 400 KB item);
- the release index: `pk = SCHED#<YYYYMMDDHHMM>` (a UTC minute), `sk = <send_at>#<batch id>`;
- the sweep's cursor: `pk = SCHED#CURSOR`, `sk = #`, the last bucket swept in `bucket`.
Every item but the cursor carries `expires_at` (TTL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from globesms.aws import clients
from globesms.aws.dynamodb_store import batch_pk, message_from_item, message_sk
from globesms.domain.clock import iso
from globesms.domain.history import HistoryStep
from globesms.domain.status import Status
from globesms.models.packs import DispatchPack
from globesms.models.records import MessageRecord, split_message_id
from globesms.ports import ReleaseRef

CURSOR_KEY = {"pk": {"S": "SCHED#CURSOR"}, "sk": {"S": "#"}}
CLAIM_THREADS = 8  # conditional writes in parallel: a 10,000-recipient release in seconds
CANCEL_STEP = "canceled"


def _held_pk(batch_id: str) -> dict[str, str]:
    return {"S": f"S#{batch_id}"}


def _bucket_pk(bucket: str) -> dict[str, str]:
    return {"S": f"SCHED#{bucket}"}


def _record_key(message_id: str) -> dict[str, Any] | None:
    parts = split_message_id(message_id)
    if parts is None:
        return None
    return {"pk": {"S": batch_pk(parts[0])}, "sk": {"S": message_sk(parts[1])}}


class DynamoDBScheduleStore:
    def __init__(self, table_name: str, client_factory: Callable[[], Any] = clients.dynamodb) -> None:
        self._table = table_name
        self._client = client_factory

    # ---- held packs and the index ----

    def hold_packs(self, ref: ReleaseRef, packs: Sequence[DispatchPack], *, expires_at: int) -> None:
        for pack in packs:
            self._client().put_item(
                TableName=self._table,
                Item={
                    "pk": _held_pk(ref.batch_id),
                    "sk": {"S": f"{ref.send_at}#{pack.pack_id}"},
                    "pack": {"S": pack.model_dump_json(exclude_none=True)},
                    "expires_at": {"N": str(expires_at)},
                },
            )

    def held_packs(self, ref: ReleaseRef) -> list[DispatchPack]:
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
            ExpressionAttributeValues={":pk": _held_pk(ref.batch_id), ":t": {"S": f"{ref.send_at}#"}},
        )
        return [DispatchPack.model_validate_json(item["pack"]["S"]) for item in items]

    def index_release(self, bucket: str, ref: ReleaseRef, *, expires_at: int) -> None:
        self._client().put_item(
            TableName=self._table,
            Item={
                "pk": _bucket_pk(bucket),
                "sk": {"S": f"{ref.send_at}#{ref.batch_id}"},
                "batch_id": {"S": ref.batch_id},
                "send_at": {"S": ref.send_at},
                "expires_at": {"N": str(expires_at)},
            },
        )

    def indexed_releases(self, bucket: str) -> list[ReleaseRef]:
        items = self._query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": _bucket_pk(bucket)})
        return [ReleaseRef(item["batch_id"]["S"], item["send_at"]["S"]) for item in items]

    def _query(self, **kwargs: Any) -> list[dict[str, Any]]:
        paginator = self._client().get_paginator("query")
        pages = paginator.paginate(TableName=self._table, ConsistentRead=True, **kwargs)
        return [item for page in pages for item in page.get("Items", [])]

    def sweep_cursor(self) -> str | None:
        item = self._client().get_item(TableName=self._table, Key=CURSOR_KEY, ConsistentRead=True).get("Item")
        return None if not item else str(item["bucket"]["S"])

    def advance_sweep_cursor(self, old: str | None, new: str) -> bool:
        condition = "attribute_not_exists(pk)" if old is None else "#b = :old"
        values: dict[str, Any] = {":new": {"S": new}}
        if old is not None:
            values[":old"] = {"S": old}
        try:
            self._client().update_item(
                TableName=self._table,
                Key=CURSOR_KEY,
                UpdateExpression="SET #b = :new",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#b": "bucket"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True

    # ---- the claims a release and a cancel race for ----

    def claim_for_release(self, message_ids: Sequence[str], *, now: datetime) -> dict[str, str]:
        results = self._each(message_ids, lambda key: self._move(key, Status.QUEUED, now, step=None))
        return {i: status for i, (status, _record) in results.items()}

    def cancel_scheduled(
        self, message_ids: Sequence[str], *, now: datetime
    ) -> tuple[list[MessageRecord], dict[str, str]]:
        results = self._each(message_ids, lambda key: self._move(key, Status.CANCELED, now, step=CANCEL_STEP))
        canceled = [record for _status, record in results.values() if record is not None]
        others = {i: status for i, (status, record) in results.items() if record is None}
        return canceled, others

    def _each(
        self, message_ids: Sequence[str], move: Callable[[dict[str, Any]], tuple[str, MessageRecord | None] | None]
    ) -> dict[str, tuple[str, MessageRecord | None]]:
        keyed = [(i, key) for i in message_ids if (key := _record_key(i)) is not None]
        with ThreadPoolExecutor(max_workers=CLAIM_THREADS) as pool:
            moved = list(pool.map(lambda pair: move(pair[1]), keyed))
        return {i: result for (i, _key), result in zip(keyed, moved, strict=True) if result is not None}

    def _move(
        self, key: dict[str, Any], to: Status, now: datetime, *, step: str | None
    ) -> tuple[str, MessageRecord | None] | None:
        """SCHEDULED -> `to`, conditionally. (`to`, the record after) when this write moved it; (its status, None)
        when it was not SCHEDULED; None when there is no record. A claim for release finding QUEUED reports it."""
        stamp = iso(now)
        update = "SET #s = :to, updated_at = :now"
        values: dict[str, Any] = {":to": {"S": to.value}, ":now": {"S": stamp}, ":scheduled": {"S": "SCHEDULED"}}
        if step is not None:
            entry = HistoryStep(step, to, to.value, stamp).to_item()
            update += ", events = list_append(if_not_exists(events, :none), :step)"
            values[":none"] = {"L": []}
            values[":step"] = {"L": [{"M": {k: {"S": str(v)} for k, v in entry.items()}}]}
        try:
            response = self._client().update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression=update,
                ConditionExpression="#s = :scheduled",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            old: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
            return (old["status"]["S"], None) if old else None
        return to.value, message_from_item(response["Attributes"])
