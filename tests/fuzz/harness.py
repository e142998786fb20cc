"""What the fuzz tests share: their hypothesis settings, and everything the handlers left in the moto stack.

Each example starts by emptying the tables and queues, and ends by reading back all the handler wrote: examples
stay independent, so a failure shrinks to one input, and "nothing written" is an exact check.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from pydantic import ValidationError

from globesms.aws import dynamodb_otp as otp
from globesms.aws import dynamodb_spend as spend
from globesms.aws.message_items import HEADER_SK, batch_from_item, from_item, message_from_item
from globesms.domain.status import Status
from globesms.models.errors import ErrorBody
from globesms.models.outbound import ProviderName
from globesms.models.packs import DispatchPack
from globesms.models.records import MAX_STORED_ERRORS, BatchRecord, MessageRecord, split_message_id
from globesms.models.webhooks import WebhookDelivery
from tests.integration.conftest import MotoStack

EXAMPLES_ENV = "GLOBESMS_FUZZ_EXAMPLES"
RECEIPT_TOKENS = {  # GLOBESMS_<PROVIDER>_RECEIPT_TOKEN of the receipts handler under test
    "aliyun": "local-aliyun-receipts-0001",
    "tencent": "local-tencent-receipts-0001",
    "huawei": "local-huawei-receipts-0001",
}


def fuzz_settings(default_examples: int) -> settings:
    """`default_examples` in `make test`; GLOBESMS_FUZZ_EXAMPLES examples per test when set (the soak).

    The small run is derandomized, so `make test` is repeatable and never fails on a draw CI has not seen before;
    the soak draws afresh every run. No example database: nothing is carried between runs but the code.
    """
    wanted = os.environ.get(EXAMPLES_ENV, "").strip()
    return settings(
        max_examples=int(wanted) if wanted else default_examples,
        derandomize=not wanted,
        deadline=None,
        database=None,
        print_blob=True,
        # One moto stack per test, emptied between examples (see FuzzStack), is what makes examples independent.
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@dataclass
class Observed:
    """Everything in the stack's tables and queues at one moment."""

    items: dict[tuple[str, str], dict[str, Any]]  # the messages table, item by (pk, sk), as stored
    idempotency_items: list[dict[str, Any]]
    packs: dict[ProviderName, list[DispatchPack]]
    webhooks: list[WebhookDelivery]
    headers: dict[str, BatchRecord] = field(default_factory=dict)
    messages: dict[str, list[MessageRecord]] = field(default_factory=dict)  # by batch id
    held: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # held receipts by pk (and sk, when held for a message)
    hold_marks: dict[str, int] = field(default_factory=dict)  # when a receipt was last held, by mark pk
    held_packs: list[DispatchPack] = field(default_factory=list)  # packs of scheduled sends, held until send_at
    unknown: list[tuple[str, str]] = field(default_factory=list)  # keys of items of no known kind

    @property
    def empty(self) -> bool:
        return not (self.items or self.idempotency_items or any(self.packs.values()) or self.webhooks)

    def describe(self) -> str:
        packs = {p.value: len(v) for p, v in self.packs.items() if v}
        return (
            f"items={sorted(self.items)} idempotency={len(self.idempotency_items)} packs={packs} "
            f"webhooks={len(self.webhooks)}"
        )


