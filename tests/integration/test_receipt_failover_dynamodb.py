"""Receipt-driven failover against moto, with the table and queues of template.yaml: concurrent and duplicated
UNDELIVERED receipts claim one resend, whose packs (however many are queued) the pack claims send once; late
receipts of the first attempt find the message through its alias."""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from globesms.accept.service import accept
from globesms.api.resolver import openapi_document
from globesms.aws.dynamodb_claims import DynamoDBPackClaims
from globesms.aws.dynamodb_receipts import DynamoDBReceiptStore
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.aws.sqs_queues import SqsPackQueues
from globesms.dispatch.service import DispatchDeps, dispatch_pack
from globesms.domain.clock import iso
from globesms.domain.history import RECEIPT_FAILOVER_STEP as RESEND_STEP
from globesms.domain.status import Status
from globesms.models.api import MessageSpec
from globesms.models.outbound import ProviderName
from globesms.models.packs import DispatchPack
from globesms.models.receipts import DeliveryReport
from globesms.models.records import MessageRecord
from globesms.receipts.apply import PushResult, record_push
from globesms.receipts.failover import queue_resends
from tests.fakes import MemoryQueues, MemoryWebhooks, ScriptedProvider
from tests.integration.test_dynamodb_rate_limiter import Serialized

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
EVENTS = Path(__file__).resolve().parents[2] / "events"
A, T = ProviderName.ALIYUN, ProviderName.TENCENT


def submitted(stack) -> DynamoDBReceiptStore:  # type: ignore[no-untyped-def]
    """The message SUBMITTED on aliyun; a receipt store whose DynamoDB calls are atomic, as DynamoDB's are (moto
    in-process takes no lock: `Serialized`), the pushes still interleaving between calls."""
    record = MessageRecord.model_validate(
        {
            "id": "B.00000",
            "batch_id": "B",
            "to": "+6591234567",
            "provider": "aliyun",
            "type": "OTP",
            "text": "code 123456",
            "route": ["aliyun", "tencent", "huawei"],
            "status": "SUBMITTED",
            "provider_message_id": "ali-1",
            "status_callback": "https://hooks.example.com/sms",
            "created_at": "2026-12-04T09:59:00+00:00",
            "updated_at": "2026-12-04T09:59:00+00:00",
            "submitted_at": "2026-12-04T09:59:01+00:00",
            "expires_at": 1_900_000_000,
        }
    )
    DynamoDBMessageStore(stack.table_name).put_messages([record])
    client = Serialized(stack.dynamodb)
    return DynamoDBReceiptStore(stack.table_name, lambda: client)


def report(provider: ProviderName, pmid: str, status: Status, code: str, at: str) -> DeliveryReport:
    return DeliveryReport(
        provider=provider,
        provider_message_id=pmid,
        status=status,
        raw_status=code,
        error_code=code,
        to="+6591234567",
        provider_time=at,
    )


