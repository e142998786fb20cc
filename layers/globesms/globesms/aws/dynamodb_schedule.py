"""`ScheduleStore` on the messages table.

Items (beside the batches' `B#<batch id>` partitions, whose message records the claims and cancels update):
- held packs: `pk = S#<batch id>`, `sk = <send_at>#<pack id>`, the pack's JSON in `pack` (under SQS's 256 KB, so
  well under DynamoDB's 400 KB item);
- the release index: `pk = SCHED#<YYYYMMDDHHMM>` (a UTC minute), `sk = <send_at>#<batch id>`;
- the sweep's cursor: `pk = SCHED#CURSOR`, `sk = #`, the last bucket swept in `bucket`, and in `within` the sort key
  of the last release queued from the bucket after it, while only part of that one is.
Every item but the cursor carries `expires_at` (TTL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from globesms.aws import clients
from globesms.aws.conditions import written
from globesms.aws.dynamodb_status_moves import Moved, move_each, split_moves
from globesms.aws.dynamodb_store import CANCEL_STEP
from globesms.domain.status import Status
from globesms.models.packs import DispatchPack
from globesms.models.records import MessageRecord
from globesms.ports import ReleaseRef, SweepCursor

CURSOR_KEY = {"pk": {"S": "SCHED#CURSOR"}, "sk": {"S": "#"}}


def _held_pk(batch_id: str) -> dict[str, str]:
    return {"S": f"S#{batch_id}"}


def _bucket_pk(bucket: str) -> dict[str, str]:
    return {"S": f"SCHED#{bucket}"}


def _index_sk(ref: ReleaseRef) -> str:
    return f"{ref.send_at}#{ref.batch_id}"


def _index_ref(sk: str) -> ReleaseRef:
    send_at, batch_id = sk.split("#", 1)
    return ReleaseRef(batch_id, send_at)


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
                "sk": {"S": _index_sk(ref)},
                "batch_id": {"S": ref.batch_id},
                "send_at": {"S": ref.send_at},
                "expires_at": {"N": str(expires_at)},
            },
        )

    def indexed_releases(
        self, bucket: str, *, after: ReleaseRef | None = None, limit: int
    ) -> tuple[list[ReleaseRef], bool]:
        key = _bucket_pk(bucket)
        start = {} if after is None else {"ExclusiveStartKey": {"pk": key, "sk": {"S": _index_sk(after)}}}
        page = self._client().query(
            TableName=self._table,
            ConsistentRead=True,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": key},
            Limit=limit,
            **start,
        )
        refs = [ReleaseRef(item["batch_id"]["S"], item["send_at"]["S"]) for item in page.get("Items", [])]
        return refs, "LastEvaluatedKey" in page

    def _query(self, **kwargs: Any) -> list[dict[str, Any]]:
        paginator = self._client().get_paginator("query")
        pages = paginator.paginate(TableName=self._table, ConsistentRead=True, **kwargs)
        return [item for page in pages for item in page.get("Items", [])]

    def sweep_cursor(self) -> SweepCursor | None:
        item = self._client().get_item(TableName=self._table, Key=CURSOR_KEY, ConsistentRead=True).get("Item")
        if not item:
            return None
        within = item.get("within", {}).get("S")
        return SweepCursor(str(item["bucket"]["S"]), None if within is None else _index_ref(within))

    def advance_sweep_cursor(self, old: SweepCursor | None, new: SweepCursor) -> bool:
        """Conditional on the whole position read: a cursor written by a version before `within` has none."""
        values: dict[str, Any] = {":new": {"S": new.bucket}}
        if old is None:
            condition = "attribute_not_exists(pk)"
        else:
            values[":old"] = {"S": old.bucket}
            condition = "#b = :old AND " + ("attribute_not_exists(#w)" if old.within is None else "#w = :oldw")
            if old.within is not None:
                values[":oldw"] = {"S": _index_sk(old.within)}
        update = "SET #b = :new REMOVE #w"
        if new.within is not None:
            update = "SET #b = :new, #w = :neww"
            values[":neww"] = {"S": _index_sk(new.within)}
        return written(
            self._client().update_item,
            TableName=self._table,
            Key=CURSOR_KEY,
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames={"#b": "bucket", "#w": "within"},
            ExpressionAttributeValues=values,
        )

    # ---- the claims a release and a cancel race for ----

    def claim_for_release(self, message_ids: Sequence[str], *, now: datetime) -> dict[str, str]:
        results = self._move_scheduled(message_ids, Status.QUEUED, now, step=None)
        return {i: status for i, (status, _record) in results.items()}

    def cancel_scheduled(
        self, message_ids: Sequence[str], *, now: datetime
    ) -> tuple[list[MessageRecord], dict[str, str]]:
        results = self._move_scheduled(message_ids, Status.CANCELED, now, step=CANCEL_STEP)
        return split_moves(results)

    def _move_scheduled(
        self, message_ids: Sequence[str], to: Status, now: datetime, *, step: str | None
    ) -> dict[str, Moved]:
        """SCHEDULED -> `to`, conditionally. A claim for release finding QUEUED reports it."""
        return move_each(
            self._client, self._table, message_ids, from_statuses=(Status.SCHEDULED,), to=to, now=now, step=step
        )
