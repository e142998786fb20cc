"""`PackClaims` on the messages table: one item per pack, `pk = P#<pack id>`, `sk = #`, with its state
(CLAIMED / OPEN / DEAD / DONE / CANCELED) and, while CLAIMED, the lease's end (epoch seconds). A quiet-hours hold
(`<pack id>.q`, dispatch/holds.py) has an item of the same kind, CANCELED by a cancel or RELEASED by the dispatcher
that ends it (`take_hold`), whichever writes first. A dispatcher's claim
and a cancel are the same conditional write (only on a pack nobody holds: no item yet, OPEN, or DEAD: released on
its way to the dead-letter queue), so one of them wins; a claim that takes a DEAD pack is `Claim.REDRIVEN`.

A claim is an UpdateItem, not a PutItem, so that `dead_lettered_at` (when the pack last went to the dead-letter
queue, its recipients recorded FAILED) and `redriving` (that time again, copied once a redrive of it charged its
spend and goes on to its call) outlive the claims that follow: a dispatcher taking over from one that died after a
redrive's call needs them (`dispatch/recovery.py`), and so does a later attempt of the redrive released for a retry
(`Claim.REDRIVEN` again). What an earlier holder noted as put back on a queue is removed by each claim, as a fresh
item would have none.

Each claim and takeover writes a `holder` token of its own (random, per attempt). botocore retries a write whose
answer was lost (a timeout, a 500 after the write landed); the retry of a claim that had landed finds the pack
CLAIMED under an unexpired lease, which without the token read as another dispatcher's (`Claim.BUSY`): the pack was
left, and its next delivery, past the lease, settled it as possibly sent (`Claim.STALE`: unknown outcomes) though
nobody had called the provider. A failed condition over our own token is our claim. `claimed_from` keeps the state
the claim took the pack from, so that the retry answers as the landed write would have (`Claim.REDRIVEN` from DEAD)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from botocore.exceptions import ClientError

from globesms.aws import clients
from globesms.aws.conditions import condition_failed, written
from globesms.ports import Claim, ClaimNotes, Requeued

CLAIM_SK = "#"
RETENTION_SECONDS = 14 * 24 * 3600  # longer than any SQS message (or its DLQ copy) can live


def claim_key(pack_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"P#{pack_id}"}, "sk": {"S": CLAIM_SK}}


class DynamoDBPackClaims:
    def __init__(self, table_name: str, client_factory: Callable[[], Any] = clients.dynamodb) -> None:
        self._table = table_name
        self._client = client_factory

    def claim(self, pack_id: str, *, now: datetime, lease_seconds: int) -> Claim:
        moment = int(now.timestamp())
        lease = {"N": str(moment + lease_seconds)}
        holder = {"S": uuid4().hex}
        try:
            answer = self._client().update_item(
                TableName=self._table,
                Key=claim_key(pack_id),
                # claimed_from first: moto applies SET actions in order (DynamoDB reads every operand as the item
                # was before the update)
                UpdateExpression=(
                    "SET claimed_from = if_not_exists(#state, :none), #state = :claimed, lease_until = :lease,"
                    " expires_at = :expires, holder = :holder"
                    " REMOVE retried, #deferred, failed_over, quiet, requeued_by"
                ),
                ConditionExpression="attribute_not_exists(pk) OR #state IN (:open, :dead)",
                ExpressionAttributeNames={"#state": "state", "#deferred": "deferred"},  # both reserved words
                ExpressionAttributeValues={
                    ":claimed": {"S": "CLAIMED"},
                    ":lease": lease,
                    ":expires": {"N": str(moment + RETENTION_SECONDS)},
                    ":holder": holder,
                    ":none": {"S": "NONE"},
                    ":open": {"S": "OPEN"},
                    ":dead": {"S": "DEAD"},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return _ours(answer.get("Attributes", {}))
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            old: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
        if old.get("holder") == holder:
            return _ours(old)  # our own write, landed before botocore retried it
        if old.get("state", {}).get("S") == "DONE":
            return Claim.DONE
        if old.get("state", {}).get("S") == "CANCELED":
            return Claim.CANCELED
        held_until = old.get("lease_until", {"N": "0"})
        if int(held_until["N"]) > moment:
            return Claim.BUSY
        return self._take_over(pack_id, held_until, lease, holder)

    def _take_over(
        self, pack_id: str, held_until: dict[str, str], lease: dict[str, str], holder: dict[str, str]
    ) -> Claim:
        """Only one of several dispatchers finding the same expired claim wins it (a retry of our own landed
        takeover finds our token)."""
        try:
            self._client().update_item(
                TableName=self._table,
                Key=claim_key(pack_id),
                UpdateExpression="SET lease_until = :lease, holder = :holder",
                ConditionExpression="#state = :claimed AND lease_until = :held",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":lease": lease,
                    ":held": held_until,
                    ":claimed": {"S": "CLAIMED"},
                    ":holder": holder,
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            old: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
            return Claim.STALE if old.get("holder") == holder else Claim.BUSY
        return Claim.STALE

    def release(self, pack_id: str, *, dead_lettered_at: datetime | None = None) -> None:
        if dead_lettered_at is None:
            self._set_state(pack_id, "OPEN")
            return
        self._client().update_item(
            TableName=self._table,
            Key=claim_key(pack_id),
            UpdateExpression="SET #state = :dead, dead_lettered_at = :at REMOVE lease_until",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":dead": {"S": "DEAD"}, ":at": {"N": str(dead_lettered_at.timestamp())}},
        )

    def cancel(self, pack_id: str, *, now: datetime) -> bool:
        return self._put_state(pack_id, "CANCELED", over=("OPEN", "DEAD", "CANCELED"), now=now)

    def finish(self, pack_id: str) -> None:
        self._set_state(pack_id, "DONE")

    def take_hold(self, hold_id: str, *, now: datetime) -> bool:
        # A hold's item is only ever written by these two: a cancel's (CANCELED) and this one (RELEASED, which a
        # cancel's condition leaves alone). A retry of either after its write landed finds its own state.
        return self._put_state(hold_id, "RELEASED", over=("RELEASED",), now=now)

    def hold_state(self, hold_id: str) -> str | None:
        item = self._client().get_item(TableName=self._table, Key=claim_key(hold_id), ConsistentRead=True).get("Item")
        return None if not item else str(item["state"]["S"])

    def _put_state(self, pack_id: str, state: str, *, over: tuple[str, ...], now: datetime) -> bool:
        """The item written as `state` where there is none, or its state is one of `over`; whether it was."""
        allowed = {f":over{n}": {"S": s} for n, s in enumerate(over)}
        return written(
            self._client().put_item,
            TableName=self._table,
            Item={
                **claim_key(pack_id),
                "state": {"S": state},
                "expires_at": {"N": str(int(now.timestamp()) + RETENTION_SECONDS)},
            },
            ConditionExpression=f"attribute_not_exists(pk) OR #state IN ({', '.join(allowed)})",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=allowed,
        )

    def _set_state(self, pack_id: str, state: str) -> None:
        self._client().update_item(
            TableName=self._table,
            Key=claim_key(pack_id),
            UpdateExpression="SET #state = :state REMOVE lease_until",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":state": {"S": state}},
        )

    def record_requeued(self, pack_id: str, requeued: Requeued) -> None:
        sets = "SET #retried = :retried, #deferred = :deferred, #failed_over = :failed_over, #quiet = :quiet"
        # `requeued_by`: what the numbers are (absent: positions, as notes were written before it was kept)
        self._client().update_item(
            TableName=self._table,
            Key=claim_key(pack_id),
            UpdateExpression=f"{sets} REMOVE requeued_by" if requeued.by_position else f"{sets}, requeued_by = :seq",
            # DEFERRED is a reserved word
            ExpressionAttributeNames={
                "#retried": "retried",
                "#deferred": "deferred",
                "#failed_over": "failed_over",
                "#quiet": "quiet",
            },
            ExpressionAttributeValues={
                ":retried": _numbers(requeued.retried),
                ":deferred": _numbers(requeued.deferred),
                ":failed_over": _numbers(requeued.failed_over),
                ":quiet": _numbers(requeued.quiet),
                **({} if requeued.by_position else {":seq": {"S": "seq"}}),
            },
        )

    def mark_redriving(self, pack_id: str) -> datetime | None:
        try:
            answer = self._client().update_item(
                TableName=self._table,
                Key=claim_key(pack_id),
                UpdateExpression="SET redriving = dead_lettered_at",
                ConditionExpression="attribute_exists(dead_lettered_at)",
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            return None  # dead-lettered before the time was kept
        return _epoch(answer["Attributes"]["redriving"])

    def notes(self, pack_id: str) -> ClaimNotes:
        item = self._client().get_item(TableName=self._table, Key=claim_key(pack_id), ConsistentRead=True).get("Item")
        item = item or {}
        return ClaimNotes(
            requeued=Requeued(
                retried=_numbers_of(item, "retried"),
                deferred=_numbers_of(item, "deferred"),
                failed_over=_numbers_of(item, "failed_over"),
                quiet=_numbers_of(item, "quiet"),
                by_position=item.get("requeued_by", {}).get("S") != "seq",
            ),
            redriving=_redriving(item),
            dead_lettered=None if "dead_lettered_at" not in item else _epoch(item["dead_lettered_at"]),
        )


def _ours(claimed: dict[str, Any]) -> Claim:
    """What a claim that took the pack is (`claimed`: the item as the claim left it): a redrive if it took a DEAD
    pack or the pack's last dead-lettering is being redriven, else an ordinary claim."""
    if claimed.get("claimed_from", {}).get("S") == "DEAD" or _redriving(claimed) is not None:
        return Claim.REDRIVEN
    return Claim.CLAIMED


def _redriving(item: dict[str, Any]) -> datetime | None:
    """When the pack was last dead-lettered, if a redrive of that dead-lettering went on to its call: a mark left
    from an earlier dead-lettering (the pack redriven, dead-lettered again since) does not count."""
    redriving, dead = item.get("redriving"), item.get("dead_lettered_at")
    return _epoch(redriving) if redriving is not None and redriving == dead else None


def _epoch(value: dict[str, str]) -> datetime:
    return datetime.fromtimestamp(float(value["N"]), UTC)


def _numbers(positions: tuple[int, ...]) -> dict[str, Any]:
    return {"L": [{"N": str(i)} for i in positions]}


def _numbers_of(item: dict[str, Any], name: str) -> tuple[int, ...]:
    return tuple(int(v["N"]) for v in item.get(name, {"L": []})["L"])
