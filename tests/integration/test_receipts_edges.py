"""The receipts endpoint is the one edge without an API key: what a pusher holding one provider's token can and cannot
do to messages, and how much one push or one message may hold. Driven through the real handler against moto."""

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from globesms import config
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
    if not isinstance(body, str):
        request["headers"]["content-type"] = "application/json"
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


# ---- finding 2: bounded history, bounded pushes, held receipts expire ----

TENCENT_PACK = json.loads(json.loads((EVENTS / "dispatch_tencent.json").read_text())["Records"][0]["body"])
TENCENT_FIRST = TENCENT_PACK["recipients"][0]


def distinct_tencent_reports(start: int, count: int) -> list[dict[str, str]]:
    """Distinct reports (each its own receipt id) for one message."""
    return [
        {
            "sid": f"pm-{TENCENT_FIRST['id']}",
            "report_status": "FAIL",
            "errmsg": "UNDELIV",
            "user_receive_time": f"2026-11-26 10:00:00.{n:06d}",
        }
        for n in range(start, start + count)
    ]


def test_a_message_keeps_a_bounded_history_however_many_distinct_receipts_arrive(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    from globesms.receipts import history

    # A smaller bound than the shipped one (the unit tests size the shipped one's largest history): the same rule,
    # a fifth of the receipts to push.
    monkeypatch.setattr(history, "MAX_EVENTS_KEPT", 30)
    monkeypatch.setattr(history, "FIRST_EVENTS_KEPT", 5)
    MAX_EVENTS_KEPT = history.MAX_EVENTS_KEPT
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="tencent")
    dispatch._provider = lambda: ScriptedProvider(name=ProviderName.TENCENT)
    assert dispatch.lambda_handler(event("dispatch_tencent"), lambda_context) == {"batchItemFailures": []}
    # Without a bound, ~240 receipts of the largest size the parsers keep passed DynamoDB's 400 KB item limit (and
    # the push failed forever).
    total = MAX_EVENTS_KEPT + 50
    for start in range(0, total, 100):
        reports = distinct_tencent_reports(start, min(100, total - start))
        response = push(load_handler, lambda_context, monkeypatch, "tencent", reports)
        assert response["statusCode"] == 200, response["body"]
    item = stored(stack, TENCENT_FIRST["id"])
    events = item["events"]["L"]
    assert len(events) == MAX_EVENTS_KEPT
    assert int(item["events_omitted"]["N"]) == total - MAX_EVENTS_KEPT
    times = [e["M"]["provider_time"]["S"] for e in events]
    assert times[0] == "2026-11-26 10:00:00.000000"  # the first receipt is kept ...
    assert times[-1] == f"2026-11-26 10:00:00.{total - 1:06d}"  # ... and the latest
    assert item["status"]["S"] == "UNDELIVERED"


