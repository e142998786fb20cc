"""Conditional status moves of message records: the one write a release and a cancel (of a scheduled recipient)
race for, and a cancel and a dispatcher's later look at a canceled pack both make (`SCHEDULED -> QUEUED`,
`SCHEDULED -> CANCELED`, `ACCEPTED | QUEUED -> CANCELED`). DynamoDB applies a move only while the record is in one of
the statuses it moves from, so of two racing moves exactly one happens. Also the note of the quiet-hours hold a
record waits in (`mark_each`), written only on a record not yet sent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from globesms.aws.conditions import condition_failed
from globesms.aws.message_items import batch_pk, message_from_item, message_sk
from globesms.domain.clock import iso
from globesms.domain.history import HistoryStep
from globesms.domain.status import Status
from globesms.models.records import MessageRecord, split_message_id

MOVE_THREADS = 8  # conditional writes in parallel: a 10,000-recipient release or cancel in seconds

#: (the status after, the record after) when this write moved it; (its status, None) when it was in none of the
#: statuses moved from.
Moved = tuple[str, MessageRecord | None]


def split_moves(results: dict[str, Moved]) -> tuple[list[MessageRecord], dict[str, str]]:
    """The records moved now, and the status of every other one found, by id."""
    moved = [record for _status, record in results.values() if record is not None]
    others = {i: status for i, (status, record) in results.items() if record is None}
    return moved, others


def record_key(message_id: str) -> dict[str, Any] | None:
    parts = split_message_id(message_id)
    if parts is None:
        return None
    return {"pk": {"S": batch_pk(parts[0])}, "sk": {"S": message_sk(parts[1])}}


def move_each(
    client: Callable[[], Any],
    table: str,
    message_ids: Sequence[str],
    *,
    from_statuses: Sequence[Status],
    to: Status,
    now: datetime,
    step: str | None,
) -> dict[str, Moved]:
    """Each record moved (in parallel); ids with no record (or a malformed id) are left out."""
    keyed = [(i, key) for i in message_ids if (key := record_key(i)) is not None]

    def move(key: dict[str, Any]) -> Moved | None:
        return _move(client(), table, key, from_statuses=from_statuses, to=to, now=now, step=step)

    with ThreadPoolExecutor(max_workers=MOVE_THREADS) as pool:
        moved = list(pool.map(lambda pair: move(pair[1]), keyed))
    return {i: result for (i, _key), result in zip(keyed, moved, strict=True) if result is not None}


def _move(
    client: Any,
    table: str,
    key: dict[str, Any],
    *,
    from_statuses: Sequence[Status],
    to: Status,
    now: datetime,
    step: str | None,
) -> Moved | None:
    """None when there is no record."""
    stamp = iso(now)
    update = "SET #s = :to, updated_at = :now"
    values: dict[str, Any] = {":to": {"S": to.value}, ":now": {"S": stamp}}
    names = []
    for n, status in enumerate(from_statuses):
        values[f":from{n}"] = {"S": status.value}
        names.append(f":from{n}")
    if step is not None:
        entry = HistoryStep(step, to, to.value, stamp).to_item()
        update += ", events = list_append(if_not_exists(events, :none), :step)"
        values[":none"] = {"L": []}
        values[":step"] = {"L": [{"M": {k: {"S": str(v)} for k, v in entry.items()}}]}
    try:
        response = client.update_item(
            TableName=table,
            Key=key,
            UpdateExpression=update,
            ConditionExpression=f"#s IN ({', '.join(names)})",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if not condition_failed(exc):
            raise
        old: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
        return (old["status"]["S"], None) if old else None
    return to.value, message_from_item(response["Attributes"])


def mark_each(
    client: Callable[[], Any], table: str, message_ids: Sequence[str], *, held_key: str, from_statuses: Sequence[Status]
) -> None:
    """`held_key` set on each record while it is in one of `from_statuses` (in parallel); any other is left alone,
    and so is one naming a hold that began inside this one (`<hold>...q`: its wait, whose recipients some of the
    hold ended for, started it), which a dispatcher taking this hold's pack over after a crash would otherwise name
    again (dispatch/requeue.py, `note_hold`)."""
    keys = [key for i in message_ids if (key := record_key(i)) is not None]
    values: dict[str, Any] = {":held": {"S": held_key}}
    values.update({f":from{n}": {"S": status.value} for n, status in enumerate(from_statuses)})
    statuses = f"#s IN ({', '.join(f':from{n}' for n in range(len(from_statuses)))})"
    condition = f"{statuses} AND (attribute_not_exists(held_key) OR NOT begins_with(held_key, :held))"

    def mark(key: dict[str, Any]) -> None:
        try:
            client().update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET held_key = :held",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise

    with ThreadPoolExecutor(max_workers=MOVE_THREADS) as pool:
        list(pool.map(mark, keys))