def test_concurrent_duplicate_receipts_claim_one_resend_sent_once(stack) -> None:  # type: ignore[no-untyped-def]
    receipts = submitted(stack)
    # The same receipt pushed 6 times, and 2 distinct route-failure reports, all at once.
    reports = [report(A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", "t1")] * 6 + [
        report(A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", f"t{n}") for n in (2, 3)
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results: list[PushResult] = list(pool.map(lambda r: record_push([r], store=receipts, now=NOW), reports))
    assert sum(r.failovers for r in results) == 1
    message = receipts.reload("B.00000")
    assert message is not None
    assert (message.status, message.provider, message.provider_message_id) == (Status.QUEUED, T, None)
    assert [e["id"] for e in message.events or []].count(RESEND_STEP) == 1
    assert receipts.message_for_provider_ref(A, "ali-1") is None  # off the ProviderRef index
    found = receipts.message_for_earlier_attempt(A, "ali-1")
    assert found is not None and found.id == "B.00000"

    # Every push that saw the resend pending queued its pack (the same pack id); the claims send it once.
    resends = [m for r in results for m in r.resends]
    assert resends and {m.provider for m in resends} == {T}
    queue_resends(SqsPackQueues(stack.queue_urls), resends)
    packs = [DispatchPack.model_validate(body) for body in _drain(stack, T)]
    assert len(packs) == len(resends) and len({p.pack_id for p in packs}) == 1
    tencent = ScriptedProvider(name=T)
    deps = DispatchDeps(
        provider=tencent,
        store=DynamoDBMessageStore(stack.table_name),
        claims=DynamoDBPackClaims(stack.table_name),
        queues=MemoryQueues(),
        receipts=receipts,
        webhooks=MemoryWebhooks(),
    )
    for pack in packs:
        dispatch_pack(pack, deps, now=NOW + timedelta(seconds=5), last_attempt=False)
    assert sum(len(call) for call in tencent.calls) == 1
    message = receipts.reload("B.00000")
    assert message is not None and (message.status, message.provider) == (Status.SUBMITTED, T)

    # The second attempt's delivery is final; a late DELIVERED for the first is recorded and changes nothing.
    record_push([report(T, "pm-B.00000", Status.DELIVERED, "DELIVRD", "t4")], store=receipts, now=NOW)
    late = record_push([report(A, "ali-1", Status.DELIVERED, "DELIVERED", "t5")], store=receipts, now=NOW)
    assert (late.duplicate_deliveries, late.resends) == (1, [])
    message = receipts.reload("B.00000")
    assert message is not None and (message.status, message.provider) == (Status.DELIVERED, T)
    assert (message.events or [])[-1]["status"] == "DELIVERED" and (message.events or [])[-1]["earlier_attempt"]


def test_a_resend_claim_fails_once_the_message_left_the_attempt(stack) -> None:  # type: ignore[no-untyped-def]
    receipts = submitted(stack)
    earlier = receipts.reload("B.00000")
    assert earlier is not None
    moved = earlier.model_copy(update={"provider": T, "status": Status.QUEUED, "provider_message_id": None})
    assert receipts.start_resend(moved, expected_version=0, earlier=earlier) is True
    # The same version number again (a record rewritten from scratch has version 0 too), but no longer on the
    # first attempt's provider and id: refused.
    assert receipts.start_resend(moved, expected_version=0, earlier=earlier) is False


def _drain(stack, provider: ProviderName) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    bodies: list[dict[str, object]] = []
    while batch := stack.sqs.receive_message(QueueUrl=stack.queue_urls[provider], MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        bodies += [json.loads(m["Body"]) for m in batch]
    return bodies


def test_the_receipts_function_queues_the_resend_on_the_next_providers_queue(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    """Through the handlers with the template's environment: an Alibaba push saying UNDELIVERED / ROUTE_FAILURE puts
    the resend pack on Huawei's queue (the next provider of the route), and a repeat of the push the same pack."""
    dispatch_event = json.loads((EVENTS / "dispatch_aliyun.json").read_text())
    body = json.loads(dispatch_event["Records"][0]["body"])
    body["contents"][0]["route"] = ["aliyun", "huawei"]
    # Accepted just now: a resend must still fit in the message's validity, counted from its accept time.
    body["created_at"] = iso(datetime.now(UTC))
    dispatch_event["Records"][0]["body"] = json.dumps(body)
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="aliyun")
    dispatch._provider = lambda: ScriptedProvider(name=A)
    dispatch.lambda_handler(dispatch_event, lambda_context)

    monkeypatch.setenv("GLOBESMS_ALIYUN_RECEIPT_TOKEN", "local-aliyun-receipts-0001")
    receipts = load_handler("receipts")
    push = json.loads((EVENTS / "receipts_aliyun.json").read_text())
    [report] = json.loads(push["body"])
    push["body"] = json.dumps([report | {"Status": "2", "ErrorCode": "ROUTE_FAILURE", "ErrorDescription": "route"}])
    for _ in range(2):  # the provider pushes it again: the same pack again, sent once by its claim
        assert receipts.lambda_handler(push, lambda_context)["statusCode"] == 200
    packs = [DispatchPack.model_validate(b) for b in _drain(stack, ProviderName.HUAWEI)]
    message_id = body["recipients"][0]["id"]
    assert [p.pack_id for p in packs] == [f"{message_id}.resend"] * 2
    stored = DynamoDBReceiptStore(stack.table_name).reload(message_id)
    assert stored is not None and (stored.status, stored.provider) == (Status.QUEUED, ProviderName.HUAWEI)


def test_failover_on_undelivered_is_in_the_openapi_document_and_reaches_the_record(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context
) -> None:
    load_handler("send_api")
    document = json.loads(openapi_document())
    assert "failover_on_undelivered" in json.dumps(document["components"]["schemas"])
    spec = MessageSpec.model_validate(
        {"to": "+6591234567", "text": "hi", "type": "NOTIFY", "failover_on_undelivered": True}
    )
    queues = MemoryQueues()
    accept(
        [spec],
        batch_id="B",
        source="api",
        now=NOW,
        retention_days=90,
        store=DynamoDBMessageStore(stack.table_name),
        queues=queues,
    )
    stored = DynamoDBReceiptStore(stack.table_name).reload("B.00000")
    assert stored is not None and stored.failover_on_undelivered is True
    [pack] = [p for packs in queues.sent.values() for p in packs]
    assert pack.contents[0].failover_on_undelivered is True