def test_a_push_with_more_reports_than_the_provider_ever_sends_is_refused_in_its_own_format(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    from globesms.receipts.push_limits import MAX_REPORTS_PER_PUSH

    cap = MAX_REPORTS_PER_PUSH[ProviderName.TENCENT]
    response = push(load_handler, lambda_context, monkeypatch, "tencent", distinct_tencent_reports(0, cap + 1))
    assert response["statusCode"] == 413
    body = json.loads(response["body"])
    assert body["result"] != 0 and str(cap) in body["errmsg"]  # Tencent's acknowledgement shape, not ours
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0
    huawei = {"statusReportList": [{"smsMsgId": f"m{n}", "status": "DELIVRD"} for n in range(51)]}
    response = push(load_handler, lambda_context, monkeypatch, "huawei", huawei)
    assert response["statusCode"] == 413
    aliyun = [{"Status": "1", "MessageId": f"m{n}"} for n in range(MAX_REPORTS_PER_PUSH[ProviderName.ALIYUN] + 1)]
    response = push(load_handler, lambda_context, monkeypatch, "aliyun", aliyun)
    assert response["statusCode"] == 413 and json.loads(response["body"])["code"] != 0
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0


def test_an_oversized_push_is_refused_before_its_reports_are_read(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch, mocker
) -> None:
    # A forged push of millions of tiny items took the function's whole timeout to refuse when every item was
    # validated first (and its memory, parsed): the count is checked before validating, the size before parsing.
    from globesms.providers import receipt_parsing
    from globesms.receipts.push_limits import MAX_BYTES_PER_REPORT, MAX_REPORTS_PER_PUSH

    validated = mocker.spy(receipt_parsing, "refusal")  # called for every item that fails validation, as {} does
    many = "[" + ",".join(["{}"] * 200_000) + "]"
    response = push(load_handler, lambda_context, monkeypatch, "aliyun", many)
    assert response["statusCode"] == 413 and json.loads(response["body"])["code"] != 0
    assert validated.call_count == 0
    parsed = mocker.spy(receipt_parsing, "read_json")
    padding = " " * (MAX_REPORTS_PER_PUSH[ProviderName.TENCENT] * MAX_BYTES_PER_REPORT)
    response = push(load_handler, lambda_context, monkeypatch, "tencent", f"[{padding}]")
    assert response["statusCode"] == 413 and parsed.call_count == 0
    assert push(load_handler, lambda_context, monkeypatch, "tencent", "[]")["statusCode"] == 200  # within both
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0


def test_held_and_unmatched_receipts_expire_and_stay_bounded(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    import time

    from globesms.aws.dynamodb_receipts import MAX_HELD_EVENTS

    reports = [
        tencent_report(sid="never-sent", user_receive_time=f"2026-11-26 10:{n // 60:02d}:{n % 60:02d}")
        for n in range(100)
    ]
    for start in range(0, MAX_HELD_EVENTS + 100, 100):
        batch = [{**r, "errmsg": f"{start}-{i}"} for i, r in enumerate(reports)]
        assert push(load_handler, lambda_context, monkeypatch, "tencent", batch)["statusCode"] == 200
    item = stack.dynamodb.get_item(
        TableName=stack.table_name, Key={"pk": {"S": "R#tencent#never-sent"}, "sk": {"S": "#"}}
    )["Item"]
    assert len(item["events"]["L"]) == MAX_HELD_EVENTS
    retention_days = 90  # the template's RetentionDays default
    assert int(item["expires_at"]["N"]) >= time.time() + (retention_days - 1) * 86_400


# ---- finding 3: the receipts function reads the receipt-token secrets, not the providers' credentials ----


def test_the_token_comes_from_its_own_secret_and_no_credentials_secret_is_read(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    import boto3
    from aws_lambda_powertools.utilities import parameters

    token = "tencent-receipt-token-from-its-own-secret"
    boto3.client("secretsmanager").create_secret(
        Name="globesms/tencent-receipts",
        SecretString=json.dumps({"GLOBESMS_TENCENT_RECEIPT_TOKEN": f"{token} local-tencent-receipts-0001"}),
    )
    parameters.clear_caches()
    receipts = load_handler("receipts")
    monkeypatch.delenv("GLOBESMS_TENCENT_RECEIPT_TOKEN", raising=False)
    monkeypatch.setenv("GLOBESMS_TENCENT_RECEIPT_SECRET_NAME", "globesms/tencent-receipts")
    # A credentials secret that does not exist: reading it would fail the push.
    monkeypatch.setenv("GLOBESMS_TENCENT_SECRET_NAME", "globesms/tencent-credentials-not-there")
    config.settings.cache_clear()  # settings are read once per process: these are a new cold start's
    request = event("receipts_tencent")
    request["path"] = request["path"].replace("local-tencent-receipts-0001", token)
    assert receipts.lambda_handler(request, lambda_context)["statusCode"] == 200
    # While the URL is being changed, the old token (second in the value) is accepted too.
    assert receipts.lambda_handler(event("receipts_tencent"), lambda_context)["statusCode"] == 200
    forged = event("receipts_tencent")
    forged["path"] = forged["path"].replace("local-tencent-receipts-0001", "x" * 40)
    assert receipts.lambda_handler(forged, lambda_context)["statusCode"] == 403
    parameters.clear_caches()


def use_receipt_secret(load_handler: Any, monkeypatch: Any, name: str = "globesms/tencent-receipts") -> Any:
    """The receipts handler of a new cold start whose Tencent token comes from the secret `name` only."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    receipts = load_handler("receipts")
    monkeypatch.delenv("GLOBESMS_TENCENT_RECEIPT_TOKEN", raising=False)
    monkeypatch.setenv("GLOBESMS_TENCENT_RECEIPT_SECRET_NAME", name)
    config.settings.cache_clear()
    return receipts


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        # Not created (yet): docs/security-edges.md "every push is refused with 403 until they exist".
        (None, "unreadable (GetParameterError: ResourceNotFoundException)"),
        ("not json", "unreadable (TransformParameterError: JSONDecodeError)"),
        (json.dumps({"GLOBESMS_ALIYUN_RECEIPT_TOKEN": "local-tencent-receipts-0001"}), "must be a JSON object with"),
        (json.dumps({"GLOBESMS_TENCENT_RECEIPT_TOKEN": "too-short"}), "of at least 16 characters"),
        (
            json.dumps(
                {"GLOBESMS_TENCENT_RECEIPT_TOKEN": "local-tencent-receipts-0001", "GLOBESMS_TENCENT_REPLY_TOKEN": 7}
            ),
            "GLOBESMS_TENCENT_REPLY_TOKEN that is not a string",
        ),
    ],
)
def test_without_a_good_receipt_token_secret_every_push_is_refused_not_a_crash(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch, caplog, stored, reason
) -> None:
    """Until 2026-12-07 a token secret missing, unreadable or without its token raised: every push (from anyone: the
    endpoint has no API key) was a 502, and a read of Secrets Manager (found by a review)."""
    import boto3

    if stored is not None:
        boto3.client("secretsmanager").create_secret(Name="globesms/tencent-receipts", SecretString=stored)
    receipts = use_receipt_secret(load_handler, monkeypatch)
    with caplog.at_level(logging.ERROR):
        response = receipts.lambda_handler(event("receipts_tencent"), lambda_context)
    assert (response["statusCode"], json.loads(response["body"])["error"]["code"]) == (403, "FORBIDDEN")
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("receipt token secret unavailable")]
    assert reason in logged.reason
    assert "local-tencent-receipts-0001" not in json.dumps(vars(logged), default=str)


def test_a_receipt_token_secret_is_used_once_created_and_stays_in_force_when_it_cannot_be_read(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    import boto3
    from aws_lambda_powertools.utilities import parameters

    from globesms.receipts import tokens

    monkeypatch.setattr(tokens, "FAILED_READ_RETRY_SECONDS", 0.0)  # read again at once after a failure (unit-tested)
    receipts = use_receipt_secret(load_handler, monkeypatch)
    assert receipts.lambda_handler(event("receipts_tencent"), lambda_context)["statusCode"] == 403
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(
        Name="globesms/tencent-receipts",
        SecretString=json.dumps({"GLOBESMS_TENCENT_RECEIPT_TOKEN": RECEIPT_TOKENS["GLOBESMS_TENCENT_RECEIPT_TOKEN"]}),
    )
    assert receipts.lambda_handler(event("receipts_tencent"), lambda_context)["statusCode"] == 200  # no failure kept
    for broken in ("not json", None):  # an edit gone wrong, then a read that fails (here: the secret deleted)
        if broken is None:
            secrets.delete_secret(SecretId="globesms/tencent-receipts", ForceDeleteWithoutRecovery=True)
        else:
            secrets.put_secret_value(SecretId="globesms/tencent-receipts", SecretString=broken)
        parameters.clear_caches()  # the 5-minute cache lapsed
        assert receipts.lambda_handler(event("receipts_tencent"), lambda_context)["statusCode"] == 200
    parameters.clear_caches()


@pytest.mark.parametrize(
    ("token", "status", "code"), [(None, 400, "UNREADABLE_RECEIPTS"), ("x" * 32, 403, "FORBIDDEN")]
)
def test_a_body_marked_base64_that_is_not_is_unreadable_not_a_crash_and_decoded_only_after_the_token(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch, token, status, code
) -> None:
    for name, value in RECEIPT_TOKENS.items():
        monkeypatch.setenv(name, value)
    request = {**event("receipts_tencent"), "body": "abc", "isBase64Encoded": True}
    if token is not None:
        request["path"] = request["path"].replace(RECEIPT_TOKENS["GLOBESMS_TENCENT_RECEIPT_TOKEN"], token)
    response = load_handler("receipts").lambda_handler(request, lambda_context)
    assert (response["statusCode"], json.loads(response["body"])["error"]["code"]) == (status, code)


HUGE_ECHO = "B." + "1" * 5000  # a sequence number past int()'s 4,300 digits


@pytest.mark.parametrize(
    ("provider", "body"),
    [
        ("aliyun", [{"MessageId": "m-1", "Status": "1", "TaskId": HUGE_ECHO}]),
        ("tencent", [{"sid": "s-1", "report_status": "SUCCESS", "ext": HUGE_ECHO}]),
        ("huawei", {"statusReportList": [{"smsMsgId": "h-1", "status": "DELIVRD", "extend": HUGE_ECHO}]}),
    ],
)
def test_an_echo_with_a_sequence_number_too_long_to_be_ours_is_no_echo_never_a_crash(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch, provider: str, body: Any
) -> None:
    """The whole push was a ValueError (5xx, retried for good, its good reports lost with it)."""
    response = push(load_handler, lambda_context, monkeypatch, provider, body)
    assert response["statusCode"] == 200
