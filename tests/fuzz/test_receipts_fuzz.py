"""Delivery receipt pushes in each provider's own format (real, mutated, or anything at all), through the real
receipts handler against moto holding a few messages the reports may name.

Whatever the push: 200 with the provider's acknowledgement, or 400 `UNREADABLE_RECEIPTS` with a reason and
nothing written (never a 5xx, which would make the provider push again forever); every record still reads as a
record, with a status that only moved forward (a final one never changes) and a history matching its receipt
ids; held receipts are well-formed; status events go only to messages that asked, for the status they reached;
and the same push again changes nothing.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.domain.status import Status
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.records import BatchRecord, MessageRecord
from globesms.providers.aliyun import receipts as aliyun_receipts
from globesms.providers.huawei import receipts as huawei_receipts
from globesms.providers.tencent import receipts as tencent_receipts
from tests.fuzz.harness import (
    RECEIPT_TOKENS,
    FuzzStack,
    Observed,
    assert_refusal_explained,
    fuzz_settings,
    refusal_of,
)
from tests.fuzz.strategies import receipt_push

EVENTS = Path(__file__).resolve().parents[2] / "events"
BATCH = "01JDFUZZBATCH0000000000000"
CALLBACK = "https://hooks.example.com/sms"
NOW = "2026-11-26T10:00:00.000000Z"
ACKS = {
    ProviderName.ALIYUN: aliyun_receipts.ACK,
    ProviderName.TENCENT: tencent_receipts.ACK,
    ProviderName.HUAWEI: huawei_receipts.ACK,
}


def seeded_messages(provider: ProviderName) -> list[MessageRecord]:
    """A message submitted with a provider id, one whose send had an unknown outcome (no provider id: its receipt
    is found through our echoed id), and one already delivered (final: no receipt may change it)."""
    common: dict[str, Any] = {
        "batch_id": BATCH,
        "provider": provider,
        "type": MessageType.NOTIFY,
        "text": "hi",
        "status_callback": CALLBACK,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return [
        MessageRecord(
            id=f"{BATCH}.00000", to="+85251234567", status=Status.SUBMITTED, provider_message_id="pm-0", **common
        ),
        MessageRecord(id=f"{BATCH}.00001", to="+6591234567", status=Status.SENDING, **common),
        MessageRecord(
            id=f"{BATCH}.00002", to="+447911123456", status=Status.DELIVERED, provider_message_id="pm-2", **common
        ),
    ]


MESSAGE_IDS = [f"{BATCH}.{seq:05d}" for seq in range(3)] + [f"{BATCH}.00007", "other-system-ref", f"{BATCH}.x"]
PROVIDER_IDS = ["pm-0", "pm-1", "pm-2", "pm-unknown"]


def seed(fuzz_stack: FuzzStack, provider: ProviderName) -> dict[tuple[str, str], dict[str, Any]]:
    fuzz_stack.clear()
    store = DynamoDBMessageStore(fuzz_stack.stack.table_name)
    store.finish_batch(BatchRecord(batch_id=BATCH, source="api", state="QUEUED", created_at=NOW, accepted=3))
    store.put_messages(seeded_messages(provider))
    return fuzz_stack.observe().items


def push_event(provider: ProviderName, token: str, body: bytes, content_type: str) -> dict[str, Any]:
    request: dict[str, Any] = json.loads((EVENTS / f"receipts_{provider.value}.json").read_text())
    request["path"] = f"/v1/receipts/{provider.value}/{token}"
    request["pathParameters"] = {"provider": provider.value, "token": token}
    request["requestContext"]["path"] = "/dev" + request["path"]
    headers = {"content-type": content_type, "Host": "127.0.0.1:3000"}
    request["headers"], request["multiValueHeaders"] = headers, {k: [v] for k, v in headers.items()}
    try:
        request["body"], request["isBase64Encoded"] = body.decode("utf-8"), False
    except UnicodeDecodeError:
        request["body"], request["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return request


def check_push(provider: ProviderName, response: dict[str, Any], before: dict[Any, Any], seen: Observed) -> None:
    status = response["statusCode"]
    assert status in (200, 400), f"HTTP {status}: {response.get('body')}"
    if status == 400:
        refusal = refusal_of(response)
        event(f"HTTP 400 {refusal.code}")
        assert refusal.code == "UNREADABLE_RECEIPTS"
        assert_refusal_explained(refusal)
        assert seen.items == before and not seen.webhooks, "an unreadable push wrote something"
        return
    assert json.loads(response["body"]) == ACKS[provider]
    assert not seen.unknown and not any(seen.packs.values())
    assert set(seen.headers) == {BATCH} and before[(f"B#{BATCH}", "#")] == seen.items[(f"B#{BATCH}", "#")]
    old = {r.id: r for r in seeded_messages(provider)}
    records = {r.id: r for r in seen.messages[BATCH]}
    assert set(records) == set(old), "a receipt created or removed a message"
    for message_id, record in records.items():
        was = old[message_id]
        assert record.status.rank >= was.status.rank, f"{message_id} went back from {was.status} to {record.status}"
        assert not was.status.is_final or record.status is was.status, f"final {message_id} became {record.status}"
        receipts = [e for e in record.events or [] if e.get("type") == "receipt"]
        ids = [e["id"] for e in receipts]
        assert len(ids) == len(set(ids)), f"{message_id}: a receipt applied twice"
        assert set(ids) == (record.receipt_ids or set()), f"{message_id}: history and receipt ids disagree"
        if record.status is not was.status:
            event(f"{was.status.value} -> {record.status.value}")
    for pk, held in seen.held.items():
        assert pk.startswith(f"R#{provider.value}#") and held.get("provider") == provider.value
        ids = [e["id"] for e in held.get("events", [])]
        assert ids and len(ids) == len(set(ids)) and set(ids) == set(held.get("receipt_ids", ())), f"held {pk}"
        assert all(e.get("type") == "receipt" and e.get("raw_status") for e in held["events"])
    if seen.held:
        event("receipts held")
    # A hold mark only beside a held receipt: of this batch (the echo named its message), or of the provider.
    assert set(seen.hold_marks) <= {f"H#batch#{BATCH}", f"H#provider#{provider.value}"}, seen.hold_marks
    assert not seen.hold_marks or seen.held, "a hold mark without a held receipt"
    for delivery in seen.webhooks:
        message_id = delivery.event.message["id"]
        record = records[message_id]
        assert delivery.url == CALLBACK and record.status.is_final
        assert delivery.event.id == f"{message_id}.{record.status.value.lower()}"


@pytest.mark.parametrize("provider", list(ProviderName))
@fuzz_settings(30)
@given(data=st.data())
def test_any_receipt_push_is_acknowledged_or_refused_and_only_moves_statuses_forward(  # type: ignore[no-untyped-def]
    fuzz_stack: FuzzStack, receipts, lambda_context, provider: ProviderName, data: st.DataObject
) -> None:
    body, content_type = data.draw(receipt_push(provider.value, MESSAGE_IDS, PROVIDER_IDS), label="push")
    before = seed(fuzz_stack, provider)
    request = push_event(provider, RECEIPT_TOKENS[provider.value], body, content_type)
    response = receipts.lambda_handler(copy.deepcopy(request), lambda_context)
    seen = fuzz_stack.observe()
    check_push(provider, response, before, seen)

    again = receipts.lambda_handler(copy.deepcopy(request), lambda_context)
    assert again["statusCode"] == response["statusCode"], again["body"]
    repeated = fuzz_stack.observe()
    assert repeated.items == seen.items, "the same push again changed the table"


@pytest.mark.parametrize("provider", list(ProviderName))
@fuzz_settings(10)
@given(data=st.data())
def test_a_push_with_a_wrong_token_is_refused_and_nothing_is_read(  # type: ignore[no-untyped-def]
    fuzz_stack: FuzzStack, receipts, lambda_context, provider: ProviderName, data: st.DataObject
) -> None:
    right = RECEIPT_TOKENS[provider.value]
    # Tokens the route matches (API Gateway routes no other path to the function): letters, digits, "-", "_".
    tokens = st.sampled_from(["x", right + "x", right[:-1], right.upper(), "ключ-" + right]) | st.text(
        alphabet=st.characters(categories=["L", "N"], include_characters="-_"), min_size=1, max_size=40
    )
    token = data.draw(tokens.filter(lambda t: t != right))
    body, content_type = data.draw(receipt_push(provider.value, MESSAGE_IDS, PROVIDER_IDS))
    before = seed(fuzz_stack, provider)
    response = receipts.lambda_handler(push_event(provider, token, body, content_type), lambda_context)
    assert response["statusCode"] == 403
    assert refusal_of(response).code == "FORBIDDEN"
    seen = fuzz_stack.observe()
    assert seen.items == before and not seen.webhooks
