"""`SpendLedger` on the messages table: one counter per scope and month, one reservation marker per batch.

Counters: `pk = S#<scope>#<YYYY-MM>`, `sk = $month`, holding `spent` (a decimal number: DynamoDB numbers are exact
decimals) and `expires_at` (TTL, a year on). A batch's reservation: `pk = B#<batch_id>`, `sk = $spend` (in the
batch's own partition, beside its header; every query of messages reads `M#...` only), holding `count`, `amount`
and `body` (the digest of the body it was made for: another body naming the batch id never takes it). Reserving is
one TransactWriteItems: put the marker if absent, and `ADD spent :amount` to each counter, under
`spent <= limit - amount` where the scope has a limit. DynamoDB applies it all or nothing, serialised against every
other writer of those items, so concurrent accepts can never together cross a limit, and a batch reserves at most
once.

A release (a recipient that never reached a provider) is one TransactWriteItems per up to RELEASE_CHUNK recipients:
a marker per message, `pk = B#<batch_id>`, `sk = $release#<seq>`, put only if absent, and `ADD spent -:amount` to
each counter (only if it exists). A dispatcher retrying the same pack finds its markers: those recipients are left
out and the rest given back, so each recipient's cost comes back once. A redrive of a dead-lettered pack charges
it again before sending (`recharge_once`): each marker deleted only if present, with `ADD spent :amount`, so what
was given back is charged once more, and a later release gives it back again.

A charge beyond the reservation (`charge_once`: a failover's difference, a resend) is the same kind of transaction:
a marker per charge, `pk = B#<batch_id>`, `sk = $charge#<seq>#<kind>#<provider>`, put only if absent (or given
back), with `ADD spent :amount` on each counter (created if absent when the amount is positive), so each is added
once. Giving one back (`uncharge_once`, a resend that never reached its provider) reads the markers' amounts, then
notes each marker `given_back` only if it still holds that amount and is not given back, with `ADD spent -:sum`; a
redrive charges it again (`recharge_given_back`) the same way back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from globesms.aws import clients
from globesms.aws.batch_reads import batch_get
from globesms.aws.conditions import condition_failed
from globesms.guardrails.ports import Charge, ChargeMade, HeldForAnotherBody, Hold, Reservation
from globesms.models.records import message_id, split_message_id

MARKER_SK = "$spend"
COUNTER_SK = "$month"  # not "#": tools and tests read items with sk "#" as batch headers
COUNTER_TTL_SECONDS = 400 * 86_400  # a month's counter is read for GET /v1/usage some time after the month
CONFLICT_RETRIES = 4  # another transaction on the same counter at the same moment: try again after a short pause
RELEASE_SK_PREFIX = "$release#"
RELEASE_CHUNK = 90  # markers per transaction: TransactWriteItems takes 100 items, the counters among them
CHARGE_SK_PREFIX = "$charge#"

Marked = TypeVar("Marked")  # what a marker is written for: a message id (a release), a `Charge`


def counter_key(scope: str, month: str) -> dict[str, Any]:
    return {"pk": {"S": f"S#{scope}#{month}"}, "sk": {"S": COUNTER_SK}}


def marker_key(batch_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"B#{batch_id}"}, "sk": {"S": MARKER_SK}}


def release_key(message_id: str) -> dict[str, Any]:
    parts = split_message_id(message_id)
    if parts is None:
        raise ValueError("not a message id")
    return {"pk": {"S": f"B#{parts[0]}"}, "sk": {"S": f"{RELEASE_SK_PREFIX}{parts[1]:05d}"}}


def charge_key(charge: Charge) -> dict[str, Any]:
    parts = split_message_id(charge.message_id)
    if parts is None:
        raise ValueError("not a message id")
    sk = f"{CHARGE_SK_PREFIX}{parts[1]:05d}#{charge.kind}#{charge.provider}"
    return {"pk": {"S": f"B#{parts[0]}"}, "sk": {"S": sk}}


def _number(value: Decimal) -> dict[str, str]:
    return {"N": format(value, "f")}


class DynamoDBSpendLedger:
    def __init__(self, table_name: str, client_factory: Callable[[], Any] = clients.dynamodb) -> None:
        self._table = table_name
        self._client = client_factory

    def try_reserve(self, hold: Hold) -> int | None:
        items = self._transaction(hold)
        if items is None:
            return None
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                self._client().transact_write_items(TransactItems=items)
                return hold.count
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return self._held(hold)
            if "ConditionalCheckFailed" in reasons:
                return None
            if attempt < CONFLICT_RETRIES:  # TransactionConflict (or no reasons given): the same items were busy
                time.sleep(0.01 * 2**attempt * random.uniform(0.5, 1.0))
        return None

    def _transaction(self, hold: Hold) -> list[dict[str, Any]] | None:
        """The transaction's items, or None when a limit is smaller than the amount alone."""
        marker = {
            **marker_key(hold.batch_id),
            "count": {"N": str(hold.count)},
            "amount": _number(hold.amount),
            "month": {"S": hold.month},
            "expires_at": {"N": str(hold.expires_at)},
        }
        if hold.scopes:  # whose counters it was added to: a release of its rest gives back to those (the owner may
            marker["scopes"] = {"SS": sorted(set(hold.scopes))}  # differ on a resume: GLOBESMS_INTAKE_OWNER)
        if hold.body is not None:
            marker["body"] = {"S": hold.body}
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table, "Item": marker, "ConditionExpression": "attribute_not_exists(pk)"}}
        ]
        if not hold.amount:
            return items
        ttl = _number(Decimal(int(time.time()) + COUNTER_TTL_SECONDS))
        for scope in hold.scopes:
            update: dict[str, Any] = {
                "TableName": self._table,
                "Key": counter_key(scope, hold.month),
                "UpdateExpression": "ADD spent :amount SET expires_at = if_not_exists(expires_at, :ttl)",
                "ExpressionAttributeValues": {":amount": _number(hold.amount), ":ttl": ttl},
            }
            limit = hold.limits.get(scope)
            if limit is not None:
                if hold.amount > limit:
                    return None
                update["ConditionExpression"] = "attribute_not_exists(spent) OR spent <= :room"
                update["ExpressionAttributeValues"][":room"] = _number(limit - hold.amount)
            items.append({"Update": update})
        return items

    def _held(self, hold: Hold) -> int:
        """What the batch's marker covers of this request (`Hold.covered`), if it is this body's (one written before
        markers named their body is taken as this body's)."""
        item = self._client().get_item(TableName=self._table, Key=marker_key(hold.batch_id), ConsistentRead=True)
        marker = item["Item"]
        body = marker.get("body", {}).get("S")
        if body is not None and hold.body is not None and body != hold.body:
            raise HeldForAnotherBody(hold.batch_id)
        return hold.covered(int(marker["count"]["N"]), Decimal(marker["amount"]["N"]))

    def reservation(self, batch_id: str) -> Reservation | None:
        item = self._client().get_item(TableName=self._table, Key=marker_key(batch_id), ConsistentRead=True).get("Item")
        if item is None:
            return None
        scopes = tuple(sorted(item.get("scopes", {}).get("SS", [])))
        return Reservation(item["month"]["S"], int(item["count"]["N"]), Decimal(item["amount"]["N"]), scopes)

    def spent(self, month: str, scopes: Collection[str]) -> dict[str, Decimal]:
        wanted = sorted(set(scopes))
        found = dict.fromkeys(wanted, Decimal(0))
        if not wanted:
            return found
        by_pk = {counter_key(s, month)["pk"]["S"]: s for s in wanted}
        for item in batch_get(self._client(), self._table, [counter_key(s, month) for s in wanted]):
            found[by_pk[item["pk"]["S"]]] = Decimal(item.get("spent", {"N": "0"})["N"])
        return found

    def release(self, month: str, amounts: Mapping[str, Decimal]) -> None:
        for scope, amount in amounts.items():
            try:
                self._client().update_item(
                    TableName=self._table,
                    Key=counter_key(scope, month),
                    UpdateExpression="ADD spent :minus",
                    ConditionExpression="attribute_exists(spent)",  # never a negative counter of its own
                    ExpressionAttributeValues={":minus": _number(-amount)},
                )
            except ClientError as exc:
                if not condition_failed(exc):
                    raise

    def release_once(
        self, month: str, scopes: Collection[str], amounts: Mapping[str, Decimal], expires_at: int | None
    ) -> Decimal:
        pending = [(message_id, amount) for message_id, amount in amounts.items() if amount > 0]
        ttl = expires_at or int(time.time()) + COUNTER_TTL_SECONDS
        released = Decimal(0)
        for start in range(0, len(pending), RELEASE_CHUNK):
            released += self._release_chunk(month, list(scopes), pending[start : start + RELEASE_CHUNK], ttl)
        return released

    def recharge_once(self, month: str, scopes: Collection[str], amounts: Mapping[str, Decimal]) -> Decimal:
        pending = [(message_id, amount) for message_id, amount in amounts.items() if amount > 0]
        charged = Decimal(0)
        for start in range(0, len(pending), RELEASE_CHUNK):
            chunk = pending[start : start + RELEASE_CHUNK]
            charged += self._marked_chunk(chunk, list(scopes), partial(self._recharge_items, month))
        return charged

    def charge_once(
        self,
        month: str,
        scopes: Collection[str],
        amounts: Mapping[Charge, Decimal],
        expires_at: int | None,
        carried: Mapping[Charge, Decimal] | None = None,
    ) -> Decimal:
        pending = [(charge, amount) for charge, amount in amounts.items() if amount]
        ttl = expires_at or int(time.time()) + COUNTER_TTL_SECONDS
        charged = Decimal(0)
        for start in range(0, len(pending), RELEASE_CHUNK):
            chunk = pending[start : start + RELEASE_CHUNK]
            items_of = partial(self._charge_items, month, ttl, carried or {})
            charged += self._marked_chunk(chunk, list(scopes), items_of)
        return charged

    def uncharge_once(self, month: str, scopes: Collection[str], charges: Collection[Charge]) -> Decimal:
        return self._flip_charges(month, scopes, charges, give_back=True)

    def recharge_given_back(self, month: str, scopes: Collection[str], charges: Collection[Charge]) -> Decimal:
        return self._flip_charges(month, scopes, charges, give_back=False)

    def _flip_charges(
        self, month: str, scopes: Collection[str], charges: Collection[Charge], *, give_back: bool
    ) -> Decimal:
        """The markers of `charges` that are charged (`give_back`) or given back (not), read, then each noted the
        other way with the counters' change by its amount; returns the sum of the amounts flipped."""
        keys = {charge_key(c)["sk"]["S"]: c for c in charges}
        if not keys:
            return Decimal(0)
        found = batch_get(self._client(), self._table, [charge_key(c) for c in keys.values()])
        pending = [
            (keys[item["sk"]["S"]], Decimal(item["amount"]["N"]))
            for item in found
            if ("given_back" in item) is not give_back and Decimal(item["amount"]["N"])
        ]
        flipped = Decimal(0)
        for start in range(0, len(pending), RELEASE_CHUNK):
            chunk = pending[start : start + RELEASE_CHUNK]
            flipped += self._marked_chunk(chunk, list(scopes), partial(self._flip_items, month, give_back))
        return flipped

    def batch_charges(self, batch_id: str) -> list[ChargeMade]:
        made: list[ChargeMade] = []
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :charges)",
            "ExpressionAttributeValues": {":pk": {"S": f"B#{batch_id}"}, ":charges": {"S": CHARGE_SK_PREFIX}},
            "ConsistentRead": True,
        }
        while True:
            page = self._client().query(**query)
            made += [_charge_made(batch_id, item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return made
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _release_chunk(self, month: str, scopes: list[str], chunk: list[tuple[str, Decimal]], ttl: int) -> Decimal:
        return self._marked_chunk(chunk, scopes, partial(self._release_items, month, ttl))

    def _release_items(
        self, month: str, ttl: int, chunk: list[tuple[str, Decimal]], scopes: list[str], total: Decimal
    ) -> list[dict[str, Any]]:
        items = [self._release_marker(message_id, amount, month, ttl) for message_id, amount in chunk]
        return items + [self._counter_add(scope, month, -total) for scope in scopes]

    def _recharge_items(
        self, month: str, chunk: list[tuple[str, Decimal]], scopes: list[str], total: Decimal
    ) -> list[dict[str, Any]]:
        """Each release marker deleted only if there, and the sum added back to the counters that exist (a release
        gave back to those only). No limit: a redrive spends what the release made room for, the operator's call."""
        items: list[dict[str, Any]] = [
            {
                "Delete": {
                    "TableName": self._table,
                    "Key": release_key(message_id),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            }
            for message_id, _amount in chunk
        ]
        return items + [self._counter_add(scope, month, total) for scope in scopes]

    def _charge_items(
        self,
        month: str,
        ttl: int,
        carried: Mapping[Charge, Decimal],
        chunk: list[tuple[Charge, Decimal]],
        scopes: list[str],
        total: Decimal,
    ) -> list[dict[str, Any]]:
        markers = []
        for charge, amount in chunk:
            item = {
                **charge_key(charge),
                "amount": _number(amount),
                "month": {"S": month},
                "expires_at": {"N": str(ttl)},
            }
            if charge in carried:
                item["carried"] = _number(carried[charge])
            markers.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": item,
                        # Absent, or given back (a redrive of a resend that never reached its provider): made again.
                        "ConditionExpression": "attribute_not_exists(pk) OR given_back = :yes",
                        "ExpressionAttributeValues": {":yes": {"BOOL": True}},
                    }
                }
            )
        if total <= 0:  # a difference given back: only to counters that exist, as a release (none when zero)
            return markers + self._counter_changes(scopes, month, total)
        # Added to a counter that may not exist yet (accept priced nothing of this month for it, the first provider
        # had no price): created, with the expiry a reservation gives it.
        counter_ttl = _number(Decimal(int(time.time()) + COUNTER_TTL_SECONDS))
        return markers + [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": counter_key(scope, month),
                    "UpdateExpression": "ADD spent :amount SET expires_at = if_not_exists(expires_at, :ttl)",
                    "ExpressionAttributeValues": {":amount": _number(total), ":ttl": counter_ttl},
                }
            }
            for scope in scopes
        ]

    def _flip_items(
        self, month: str, give_back: bool, chunk: list[tuple[Charge, Decimal]], scopes: list[str], total: Decimal
    ) -> list[dict[str, Any]]:
        """Each marker noted given back (or charged again) only if it still holds the amount read and is in the
        state read (a concurrent flip, or a charge made again since with another amount, leaves it out), and the
        sum taken from (or added to) the counters that exist."""
        if give_back:
            update, condition = "SET given_back = :yes", "amount = :amount AND attribute_not_exists(given_back)"
        else:
            update, condition = "REMOVE given_back", "amount = :amount AND given_back = :yes"
        markers = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": charge_key(charge),
                    "UpdateExpression": update,
                    "ConditionExpression": condition,
                    "ExpressionAttributeValues": {":yes": {"BOOL": True}, ":amount": _number(amount)},
                }
            }
            for charge, amount in chunk
        ]
        return markers + self._counter_changes(scopes, month, -total if give_back else total)

    def _counter_changes(self, scopes: list[str], month: str, amount: Decimal) -> list[dict[str, Any]]:
        """The counters' changes of a chunk, none when its amounts cancel out (a counter's condition would refuse
        nothing, and DynamoDB need not be asked to add zero)."""
        return [self._counter_add(scope, month, amount) for scope in scopes] if amount else []

    def _counter_add(self, scope: str, month: str, amount: Decimal) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self._table,
                "Key": counter_key(scope, month),
                "UpdateExpression": "ADD spent :amount",
                "ConditionExpression": "attribute_exists(spent)",  # never a counter of its own: nothing was reserved
                "ExpressionAttributeValues": {":amount": _number(amount)},
            }
        }

    def _marked_chunk(
        self,
        chunk: list[tuple[Marked, Decimal]],
        scopes: list[str],
        items_of: Callable[[list[tuple[Marked, Decimal]], list[str], Decimal], list[dict[str, Any]]],
    ) -> Decimal:
        """One transaction of a marker write per message (`items_of`: the markers first, then one write per scope's
        counter), all or nothing; the messages or counters whose condition refused are left out and the rest tried
        again. Returns the total of the messages written."""
        conflicts = 0
        while chunk and scopes:
            total = sum((amount for _, amount in chunk), Decimal(0))
            items = items_of(chunk, scopes, total)
            try:
                self._client().transact_write_items(TransactItems=items)
                return total
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            refused = {i for i, reason in enumerate(reasons) if reason == "ConditionalCheckFailed"}
            if not refused:  # TransactionConflict: the same counters were busy
                conflicts += 1
                if conflicts > CONFLICT_RETRIES:
                    raise RuntimeError("spend release or charge lost to concurrent writers after retries")
                time.sleep(0.01 * 2**conflicts * random.uniform(0.5, 1.0))
                continue
            # A marker already there: released (or charged) before. A counter missing: nothing was reserved against
            # it (a charge that adds creates its counters: never refused for that).
            chunk, scopes = (
                [entry for i, entry in enumerate(chunk) if i not in refused],
                [scope for j, scope in enumerate(scopes) if len(chunk) + j not in refused],
            )
        return Decimal(0)

    def _release_marker(self, message_id: str, amount: Decimal, month: str, ttl: int) -> dict[str, Any]:
        item = {**release_key(message_id), "amount": _number(amount), "month": {"S": month}}
        item["expires_at"] = {"N": str(ttl)}
        return {"Put": {"TableName": self._table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}


def _charge_made(batch_id: str, item: dict[str, Any]) -> ChargeMade:
    seq, kind, provider = item["sk"]["S"].removeprefix(CHARGE_SK_PREFIX).split("#", 2)
    charge = Charge(message_id(batch_id, int(seq)), kind, provider)
    carried = Decimal(item["carried"]["N"]) if "carried" in item else None
    return ChargeMade(charge, Decimal(item["amount"]["N"]), carried, "given_back" in item)
