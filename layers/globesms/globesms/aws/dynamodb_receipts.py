"""`ReceiptStore` on the messages table.

Held receipts (no submitted message takes them yet) live in their own items, with the events, the set of receipt
ids (dedupe) and, when held for a known message, its id: `pk = R#<provider>#<provider id>`, `sk = #` under a
provider id; `pk = R#<provider>#<message id>`, `sk = #message` for a message the echo named. The sort keys keep the
two apart: no provider id a push spells names a message's held receipts. A held item keeps at most MAX_HELD_EVENTS
events (a later receipt is acknowledged but not kept) and expires with the records (the table's TTL attribute
`expires_at`, `retention_days` after its latest receipt).

Until December 2026 a receipt held for a message was kept under the provider id `msg:<message id>` (`sk = #`), the
very key a receipt whose provider id is spelled so was held under. Such items (they carry `message_id`) are still
read for their message until the last of them expires, one retention period after the deploy (LEGACY_HELD_PREFIX:
remove it then); a receipt held under a provider id never joins one (`hold_receipt`).

When a receipt is newly held, the time is noted in a hold mark: `pk = H#batch#<batch id>` when the echo named the
message, else `pk = H#provider#<provider>`, `sk = #`, `held_at` only ever raised. Dispatch reads a pack's two marks
(`holds_since`, one request) and looks for held receipts only when one is newer than the pack: a pack of 1,000
otherwise asked for 2,000 held items (two keys a recipient, three while LEGACY_HELD_PREFIX items may exist) that
are nearly never there.

A message resent after an UNDELIVERED receipt (`receipts.failover`) leaves an alias of its first attempt:
`pk = A#<provider>#<provider id>`, `sk = #`, naming the message, so late receipts of that attempt still find it
(its ProviderRef entry now names the second attempt). The resend and the alias are one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from botocore.exceptions import ClientError

from globesms.aws import clients
from globesms.aws.batch_reads import batch_get
from globesms.aws.conditions import condition_failed, written
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.aws.message_items import (
    batch_pk,
    from_item,
    message_from_item,
    message_id_of_keys,
    message_item,
    message_sk,
    serializer,
)
from globesms.models.outbound import ProviderName
from globesms.models.receipts import EchoRange, HeldReceipts
from globesms.models.records import MessageRecord, split_message_id

HELD_SK = "#"
HELD_FOR_MESSAGE_SK = "#message"
LEGACY_HELD_PREFIX = "msg:"  # the provider id receipts held for a message had before HELD_FOR_MESSAGE_SK
MAX_HELD_EVENTS = 100  # as receipts.history.MAX_EVENTS_KEPT: one item stays far below DynamoDB's 400 KB
LAST_SEQ = 99_999  # message ids number a batch's recipients from 0; a batch has at most 10,000
RECIPIENT_LOOKUP_LIMIT = 100  # index entries read for one echoed receipt: the number's latest messages


def held_pk(provider: ProviderName, provider_message_id: str) -> str:
    return f"R#{provider}#{provider_message_id}"


def held_item_key(provider: ProviderName, provider_message_id: str | None, message_id: str | None) -> dict[str, Any]:
    """The item of receipts held for `message_id` when given, else under `provider_message_id`."""
    if message_id is not None:
        return {"pk": {"S": held_pk(provider, message_id)}, "sk": {"S": HELD_FOR_MESSAGE_SK}}
    assert provider_message_id is not None
    return {"pk": {"S": held_pk(provider, provider_message_id)}, "sk": {"S": HELD_SK}}


def hold_mark_key(provider: ProviderName, batch_id: str | None) -> dict[str, Any]:
    """The hold mark of a batch, or (None) of the provider's receipts held for messages not known yet."""
    pk = f"H#batch#{batch_id}" if batch_id is not None else f"H#provider#{provider}"
    return {"pk": {"S": pk}, "sk": {"S": HELD_SK}}


def earlier_attempt_pk(provider: ProviderName, provider_message_id: str) -> str:
    return f"A#{provider}#{provider_message_id}"