class FuzzStack:
    """The moto stack of `tests/integration/conftest.py`, read back and emptied between examples."""

    def __init__(self, stack: MotoStack) -> None:
        self.stack = stack
        refs = stack.deployed.context.refs
        self.idempotency_table: str = refs["IdempotencyTable"]
        self.webhook_queue: str = refs["WebhookQueue"]

    def observe(self) -> Observed:
        """Reads both tables and drains every queue a handler writes to (so the next look sees only new writes).
        Every queued body must parse as what its consumer reads: anything else would poison that queue."""
        items = {(i["pk"]["S"], i["sk"]["S"]): i for i in self._scan(self.stack.table_name)}
        packs = {
            provider: [DispatchPack.model_validate_json(body) for body in self._drain(url)]
            for provider, url in self.stack.queue_urls.items()
        }
        webhooks = [WebhookDelivery.model_validate_json(body) for body in self._drain(self.webhook_queue)]
        seen = Observed(
            items=items, idempotency_items=self._scan(self.idempotency_table), packs=packs, webhooks=webhooks
        )
        for (pk, sk), item in items.items():
            if pk.startswith("B#") and sk == HEADER_SK:
                header = batch_from_item(item)
                assert pk == f"B#{header.batch_id}", f"header {pk} names batch {header.batch_id}"
                seen.headers[header.batch_id] = header
            elif pk.startswith("B#") and sk.startswith("M#"):
                record = message_from_item(item)
                assert (pk, sk) == (f"B#{record.batch_id}", f"M#{_seq(record.id):05d}"), f"{pk}/{sk} holds {record.id}"
                seen.messages.setdefault(record.batch_id, []).append(record)
            elif pk.startswith("R#") and sk in ("#", "#message"):  # under a provider id, or for a message
                seen.held[pk if sk == "#" else f"{pk}/{sk}"] = from_item(item)
            elif pk.startswith("H#") and sk == "#":
                seen.hold_marks[pk] = int(item["held_at"]["N"])
            elif pk.startswith("S#") and "pack" in item:
                seen.held_packs.append(DispatchPack.model_validate_json(item["pack"]["S"]))
            elif not _accept_bookkeeping(pk, sk):
                seen.unknown.append((pk, sk))
        return seen

    def clear(self) -> None:
        for table, key_names in ((self.stack.table_name, ("pk", "sk")), (self.idempotency_table, ("id",))):
            keys = [{name: item[name] for name in key_names} for item in self._scan(table)]
            for start in range(0, len(keys), 25):  # BatchWriteItem's limit
                deletes = [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]
                self.stack.dynamodb.batch_write_item(RequestItems={table: deletes})
        for url in (*self.stack.queue_urls.values(), self.webhook_queue):
            for _ in self._drain(url):
                pass

    def _scan(self, table: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            page = self.stack.dynamodb.scan(**kwargs)
            items.extend(page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _drain(self, url: str) -> Iterator[str]:
        while True:
            messages = self.stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return
            for message in messages:
                yield message["Body"]
            self.stack.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )


def _accept_bookkeeping(pk: str, sk: str) -> bool:
    """The items accept keeps beside the records: spend counters and a batch's reservation marker (guardrails), OTP
    counters per number and per country and a batch's OTP markers, held packs of scheduled sends and their minute
    index. Known kinds, not half-written records (their own tests check them)."""
    if pk.startswith("B#"):
        return sk == spend.MARKER_SK or sk.startswith((spend.RELEASE_SK_PREFIX, f"{otp.SK}#"))
    if pk.startswith(("V#", "P#")):
        return sk == otp.SK
    if pk.startswith("S#"):
        return sk == spend.COUNTER_SK or "#" in sk  # a spend counter, or a held pack (`<send_at>#<pack id>`)
    return pk.startswith("SCHED#")  # the scheduled sends' minute index and its cursor


def _seq(message_id: str) -> int:
    parts = split_message_id(message_id)
    assert parts is not None, f"malformed message id {message_id!r}"
    return parts[1]


# ------------------------------------------------------------------------------------------------- properties


def assert_accepts_consistent(seen: Observed) -> None:
    """What accept (API or intake) must leave, whatever the input: no batch half-written.

    Every header is final (QUEUED or REJECTED, never ACCEPTING); a QUEUED batch has exactly `accepted` records, each
    ACCEPTED or SCHEDULED (a marketing recipient inside quiet hours at the wall clock's time is held to their end, so
    which of the two depends on the hour the test runs); a REJECTED one has none; the packs on the provider queues hold
    exactly the ACCEPTED recipients and the held packs exactly the SCHEDULED ones, each once, on its record's
    provider; a refused body names a code and a reason."""
    assert not seen.unknown, f"items of no known kind: {seen.unknown}"
    assert not seen.held and not seen.webhooks, "accept wrote receipts or status events"
    assert set(seen.messages) <= set(seen.headers), f"records without a batch header: {seen.describe()}"
    for batch_id, header in seen.headers.items():
        records = seen.messages.get(batch_id, [])
        assert header.state != "ACCEPTING", f"batch {batch_id} left half-written (ACCEPTING)"
        assert len(header.errors) == min(header.rejected, MAX_STORED_ERRORS)
        if header.state == "QUEUED":
            assert header.refusal is None and header.accepted >= 1
            assert len(records) == header.accepted, (
                f"batch {batch_id}: {len(records)} records, {header.accepted} accepted"
            )
            assert {r.status for r in records} <= {Status.ACCEPTED, Status.SCHEDULED}
            assert all(r.send_at is not None for r in records if r.status is Status.SCHEDULED)
        else:
            assert records == [] and header.accepted == 0, f"REJECTED batch {batch_id} has records"
            if header.refusal is not None:
                assert_refusal_explained(header.refusal)
    # Each recipient once, to its number, with the content its record says was accepted: the ACCEPTED ones on their
    # provider's queue, the SCHEDULED ones in a held pack of their provider.
    for provider, packs in seen.packs.items():
        assert all(p.provider is provider for p in packs), f"a pack of another provider on the {provider} queue"
    queued = [pack for packs in seen.packs.values() for pack in packs]
    records = [r for batch in seen.messages.values() for r in batch]
    assert _pack_recipients(queued) == _record_recipients(records, Status.ACCEPTED), (
        "the queued packs do not cover exactly the ACCEPTED recipients"
    )
    assert _pack_recipients(seen.held_packs) == _record_recipients(records, Status.SCHEDULED), (
        "the held packs do not cover exactly the SCHEDULED recipients"
    )


def _pack_recipients(packs: list[DispatchPack]) -> dict[str, tuple[Any, ...]]:
    found: dict[str, tuple[Any, ...]] = {}
    for pack in packs:
        for recipient in pack.recipients:
            assert recipient.id not in found, f"{recipient.id} packed twice"
            content = pack.contents[recipient.c].content_key()
            found[recipient.id] = (pack.provider, pack.batch_id, recipient.to, content)
    return found


def _record_recipients(records: list[MessageRecord], status: Status) -> dict[str, tuple[Any, ...]]:
    return {r.id: (r.provider, r.batch_id, r.to, r.content_key()) for r in records if r.status is status}


def assert_refusal_explained(refusal: ErrorBody) -> None:
    assert refusal.code.strip() and refusal.message.strip(), f"a refusal without a reason: {refusal}"
    if refusal.code == "VALIDATION_ERROR":
        assert refusal.fields, f"a validation error that names no field: {refusal}"
    for detail in refusal.fields:
        # The field is named as the client sent it, even a key of blanks ("\t" is a field the body had).
        assert detail.field and detail.rule.strip(), f"a field error without field or rule: {refusal}"


def refusal_of(response: dict[str, Any]) -> ErrorBody:
    """The `{"error": ...}` of a refused request, which must have that shape."""
    body = json.loads(response["body"])
    assert set(body) == {"error"}, f"a refusal not shaped {{'error': ...}}: {body}"
    try:
        # Validated as the JSON it is: strict, yet a code may be the string of a RefusalCode.
        return ErrorBody.model_validate_json(json.dumps(body["error"]), strict=True)
    except ValidationError as exc:
        raise AssertionError(f"malformed refusal {body}: {exc}") from None
