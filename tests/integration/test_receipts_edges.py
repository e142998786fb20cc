"""The receipts endpoint is the one edge without an API key: what a pusher holding one provider's token can and cannot
do to messages, and how much one push or one message may hold. Driven through the real handler against moto."""

import json
from pathlib import Path
from typing import Any

import pytest

from globesms.errors import ErrorCategory, ProviderError
from globesms.models.outbound import ProviderName
from tests.fakes import ScriptedProvider

EVENTS = Path(__file__).resolve().parents[2] / "events"
RECEIPT_TOKENS = {
    "GLOBESMS_ALIYUN_RECEIPT_TOKEN": "local-aliyun-receipts-0001",
    "GLOBESMS_TENCENT_RECEIPT_TOKEN": "local-tencent-receipts-0001",
    "GLOBESMS_HUAWEI_RECEIPT_TOKEN": "local-huawei-receipts-0001",
}
ALIYUN_PACK = json.loads(json.loads((EVENTS / "dispatch_aliyun.json").read_text())["Records"][0]["body"])
FIRST = ALIYUN_PACK["recipients"][0]  # {"id": ..., "to": "+85251234567"}


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return loaded


def dispatch_aliyun(load_handler: Any, lambda_context: Any, answer: Any = None) -> None:
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="aliyun")
    scripted = ScriptedProvider(name=ProviderName.ALIYUN, answer=answer)
    dispatch._provider = lambda: scripted
    assert dispatch.lambda_handler(event("dispatch_aliyun"), lambda_context) == {"batchItemFailures": []}


def push(load_handler: Any, lambda_context: Any, monkeypatch: Any, provider: str, body: Any) -> dict[str, Any]:
    for name, value in RECEIPT_TOKENS.items():
        monkeypatch.setenv(name, value)
    request = event(f"receipts_{provider}")
    request["body"] = body if isinstance(body, str) else json.dumps(body)
    response: dict[str, Any] = load_handler("receipts").lambda_handler(request, lambda_context)
    return response


def stored(stack: Any, message_id: str) -> dict[str, Any]:
    batch_id, seq = message_id.rsplit(".", 1)
    item = stack.dynamodb.get_item(
        TableName=stack.table_name, Key={"pk": {"S": f"B#{batch_id}"}, "sk": {"S": f"M#{seq}"}}, ConsistentRead=True
    )["Item"]
    return item  # type: ignore[no-any-return]


def tencent_report(**fields: str) -> dict[str, str]:
    return {"report_status": "FAIL", "errmsg": "UNDELIV", "user_receive_time": "2026-11-26 10:00:05", **fields}


# ---- finding 1: a receipt only touches a message sent through the same provider; an echo needs the number ----


def test_a_tencent_push_cannot_settle_an_alibaba_message_by_its_ids(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    dispatch_aliyun(load_handler, lambda_context)
    report = tencent_report(sid=f"pm-{FIRST['id']}", ext=FIRST["id"], nationcode="852", mobile=FIRST["to"][4:])
    response = push(load_handler, lambda_context, monkeypatch, "tencent", [report])
    assert response["statusCode"] == 200
    item = stored(stack, FIRST["id"])
    assert item["status"]["S"] == "SUBMITTED"
    assert "receipt_ids" not in item


def test_an_echo_without_the_number_settles_nothing_and_keeps_the_provider_reference(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    unknown = ProviderError(ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT")
    dispatch_aliyun(load_handler, lambda_context, answer=lambda _m: unknown)
    assert stored(stack, FIRST["id"])["status"]["S"] == "SENDING"
    # The message's own provider, its echo (TaskId), but no number: the echo alone names nobody.
    report = {"Status": "2", "MessageId": "forged-1", "TaskId": FIRST["id"], "ErrorCode": "UNDELIV"}
    assert push(load_handler, lambda_context, monkeypatch, "aliyun", [report])["statusCode"] == 200
    item = stored(stack, FIRST["id"])
    assert item["status"]["S"] == "SENDING"
    assert "provider_ref" not in item and "provider_message_id" not in item
    # ... and through another provider's endpoint, with the number, neither.
    report = tencent_report(sid="forged-2", ext=FIRST["id"], nationcode="852", mobile=FIRST["to"][4:])
    assert push(load_handler, lambda_context, monkeypatch, "tencent", [report])["statusCode"] == 200
    assert stored(stack, FIRST["id"])["status"]["S"] == "SENDING"


def test_the_messages_own_provider_with_echo_and_number_still_settles_an_unknown_outcome(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    unknown = ProviderError(ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT")
    dispatch_aliyun(load_handler, lambda_context, answer=lambda _m: unknown)
    report = {"Status": "1", "MessageId": "real-1", "TaskId": FIRST["id"], "To": FIRST["to"][1:]}
    assert push(load_handler, lambda_context, monkeypatch, "aliyun", [report])["statusCode"] == 200
    item = stored(stack, FIRST["id"])
    assert item["status"]["S"] == "DELIVERED"
    assert item["provider_ref"]["S"] == "aliyun#real-1"