def _value(value: Any) -> Any:
    return serializer().serialize(value)


class DynamoDBReceiptStore:
    def __init__(
        self,
        table_name: str,
        client_factory: Callable[[], Any] = clients.dynamodb,
        *,
        retention_days: int = 90,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table_name
        self._client = client_factory
        self._records = DynamoDBMessageStore(table_name, client_factory)
        self._retention_seconds = retention_days * 86_400
        self._clock = clock  # the hold marks' time
        self._marks_second = 0  # the second of `_marks_raised`: the hold marks this process raised in it
        self._marks_raised: set[str] = set()

    def message_for_provider_ref(self, provider: ProviderName, provider_message_id: str) -> MessageRecord | None:
        found = self.message_id_for_provider_ref(provider, provider_message_id)
        return None if found is None else self.reload(found)

    def message_id_for_provider_ref(self, provider: ProviderName, provider_message_id: str) -> str | None:
        keys = (
            self._client()
            .query(
                TableName=self._table,
                IndexName="ProviderRef",
                KeyConditionExpression="provider_ref = :r",
                ExpressionAttributeValues={":r": {"S": f"{provider}#{provider_message_id}"}},
                Limit=1,
            )
            .get("Items", [])
        )
        return message_id_of_keys(keys[0]) if keys else None

    def read_messages(self, message_ids: Sequence[str]) -> dict[str, MessageRecord]:
        return self._records.get_messages(message_ids)

    def find_recipients(self, echo: EchoRange, to: str | None) -> list[MessageRecord]:
        if to is None:  # an echo alone is guessable: the number must match too
            return []
        if echo.first_seq > LAST_SEQ:
            # No message of ours: and `BETWEEN M#<first> AND M#99999` would then have its bounds the wrong way round
            # as strings, which DynamoDB refuses (a 5xx for the whole push, every time it came; a review).
            return []
        if echo.first_seq == echo.last_seq:
            record = self._get(batch_pk(echo.batch_id), message_sk(echo.first_seq))
            return [record] if record is not None and record.to == to else []
        # A call's recipients are not consecutive message ids (a batch mixes providers, a pack is split into calls
        # by content): the message sent to `to` in this batch from the echoed first id on. Found through the
        # Recipient index (the number's messages, newest first, keys only) rather than the batch partition, so the
        # cost does not grow with the batch: a receipt that beats its SUBMITTED write is matched in O(1) reads.
        response = self._client().query(
            TableName=self._table,
            IndexName="Recipient",
            KeyConditionExpression="#to = :to",
            FilterExpression="pk = :pk AND sk BETWEEN :first AND :last",
            ExpressionAttributeNames={"#to": "to"},
            ExpressionAttributeValues={
                ":to": {"S": to},
                ":pk": {"S": batch_pk(echo.batch_id)},
                ":first": {"S": message_sk(echo.first_seq)},
                ":last": {"S": message_sk(LAST_SEQ)},
            },
            ScanIndexForward=False,
            Limit=RECIPIENT_LOOKUP_LIMIT,
        )
        # Past the number's latest RECIPIENT_LOOKUP_LIMIT messages the receipt stays held under its provider id
        # (unmatched, for reconciliation): a batch that old has long been submitted and found by ProviderRef.
        # The index orders by `created_at`, the same for every message of a batch, so which of a number's messages
        # in it comes first there is arbitrary: they are ordered by id (zero-padded, so as text) and read together.
        ids = sorted(message_id_of_keys(item) for item in response.get("Items", []))
        found = self.read_messages(ids) if ids else {}
        return [found[message] for message in ids if message in found]

    def reload(self, message_id: str) -> MessageRecord | None:
        parts = split_message_id(message_id)
        return None if parts is None else self._get(batch_pk(parts[0]), message_sk(parts[1]))

    def save_delivery(self, record: MessageRecord, *, expected_version: int) -> bool:
        values: dict[str, Any] = {
            ":status": record.status.value,
            ":events": record.events or [],
            ":version": record.version,
            ":updated": record.updated_at,
            ":expected": expected_version,
        }
        sets = [
            "#status = :status",
            "events = :events",
            "version = :version",
            "updated_at = :updated",
        ]
        optional = {
            "receipt_ids": set(record.receipt_ids) if record.receipt_ids else None,  # DynamoDB has no empty sets
            "events_omitted": record.events_omitted,
            "provider_message_id": record.provider_message_id,
            "provider_ref": f"{record.provider}#{record.provider_message_id}" if record.provider_message_id else None,
            "error_category": record.error_category,
            "error_code": record.error_code,
            "error_message": record.error_message,
        }
        removes = [name for name in ("error_category", "error_code", "error_message") if optional[name] is None]
        for name, value in optional.items():
            if value is not None:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value
        parts = split_message_id(record.id)
        assert parts is not None
        return written(
            self._client().update_item,
            TableName=self._table,
            Key={"pk": {"S": batch_pk(parts[0])}, "sk": {"S": message_sk(parts[1])}},
            UpdateExpression="SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else ""),
            ConditionExpression="version = :expected OR (attribute_not_exists(version) AND :expected = :zero)"
            if expected_version == 0
            else "version = :expected",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={k: _value(v) for k, v in values.items()}
            | ({":zero": {"N": "0"}} if expected_version == 0 else {}),
        )

    def hold_receipt(
        self, provider: ProviderName, provider_message_id: str, event: dict[str, Any], message_id: str | None
    ) -> bool:
        sets = [
            "events = list_append(if_not_exists(events, :empty), :event)",
            "provider = :provider",
            "expires_at = :expires",
        ]
        values: dict[str, Any] = {
            ":empty": [],
            ":event": [event],
            ":provider": provider.value,
            ":id": {event["id"]},
            ":rid": event["id"],
            ":expires": int(time.time()) + self._retention_seconds,
            ":max": MAX_HELD_EVENTS,
        }
        # A repeat, or an item already full: nothing is kept (the push is still acknowledged).
        condition = "NOT contains(receipt_ids, :rid) AND (attribute_not_exists(events) OR size(events) < :max)"
        if message_id is not None:
            sets.append("message_id = :message")
            values[":message"] = message_id
        else:
            # Nor into a legacy item held for a message (a provider id spelled `msg:<message id>`): it would be
            # applied to that message (LEGACY_HELD_PREFIX).
            condition += " AND attribute_not_exists(message_id)"
        try:
            self._client().update_item(
                TableName=self._table,
                Key=held_item_key(provider, provider_message_id, message_id),
                UpdateExpression="SET " + ", ".join(sets) + " ADD receipt_ids :id",
                ConditionExpression=condition,
                ExpressionAttributeValues={k: _value(v) for k, v in values.items()},
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False  # a repeat: nothing written, the mark was raised when it was first held
            raise
        parts = split_message_id(message_id) if message_id is not None else None
        self._mark_hold(provider, parts[0] if parts is not None else None)
        return True

    def _mark_hold(self, provider: ProviderName, batch_id: str | None) -> None:
        """Raises the hold mark to now, once the receipt is held and before the receipt handler's re-read of the
        message (`receipts.apply`): a dispatcher that reads the mark after its SUBMITTED write either sees it, and
        finds the held receipt, or read it before it was raised, so its write came before that re-read, which
        then finds the record. Only a new hold raises it, so a repeated push writes nothing. Should this write
        fail after the hold, the push fails and its retry is a repeat: the receipt then waits for the
        reconciliation of its message if the dispatcher skips it (receipt deadlines: every message ends)."""
        now = int(self._clock())
        key = hold_mark_key(provider, batch_id)
        pk = key["pk"]["S"]
        if now != self._marks_second:
            self._marks_second, self._marks_raised = now, set()
        if pk in self._marks_raised:
            # Raised by this process this second already: the provider's mark is one item that every unmatched
            # receipt raises, so a push of 50 (or a storm of them) writes it at most once a second per process.
            return
        try:
            self._client().update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET held_at = :now, expires_at = :expires",
                ConditionExpression="attribute_not_exists(held_at) OR held_at < :now",  # never lowered
                ExpressionAttributeValues={
                    ":now": {"N": str(now)},
                    ":expires": {"N": str(now + self._retention_seconds)},
                },
            )
        except ClientError as exc:
            if not condition_failed(exc):  # raised already this second: nothing to do
                raise
        self._marks_raised.add(pk)

    def holds_since(self, provider: ProviderName, batch_ids: Collection[str], since: int) -> bool:
        keys = [hold_mark_key(provider, batch_id) for batch_id in sorted(set(batch_ids))]
        keys.append(hold_mark_key(provider, None))
        return any(int(item["held_at"]["N"]) >= since for item in batch_get(self._client(), self._table, keys))

    def held_receipts(
        self, provider: ProviderName, message_ids: Sequence[str], provider_message_ids: Sequence[str]
    ) -> HeldReceipts:
        held = HeldReceipts({}, {})
        legacy = [LEGACY_HELD_PREFIX + message for message in message_ids]
        wanted = [held_item_key(provider, None, message) for message in message_ids] + [
            held_item_key(provider, name, None) for name in dict.fromkeys([*provider_message_ids, *legacy])
        ]
        prefix, asked = len(held_pk(provider, "")), set(provider_message_ids)
        for item in batch_get(self._client(), self._table, wanted):
            data = from_item(item)
            name, events = data["pk"][prefix:], list(data.get("events", []))
            if data["sk"] == HELD_FOR_MESSAGE_SK:
                held.for_messages.setdefault(name, []).extend(events)
            elif "message_id" in data:  # legacy, held for a message: only such a hold ever wrote the attribute
                held.for_messages.setdefault(data["message_id"], []).extend(events)
            elif name in asked:  # not a legacy key read for a message that held nothing there
                held.by_provider_id[name] = events
        return held

    def start_resend(self, record: MessageRecord, *, expected_version: int, earlier: MessageRecord) -> bool:
        if earlier.provider_message_id is None:
            return False
        parts = split_message_id(record.id)
        assert parts is not None
        # The whole record is put (the next provider, its content, no provider id: off the ProviderRef index, no
        # receipt deadline until it is submitted again) only while the stored one is the version read and still
        # on the first attempt.
        version_matches = (
            "(version = :expected OR attribute_not_exists(version))" if expected_version == 0 else "version = :expected"
        )
        alias: dict[str, Any] = {
            "pk": {"S": earlier_attempt_pk(earlier.provider, earlier.provider_message_id)},
            "sk": {"S": HELD_SK},
            "message_id": {"S": record.id},
        }
        if record.expires_at is not None:
            alias["expires_at"] = {"N": str(record.expires_at)}
        try:
            self._client().transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": message_item(record),
                            "ConditionExpression": f"{version_matches} AND provider = :provider AND "
                            "provider_message_id = :pmid",
                            "ExpressionAttributeValues": {
                                ":expected": {"N": str(expected_version)},
                                ":provider": {"S": earlier.provider.value},
                                ":pmid": {"S": earlier.provider_message_id},
                            },
                        }
                    },
                    {"Put": {"TableName": self._table, "Item": alias}},
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise
        return True

    def message_for_earlier_attempt(self, provider: ProviderName, provider_message_id: str) -> MessageRecord | None:
        item = (
            self._client()
            .get_item(
                TableName=self._table,
                Key={"pk": {"S": earlier_attempt_pk(provider, provider_message_id)}, "sk": {"S": HELD_SK}},
                ConsistentRead=True,
            )
            .get("Item")
        )
        return self.reload(item["message_id"]["S"]) if item else None

    def _get(self, pk: str, sk: str) -> MessageRecord | None:
        item = (
            self._client()
            .get_item(TableName=self._table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True)
            .get("Item")
        )
        return message_from_item(item) if item else None
