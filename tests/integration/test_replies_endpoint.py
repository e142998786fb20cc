"""POST /v1/replies/{provider}/{token} through the real receipts handler against moto with the template's tables and
webhook queue: each provider's format stored once, STOP lists the number (the next MKT is refused, an OTP goes),
Alibaba's retries deduplicated, message.received queued, and bad input refused before anything is read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from globesms.config import settings
from globesms.models.outbound import ProviderName
from globesms.replies.models import max_reply_push_bytes
from tests.integration.conftest import MotoStack
from tests.integration.gateway import InProcessApi

EVENTS = Path(__file__).resolve().parents[2] / "events"
REPLY_TOKENS = {f"GLOBESMS_{p.upper()}_REPLY_TOKEN": f"local-{p}-replies-0001" for p in ("aliyun", "tencent", "huawei")}
CALLBACK = "https://customer.example.com/replies"


def reply_event(provider: str, body: str | None = None, token: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = json.loads((EVENTS / f"replies_{provider}.json").read_text())
    if body is not None:
        request["body"] = body
    if token is not None:
        request["path"] = request["path"].replace(f"local-{provider}-replies-0001", token)
    return request


@pytest.fixture
def replies(load_handler, lambda_context, monkeypatch):  # type: ignore[no-untyped-def]
    for name, value in REPLY_TOKENS.items():
        monkeypatch.setenv(name, value)
    handler = load_handler("receipts").lambda_handler
    monkeypatch.setenv("GLOBESMS_REPLY_CALLBACK", CALLBACK)  # the template's ReplyCallbackUrl is empty by default
    settings.cache_clear()
    return lambda request: handler(request, lambda_context)


def queued_events(stack: MotoStack) -> list[dict[str, Any]]:
    url = stack.deployed.context.refs["WebhookQueue"]
    found = stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in found]


@pytest.mark.parametrize(
    ("provider", "ack", "number"),
    [
        ("aliyun", {"code": 0, "msg": "OK"}, "+6591234567"),
        ("tencent", {"result": 0, "errmsg": "OK"}, "+6591234568"),
        ("huawei", {"result": "OK"}, "+8613800138000"),
    ],
)
def test_each_providers_stop_is_stored_acknowledged_in_its_format_and_lists_the_number(  # type: ignore[no-untyped-def]
    replies, stack, load_handler, lambda_context, provider, ack, number
) -> None:
    answer = replies(reply_event(provider))
    assert (answer["statusCode"], json.loads(answer["body"])) == (200, ack)
    (delivery,) = queued_events(stack)
    assert delivery["url"] == CALLBACK
    assert delivery["event"]["type"] == "message.received"
    assert delivery["event"]["message"]["from"] == number and delivery["event"]["message"]["action"] == "opt_out"
    api = InProcessApi(load_handler("send_api").lambda_handler, lambda_context)
    listed = api.call("GET", f"/v1/opt-outs/{number}").json()
    assert (listed["source"], listed["provider"]) == ("reply", provider)
    page = api.call("GET", "/v1/replies").json()
    assert [r["from"] for r in page["replies"]] == [number] and page["next"] is None


def test_an_alibaba_retry_is_stored_once_and_forwarded_once(replies, stack) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):  # Alibaba pushes again after 1, 5 and 10 minutes when it missed the answer
        assert replies(reply_event("aliyun"))["statusCode"] == 200
    assert len(queued_events(stack)) == 1
    table = stack.deployed.context.refs["ConsentTable"]
    stored = stack.dynamodb.query(
        TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "REPLY#default"}}
    )["Items"]
    assert len(stored) == 1 and stored[0]["handled"] == {"BOOL": True}


def test_a_stop_reply_blocks_the_next_mkt_but_not_an_otp(  # type: ignore[no-untyped-def]
    replies, load_handler, lambda_context
) -> None:
    assert replies(reply_event("aliyun"))["statusCode"] == 200
    api = InProcessApi(load_handler("send_api").lambda_handler, lambda_context)
    mkt = api.call("POST", "/v1/messages", body={"to": "+6591234567", "text": "Sale", "type": "MKT"}).json()
    assert [e["code"] for e in mkt["errors"]] == ["OPTED_OUT"]
    otp = api.call("POST", "/v1/messages", body={"to": "+6591234567", "text": "Code 1", "type": "OTP"}).json()
    assert otp["accepted"] == 1


@pytest.mark.parametrize(
    ("request_", "status", "code"),
    [
        (reply_event("aliyun", token="x" * 32), 403, "FORBIDDEN"),
        ({**reply_event("aliyun"), "path": "/v1/replies/sinch/local-aliyun-replies-0001"}, 403, "FORBIDDEN"),
        (reply_event("aliyun", body="{not json"), 400, "UNREADABLE_REPLIES"),
        (reply_event("tencent", body="[]"), 400, "UNREADABLE_REPLIES"),
        # Marked base64 but not base64 (API Gateway never sends it; anyone with the token could): 400, not a 5xx.
        ({**reply_event("aliyun", body="abc"), "isBase64Encoded": True}, 400, "UNREADABLE_REPLIES"),
        # Without the token the body is never decoded: the same 403 as any wrong token.
        ({**reply_event("aliyun", body="abc", token="x" * 32), "isBase64Encoded": True}, 403, "FORBIDDEN"),
    ],
)
def test_bad_pushes_are_refused_and_nothing_is_kept(  # type: ignore[no-untyped-def]
    replies, stack, request_, status, code
) -> None:
    answer = replies(request_)
    assert (answer["statusCode"], json.loads(answer["body"])["error"]["code"]) == (status, code)
    assert queued_events(stack) == []


def test_bad_items_are_skipped_and_good_ones_kept(replies, stack) -> None:  # type: ignore[no-untyped-def]
    good = json.loads(reply_event("aliyun")["body"])[0]
    body = json.dumps([{**good, "phone_number": "12"}, good, "nope"])
    assert replies(reply_event("aliyun", body=body))["statusCode"] == 200
    assert len(queued_events(stack)) == 1


@pytest.mark.parametrize(("provider", "size"), [("aliyun", 4_096_001), ("tencent", 16_385), ("huawei", 16_385)])
def test_a_reply_push_larger_than_its_replies_can_be_is_refused_unread(replies, provider: str, size: int) -> None:  # type: ignore[no-untyped-def]
    """A body of millions of tiny items was parsed whole before the count was checked (~150 MB for 6 MB, in a
    256 MB function). Now its size is checked first: 16 KB for one reply, 4 MB for Alibaba's 1,000."""
    assert size == max_reply_push_bytes(ProviderName(provider)) + 1
    body = " " * size
    answer = replies(reply_event(provider, body=body))
    assert answer["statusCode"] == 413
    assert json.loads(answer["body"])["error"]["code"] == "BODY_TOO_LARGE"


def test_without_a_readable_token_secret_every_reply_push_is_refused_not_a_crash(  # type: ignore[no-untyped-def]
    replies, stack, monkeypatch
) -> None:
    """Until 2026-12-07 a receipt token secret that did not exist or could not be read made every reply push (from
    anyone: the endpoint has no API key) a 502, and a read of Secrets Manager (found by a review). Now: 403 until a
    good one is read; then that one stays in force when a read fails."""
    import boto3
    from aws_lambda_powertools.utilities import parameters

    from globesms.receipts import tokens

    monkeypatch.setattr(tokens, "FAILED_READ_RETRY_SECONDS", 0.0)  # read again at once after a failure (unit-tested)
    parameters.clear_caches()
    monkeypatch.setenv("GLOBESMS_ALIYUN_RECEIPT_SECRET_NAME", "globesms/aliyun-receipts")  # not created yet
    settings.cache_clear()
    answer = replies(reply_event("aliyun"))  # the variable's token is not used when a secret is named
    assert (answer["statusCode"], json.loads(answer["body"])["error"]["code"]) == (403, "FORBIDDEN")
    secrets = boto3.client("secretsmanager")
    stored = {"GLOBESMS_ALIYUN_RECEIPT_TOKEN": "local-aliyun-receipts-0001", **REPLY_TOKENS}
    secrets.create_secret(Name="globesms/aliyun-receipts", SecretString=json.dumps(stored))
    assert replies(reply_event("aliyun"))["statusCode"] == 200
    secrets.delete_secret(SecretId="globesms/aliyun-receipts", ForceDeleteWithoutRecovery=True)
    parameters.clear_caches()  # the 5-minute cache lapsed: the read fails
    assert replies(reply_event("aliyun"))["statusCode"] == 200  # the last good token
    parameters.clear_caches()


def test_with_huawei_push_authentication_on_an_unsigned_huawei_reply_is_refused_and_a_signed_one_applied(  # type: ignore[no-untyped-def]
    replies, stack, load_handler, lambda_context, monkeypatch
) -> None:
    """With HuaweiReceiptAuth=aksk Huawei signs every push of its application. A reply push was accepted on the URL
    token alone, while an unsigned receipt push was refused: whoever held the reply URL could send START and take a
    number off the list, one a customer had listed through the API after a complaint too (found by a review)."""
    from tests.integration.test_handlers import signed_huawei_push

    monkeypatch.setenv("GLOBESMS_HUAWEI_RECEIPT_AUTH", "aksk")  # the template's HuaweiReceiptAuth=aksk
    monkeypatch.setenv("GLOBESMS_HUAWEI_APP_KEY", "push-key")
    monkeypatch.setenv("GLOBESMS_HUAWEI_APP_SECRET", "push-secret")
    api = InProcessApi(load_handler("send_api").lambda_handler, lambda_context)
    assert api.call("PUT", "/v1/opt-outs/+8613800138000", body={"reason": "complained by phone"}).status == 201
    start = reply_event("huawei")
    start["body"] = start["body"].replace("body=R", "body=START")

    refused = replies(start)
    assert (refused["statusCode"], json.loads(refused["body"])["error"]["code"]) == (401, "UNAUTHORIZED")
    assert api.call("GET", "/v1/opt-outs/+8613800138000").status == 200  # still listed
    assert replies(signed_huawei_push("push-key", "wrong-secret", start))["statusCode"] == 401

    assert replies(signed_huawei_push("push-key", "push-secret", start))["statusCode"] == 200
    assert api.call("GET", "/v1/opt-outs/+8613800138000").status == 404  # the signed START took it off
