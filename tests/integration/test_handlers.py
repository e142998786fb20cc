"""Each handler driven by its events/*.json file, against moto built from template.yaml."""

import base64
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

from globesms.aws.dynamodb_spend import DynamoDBSpendLedger
from globesms.config import AcceptSettings, settings
from globesms.domain.status import Status
from globesms.guardrails import spend
from globesms.guardrails.limits import LimitsDoc
from globesms.models.outbound import ProviderName
from tests.fakes import ScriptedProvider

EVENTS = Path(__file__).resolve().parents[2] / "events"


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return loaded


def post(api: Any, lambda_context: Any, body: Any) -> dict[str, Any]:
    request = event("send_api_post_messages")
    request["body"] = body if isinstance(body, str) else json.dumps(body)
    response: dict[str, Any] = api.lambda_handler(request, lambda_context)
    return response


def get(
    api: Any, lambda_context: Any, resource: str, value: str, query: dict[str, str] | None = None
) -> dict[str, Any]:
    request = event("send_api_get_message" if resource == "messages" else "send_api_get_batch")
    request["path"] = f"/v1/{resource}/{value}"
    request["pathParameters"] = {"id": value}
    request["queryStringParameters"] = query
    request["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    response: dict[str, Any] = api.lambda_handler(request, lambda_context)
    return response


def test_post_messages_event_accepts_and_queues(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    response = api.lambda_handler(event("send_api_post_messages"), lambda_context)
    assert response["statusCode"] == 202
    body = json.loads(response["body"])
    assert (body["accepted"], body["rejected"]) == (3, 0)
    packs = stack.receive(ProviderName.ALIYUN)
    assert [r["to"] for r in packs[0]["recipients"]] == ["+85251234567", "+6591234567", "+447911123456"]

    message = json.loads(get(api, lambda_context, "messages", body["messages"][0]["id"])["body"])
    assert (message["status"], message["provider"], message["client_ref"]) == ("QUEUED", "aliyun", "order-42")
    batch = json.loads(get(api, lambda_context, "batches", body["batch_id"], {"limit": "2"})["body"])
    assert batch["counts"] == {"QUEUED": 3}
    assert len(batch["messages"]) == 2 and batch["next"] == body["messages"][1]["id"]


def test_post_batch_event_routes_per_recipient(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    body = json.loads(api.lambda_handler(event("send_api_post_batch"), lambda_context)["body"])
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["errors"][0]["code"] == "INVALID_NUMBER"
    assert [r["to"] for r in stack.receive(ProviderName.TENCENT)[0]["recipients"]] == ["+85251234567"]
    assert [r["to"] for r in stack.receive(ProviderName.HUAWEI)[0]["recipients"]] == ["+8613800138000"]


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [("send_api_post_malformed", 400, "MALFORMED_JSON"), ("send_api_post_invalid", 422, "VALIDATION_ERROR")],
)
def test_refused_requests_write_nothing(stack, load_handler, lambda_context, name, status, code) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    response = api.lambda_handler(event(name), lambda_context)
    assert response["statusCode"] == status
    assert json.loads(response["body"])["error"]["code"] == code
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {
            "messages": [
                {"to": [f"+8525{i:07d}" for i in range(5_001)], "text": "x"},
                {"to": [f"+6591{i:06d}" for i in range(5_000)], "text": "y"},
            ]
        },
        {"to": [f"+8525{i:07d}" for i in range(10_001)], "text": "x"},  # past the schema's cap on one list: was 422
        {"messages": [{"to": f"+8525{i:07d}", "text": "x"} for i in range(10_001)]},
    ],
    ids=["two-specs", "one-spec", "messages"],
)
def test_too_many_recipients_is_413(stack, load_handler, lambda_context, body) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    response = post(api, lambda_context, body)
    assert response["statusCode"] == 413
    assert json.loads(response["body"])["error"]["code"] == "TOO_MANY_RECIPIENTS"
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0


def test_validation_errors_name_nested_fields(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    response = post(api, lambda_context, {"messages": [{"to": "+85251234567", "text": "x", "validity_seconds": 5}]})
    fields = json.loads(response["body"])["error"]["fields"]
    assert response["statusCode"] == 422
    assert fields[0]["field"] == "messages.0.validity_seconds"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        # A client's key spelled like pydantic's location tags was left out of the path (a review).
        ({"to": "+85251234567", "text": "x", "batch": 1}, "batch"),
        ({"messages": [{"to": "+85251234567", "text": "x", "str": 1}]}, "messages.0.str"),
        ({"to": "+85251234567", "template": {"id": "otp", "params": {"int": ""}}}, "template.params.int"),
        ({"to": "+85251234567", "template": {"id": "otp", "params": {"code": ""}}}, "template.params.code"),
        ({"to": "+85251234567", "text": "x", "list[a]": 1}, "list[a]"),
        ({"messages": [{"to": "+85251234567", "text": "x", "constrained-x": 1}]}, "messages.0.constrained-x"),
    ],
)
def test_a_refusal_names_the_clients_own_key_whatever_it_is_spelled_like(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, body, named
) -> None:
    response = post(load_handler("send_api"), lambda_context, body)
    assert response["statusCode"] == 422
    assert {f["field"] for f in json.loads(response["body"])["error"]["fields"]} == {named}


def test_a_refusal_lists_the_first_hundred_fields_and_how_many_there_were(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    # Every broken field was listed: a 400 KB body of 200,000 bad numbers was answered with 16 MB, past what Lambda
    # can return (API Gateway answered 502), and a client key's name was written out whole, however long.
    api = load_handler("send_api")
    response = post(api, lambda_context, {"to": [1] * 300, "text": "x", "k" * 5000: 1})
    error = json.loads(response["body"])["error"]
    assert response["statusCode"] == 422 and error["code"] == "VALIDATION_ERROR"
    assert len(error["fields"]) == 100 and error["fields_total"] == 302
    assert error["message"] == "302 field(s) break the schema; the first 100 are listed"
    assert error["fields"][:2] == [
        {"field": "to", "rule": "Input should be a valid string"},
        {"field": "to.0", "rule": "Input should be a valid string"},
    ]
    few = json.loads(post(api, lambda_context, {"to": "+85251234567", "text": "x", "k" * 5000: 1})["body"])["error"]
    assert "fields_total" not in few and few["fields"][0]["field"] == "k" * 199 + "…"
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0


def test_unknown_ids_are_404(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    for name in ("send_api_get_message", "send_api_get_batch"):
        response = api.lambda_handler(event(name), lambda_context)
        assert response["statusCode"] == 404
        assert json.loads(response["body"])["error"]["code"] == "NOT_FOUND"


def test_a_batch_page_after_a_cursor_it_never_gave_is_a_422_on_query_after(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    # It was answered with an empty last page (`next` null): a client took the batch for ended.
    api = load_handler("send_api")
    sent = post(api, lambda_context, {"to": ["+85251234567", "+6591234567"], "text": "x"})
    batch = json.loads(sent["body"])["batch_id"]
    first = json.loads(get(api, lambda_context, "batches", batch, {"limit": "1"})["body"])
    second = json.loads(get(api, lambda_context, "batches", batch, {"limit": "1", "after": first["next"]})["body"])
    assert [m["id"] for m in first["messages"] + second["messages"]] == [f"{batch}.00000", f"{batch}.00001"]
    for after, rule in [
        ("garbage", "not a cursor this API gave (use the `next` of the previous page)"),
        ("other-batch.00001", "the cursor belongs to another batch"),
    ]:
        response = get(api, lambda_context, "batches", batch, {"after": after})
        error = json.loads(response["body"])["error"]
        assert (response["statusCode"], error["code"]) == (422, "VALIDATION_ERROR")
        assert error["fields"] == [{"field": "query.after", "rule": rule}]


@pytest.mark.parametrize(
    ("method", "path", "resource"),
    [("GET", '/v1/messages/a"b', "/v1/messages/{id}"), ("PATCH", "/v1/messages", "/v1/messages")],
    ids=["no-pattern-matches", "no-such-method"],
)
def test_a_request_no_route_answers_is_a_404_in_the_refusal_shape(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, method, path, resource
) -> None:
    # Powertools answered with its own {"statusCode": 404, "message": "Not found"}.
    request = event("send_api_get_message")
    request.update(httpMethod=method, path=path, resource=resource, pathParameters=None)
    response = load_handler("send_api").lambda_handler(request, lambda_context)
    assert response["statusCode"] == 404
    error = json.loads(response["body"])["error"]
    assert error["code"] == "NOT_FOUND" and error["message"].startswith("no route answers this method and path")


def test_intake_batch_fails_only_the_bad_record(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    intake = load_handler("intake")
    request = event("intake_batch")
    response = intake.lambda_handler(request, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": request["Records"][1]["messageId"]}]}
    api = load_handler("send_api")
    good = json.loads(get(api, lambda_context, "batches", "order-42-batch")["body"])
    assert good["counts"] == {"QUEUED": 2}
    bad = json.loads(get(api, lambda_context, "batches", f"sqs-{request['Records'][1]['messageId']}")["body"])
    assert (bad["state"], bad["refusal"]["code"]) == ("REJECTED", "MALFORMED_JSON")


@pytest.mark.parametrize(
    "body",
    [
        {"batch_id": "big-refusal", "to": [1] * 10_000, "text": "x"},
        {"batch_id": "big-refusal", "to": "+85251234567", "text": "x", **{k * 150_000: 1 for k in "abc"}},
    ],
    ids=["10000-fields", "long-keys"],
)
def test_an_intake_refusal_of_any_size_is_recorded(stack, load_handler, lambda_context, body) -> None:  # type: ignore[no-untyped-def]
    # Its REJECTED header listed every field, whole: past DynamoDB's 400 KB item limit the write failed, nothing
    # recorded why, and the body went round until the dead-letter queue.
    intake = load_handler("intake")
    request = event("intake_batch")
    request["Records"] = [{**request["Records"][0], "body": json.dumps(body)}]
    response = intake.lambda_handler(request, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": request["Records"][0]["messageId"]}]}
    refusal = json.loads(get(load_handler("send_api"), lambda_context, "batches", "big-refusal")["body"])["refusal"]
    assert refusal["code"] == "VALIDATION_ERROR" and len(refusal["fields"]) <= 100
    assert all(len(detail["field"]) <= 200 for detail in refusal["fields"])


def test_an_intake_refusal_is_read_by_the_intake_owner_only(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    # Recorded without an owner, it was every API key's to read.
    intake = load_handler("intake")
    request = event("intake_batch")
    body = {"batch_id": "refused-42", "to": "+85251234567", "text": "x", "validity_seconds": 5}
    request["Records"] = [{**request["Records"][0], "body": json.dumps(body)}]
    assert intake.lambda_handler(request, lambda_context)["batchItemFailures"]
    api = load_handler("send_api")
    read = event("send_api_get_batch")
    read.update(path="/v1/batches/refused-42", pathParameters={"id": "refused-42"})
    read["requestContext"]["identity"]["apiKeyId"] = "another-client"
    response = api.lambda_handler(read, lambda_context)
    assert (response["statusCode"], json.loads(response["body"])["error"]["code"]) == (404, "NOT_FOUND")
    read["requestContext"]["identity"]["apiKeyId"] = settings(AcceptSettings).intake_owner
    assert json.loads(api.lambda_handler(read, lambda_context)["body"])["state"] == "REJECTED"


@pytest.mark.parametrize("provider", list(ProviderName))
def test_dispatch_event_records_outcomes(stack, load_handler, lambda_context, provider) -> None:  # type: ignore[no-untyped-def]
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER=provider.value)
    scripted = ScriptedProvider(name=provider)
    dispatch._provider = lambda: scripted
    request = event(f"dispatch_{provider.value}")
    assert dispatch.lambda_handler(request, lambda_context) == {"batchItemFailures": []}
    pack = json.loads(request["Records"][0]["body"])
    api = load_handler("send_api")
    for recipient in pack["recipients"]:
        view = json.loads(get(api, lambda_context, "messages", recipient["id"])["body"])
        assert view["status"] == Status.SUBMITTED
        assert view["provider_message_id"] == f"pm-{recipient['id']}"


def test_a_dispatcher_that_cannot_be_built_records_the_pack_failed_on_its_last_receive(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context
) -> None:
    """Its provider's credentials unreadable (or an invalid GLOBESMS_RATE_LIMITS): on the last receive the pack goes
    to the DLQ with records that say so, and a redrive charges and sends it (docs/operations.md)."""
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="aliyun")

    def unreadable() -> ScriptedProvider:
        raise ValueError("secret globesms/aliyun must be a JSON object")

    dispatch._provider = unreadable
    request = event("dispatch_aliyun")
    pack = json.loads(request["Records"][0]["body"])
    for recipient in pack["recipients"]:
        recipient["cost"] = "0.04"  # reserved by accept, below
    request["Records"][0]["body"] = json.dumps(pack)
    ledger = DynamoDBSpendLedger(stack.table_name)
    costs, created = [Decimal("0.04")] * len(pack["recipients"]), datetime(2026, 11, 26, 10, tzinfo=UTC)
    reserved = spend.Request(batch_id=pack["batch_id"], owner=None, costs=costs, now=created, expires_at=2_000_000_000)
    assert spend.reserve(ledger, reserved, LimitsDoc.model_validate({"version": 1, "monthly_spend": "100"})) == (
        2,
        False,
    )

    def spent() -> Decimal:
        return ledger.spent("2026-11", [spend.DEPLOYMENT])[spend.DEPLOYMENT]

    def claim_state() -> str:
        key = {"pk": {"S": f"P#{pack['pack_id']}"}, "sk": {"S": "#"}}
        return str(stack.dynamodb.get_item(TableName=stack.table_name, Key=key)["Item"]["state"]["S"])

    request["Records"][0]["attributes"]["ApproximateReceiveCount"] = "4"  # receives left: nothing written
    assert len(dispatch.lambda_handler(request, lambda_context)["batchItemFailures"]) == 1
    api = load_handler("send_api")
    first = pack["recipients"][0]["id"]
    assert get(api, lambda_context, "messages", first)["statusCode"] == 404
    request["Records"][0]["attributes"]["ApproximateReceiveCount"] = "5"  # the last one (maxReceiveCount 5)
    assert len(dispatch.lambda_handler(request, lambda_context)["batchItemFailures"]) == 1
    for recipient in pack["recipients"]:
        view = json.loads(get(api, lambda_context, "messages", recipient["id"])["body"])
        assert (view["status"], view["error"]["code"]) == (Status.FAILED, "DISPATCH_FAILED")
        assert view["error"]["message"] == "the dispatcher failed (ValueError)"  # the kind only, never the text
    assert (claim_state(), spent()) == ("DEAD", Decimal(0))  # given back; a redrive charges it again
    # fixed; the operator redrives it
    dispatch._provider = lambda: ScriptedProvider(name=ProviderName.ALIYUN)
    request["Records"][0]["attributes"]["ApproximateReceiveCount"] = "1"
    assert dispatch.lambda_handler(request, lambda_context) == {"batchItemFailures": []}
    assert json.loads(get(api, lambda_context, "messages", first)["body"])["status"] == Status.SUBMITTED
    assert (claim_state(), spent()) == ("DONE", Decimal("0.08"))


def test_an_invalid_rate_limits_variable_fails_each_pack_and_records_it_failed_on_the_last_receive(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, caplog
) -> None:
    """Until 2026-12-07 DispatchSettings, read at import, validated GLOBESMS_RATE_LIMITS: an invalid value failed the
    function's init, no receive reached the dead-letter path, and packs went to the DLQ with their records still
    QUEUED (found by a review). Now the rates are read when the dependencies are built: "the dispatcher could not be
    built", and on the last receive the records are FAILED (docs/operations.md, docs/pipeline.md)."""
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="aliyun", GLOBESMS_RATE_LIMITS='{"SendMessageToGlobe": 0}')
    dispatch._provider = lambda: ScriptedProvider(name=ProviderName.ALIYUN)
    request = event("dispatch_aliyun")
    pack = json.loads(request["Records"][0]["body"])
    with caplog.at_level(logging.ERROR):
        assert len(dispatch.lambda_handler(request, lambda_context)["batchItemFailures"]) == 1
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("the dispatcher could not be built")]
    assert "GLOBESMS_RATE_LIMITS: SendMessageToGlobe" in str(logged.exc_info[1])
    request["Records"][0]["attributes"]["ApproximateReceiveCount"] = "5"  # the last one (maxReceiveCount 5)
    assert len(dispatch.lambda_handler(request, lambda_context)["batchItemFailures"]) == 1
    api = load_handler("send_api")
    for recipient in pack["recipients"]:
        view = json.loads(get(api, lambda_context, "messages", recipient["id"])["body"])
        assert (view["status"], view["error"]["code"]) == (Status.FAILED, "DISPATCH_FAILED")


def test_dispatch_refuses_a_pack_for_another_provider(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="tencent")
    dispatch._provider = lambda: ScriptedProvider(name=ProviderName.TENCENT)
    request = event("dispatch_aliyun")
    response = dispatch.lambda_handler(request, lambda_context)
    assert response["batchItemFailures"] == [{"itemIdentifier": request["Records"][0]["messageId"]}]


def test_a_body_sent_as_a_form_is_refused_as_unsupported_media_type(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    request = event("send_api_post_messages")
    request["headers"]["content-type"] = "application/x-www-form-urlencoded"
    response = api.lambda_handler(request, lambda_context)
    assert response["statusCode"] == 415
    assert json.loads(response["body"])["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0


RECEIPT_TOKENS = {
    "GLOBESMS_ALIYUN_RECEIPT_TOKEN": "local-aliyun-receipts-0001",
    "GLOBESMS_TENCENT_RECEIPT_TOKEN": "local-tencent-receipts-0001",
    "GLOBESMS_HUAWEI_RECEIPT_TOKEN": "local-huawei-receipts-0001",
}


@pytest.mark.parametrize("provider", list(ProviderName))
def test_a_receipt_push_in_each_providers_format_delivers_the_dispatched_message(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch, provider
) -> None:
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER=provider.value)
    dispatch._provider = lambda: ScriptedProvider(name=provider)
    dispatch.lambda_handler(event(f"dispatch_{provider.value}"), lambda_context)
    for name, value in RECEIPT_TOKENS.items():
        monkeypatch.setenv(name, value)
    receipts = load_handler("receipts")
    push = event(f"receipts_{provider.value}")
    response = receipts.lambda_handler(push, lambda_context)
    assert response["statusCode"] == 200, response["body"]
    again = receipts.lambda_handler(push, lambda_context)  # providers repeat pushes: acknowledged, no change
    assert again["statusCode"] == 200

    message_id = json.loads(event(f"dispatch_{provider.value}")["Records"][0]["body"])["recipients"][0]["id"]
    view = json.loads(get(load_handler("send_api"), lambda_context, "messages", message_id)["body"])
    assert view["status"] == "DELIVERED"
    receipts_seen = [e for e in view["events"] if e["type"] == "receipt"]
    assert len(receipts_seen) == 1 and receipts_seen[0]["status"] == "DELIVERED"


def test_a_forged_receipt_token_is_refused_and_nothing_is_read(
    stack, load_handler, lambda_context, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    for name, value in RECEIPT_TOKENS.items():
        monkeypatch.setenv(name, value)
    response = load_handler("receipts").lambda_handler(event("receipts_forged_token"), lambda_context)
    assert response["statusCode"] == 403
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0


def test_a_callback_path_no_route_matches_is_a_404_in_the_refusal_shape(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context
) -> None:
    request = event("receipts_forged_token")
    request.update(path='/v1/receipts/aliyun/a"b', pathParameters=None)  # API Gateway hands over the decoded path
    response = load_handler("receipts").lambda_handler(request, lambda_context)
    assert response["statusCode"] == 404
    error = json.loads(response["body"])["error"]
    assert (error["code"], error["message"]) == ("NOT_FOUND", "no receipts or replies endpoint at this path")


def test_an_unreadable_receipt_body_is_400_not_a_retry_loop(stack, load_handler, lambda_context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name, value in RECEIPT_TOKENS.items():
        monkeypatch.setenv(name, value)
    push = event("receipts_tencent")
    push["body"] = "this is not json"
    response = load_handler("receipts").lambda_handler(push, lambda_context)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "UNREADABLE_RECEIPTS"


def test_a_receipt_for_an_unknown_message_is_acknowledged_and_kept(
    stack, load_handler, lambda_context, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    for name, value in RECEIPT_TOKENS.items():
        monkeypatch.setenv(name, value)
    response = load_handler("receipts").lambda_handler(event("receipts_huawei"), lambda_context)
    assert response["statusCode"] == 200
    held = stack.dynamodb.get_item(
        TableName=stack.table_name,
        Key={"pk": {"S": "R#huawei#pm-01JDEXAMPLEBATCH0000000002.00000"}, "sk": {"S": "#"}},
    )
    assert held["Item"]["events"]["L"][0]["M"]["raw_status"]["S"] == "DELIVRD"


def test_final_statuses_queue_a_webhook_for_specs_that_ask(stack, load_handler, lambda_context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    accepted = json.loads(
        post(
            api, lambda_context, {"to": "+85251234567", "text": "hi", "status_callback": "https://hooks.example.com/x"}
        )["body"]
    )
    pack = stack.receive(ProviderName.ALIYUN)[0]
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="aliyun")
    dispatch._provider = lambda: ScriptedProvider(name=ProviderName.ALIYUN)
    request = event("dispatch_aliyun")
    request["Records"][0]["body"] = json.dumps(pack)
    assert dispatch.lambda_handler(request, lambda_context) == {"batchItemFailures": []}
    for name, value in RECEIPT_TOKENS.items():
        monkeypatch.setenv(name, value)
    push = event("receipts_aliyun")
    message_id = accepted["messages"][0]["id"]
    body = json.loads(push["body"])
    body[0].update(MessageId=f"pm-{message_id}", TaskId=message_id)
    push["body"] = json.dumps(body)
    assert load_handler("receipts").lambda_handler(push, lambda_context)["statusCode"] == 200
    queued = stack.sqs.receive_message(QueueUrl=stack.deployed.context.refs["WebhookQueue"], MaxNumberOfMessages=10)
    deliveries = [json.loads(m["Body"]) for m in queued.get("Messages", [])]
    assert [d["event"]["id"] for d in deliveries] == [f"{message_id}.delivered"]
    assert deliveries[0]["url"] == "https://hooks.example.com/x"


def test_huawei_pushes_must_be_signed_when_push_authentication_is_on(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:

    for name, value in RECEIPT_TOKENS.items():
        monkeypatch.setenv(name, value)
    receipts = load_handler("receipts")
    monkeypatch.setenv("GLOBESMS_HUAWEI_RECEIPT_AUTH", "aksk")  # the template's HuaweiReceiptAuth=aksk
    monkeypatch.setenv("GLOBESMS_HUAWEI_APP_KEY", "push-key")
    monkeypatch.setenv("GLOBESMS_HUAWEI_APP_SECRET", "push-secret")
    unsigned = event("receipts_huawei")
    assert receipts.lambda_handler(unsigned, lambda_context)["statusCode"] == 401

    assert receipts.lambda_handler(signed_huawei_push("push-key", "push-secret"), lambda_context)["statusCode"] == 200


def signed_huawei_push(app_key: str, app_secret: str, push: dict[str, Any] | None = None) -> dict[str, Any]:
    """`push` (events/receipts_huawei.json by default) signed with this AK/SK, as Huawei signs a push with
    HuaweiReceiptAuth=aksk."""
    from globesms.providers.huawei import signer

    push = push or event("receipts_huawei")
    headers = {"content-type": "application/x-www-form-urlencoded", "host": "127.0.0.1:3000"}
    headers["X-Sdk-Date"] = signer.sdk_date(datetime.now(UTC))
    headers["Authorization"] = signer.aksk_authorization(
        app_key=app_key,
        app_secret=app_secret.encode(),
        method="POST",
        path=push["requestContext"]["path"],
        query=[],
        headers=headers,
        body=push["body"].encode(),
    )
    push["headers"] = headers
    push["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    return push


# ---- found by tests/fuzz ----


@pytest.mark.parametrize("content_type", ["APPLICATION/JSON", "application/problem+json"])
def test_json_under_another_spelling_of_its_media_type_is_accepted(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, content_type
) -> None:
    # Powertools parses JSON only under "application/json…" and answered these with a 415 of its own shape.
    request = event("send_api_post_messages")
    request["headers"]["content-type"] = content_type
    response = load_handler("send_api").lambda_handler(request, lambda_context)
    assert response["statusCode"] == 202, response["body"]


@pytest.mark.parametrize(
    ("content_type", "body", "base64_encoded", "status", "code"),
    [
        # An empty body under a type that is not JSON: Powertools' own 415, without a reason, before.
        ("text/plain", "", False, 415, "UNSUPPORTED_MEDIA_TYPE"),
        # Bytes that are not UTF-8: Powertools raised UnicodeDecodeError decoding them (a 502), before.
        ("application/json", base64.b64encode(b'{"to": "\x80"}').decode(), True, 400, "MALFORMED_JSON"),
        ("application/json", "not base64!", True, 400, "MALFORMED_JSON"),
    ],
)
def test_bodies_powertools_cannot_read_are_refused_with_a_reason_and_write_nothing(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, content_type, body, base64_encoded, status, code
) -> None:
    request = event("send_api_post_messages")
    request["headers"]["content-type"] = content_type
    request["body"], request["isBase64Encoded"] = body, base64_encoded
    response = load_handler("send_api").lambda_handler(request, lambda_context)
    assert response["statusCode"] == status
    error = json.loads(response["body"])["error"]
    assert error["code"] == code and error["message"]
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0


def test_the_openapi_document_describes_every_answer_with_its_real_shape(stack, load_handler) -> None:  # type: ignore[no-untyped-def]
    # It documented 422 in Powertools' own shape, 409 as an AcceptResponse, and neither 400, 413, 415 nor 404.
    document = json.loads(load_handler("send_api").app.get_openapi_json_schema())
    expected = {
        ("/v1/messages", "post"): {"200", "202", "400", "409", "413", "415", "422"},  # 200: a dry run
        ("/v1/messages/{message_id}", "get"): {"200", "404", "422"},
        ("/v1/batches/{batch_id}", "get"): {"200", "404", "422"},
    }
    for (path, method), statuses in expected.items():
        responses = document["paths"][path][method]["responses"]
        assert set(responses) == statuses
        for status in statuses - {"200", "202"}:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, status)


DEEP_ARRAY = "[" * 50_000 + "]" * 50_000  # json.loads raised RecursionError: a 502
HUGE_INTEGER = '{"to": "+85251234567", "text": "x", "validity_seconds": ' + "9" * 5_000 + "}"  # ValueError: a 502


@pytest.mark.parametrize(
    "body",
    [
        DEEP_ARRAY,
        '{"to": ' + "[" * 50_000 + "]" * 50_000 + ', "text": "x"}',
        HUGE_INTEGER,
        "9" * 5_000,
        '{"to": ' + "[" * 900 + '"+85251234567"' + "]" * 900 + ', "text": "x"}',  # deep, yet within json's reach
    ],
    ids=["deep-array", "deep-field", "huge-integer-field", "huge-integer", "deep-900"],
)
def test_bodies_json_cannot_hold_are_malformed_json_not_a_crash(stack, load_handler, lambda_context, body) -> None:  # type: ignore[no-untyped-def]
    response = post(load_handler("send_api"), lambda_context, body)
    assert response["statusCode"] == 400, response["body"]
    error = json.loads(response["body"])["error"]
    assert error["code"] == "MALFORMED_JSON" and error["message"]
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('{"to": "+6591234567", "text": "hi", "to": "+85251234567"}', "to"),
        ('{"messages": [{"to": "+6591234567", "text": "a", "text": "b"}]}', "text"),
        ('{"to": "+6591234567", "template": {"id": "t", "params": {"code": "1", "code": "2"}}}', "code"),
    ],
)
def test_a_key_given_twice_in_one_object_is_refused_naming_it(stack, load_handler, lambda_context, body, key) -> None:  # type: ignore[no-untyped-def]
    # The last value won: the message went to the second number, while a reader of the body saw the first.
    response = post(load_handler("send_api"), lambda_context, body)
    error = json.loads(response["body"])["error"]
    assert (response["statusCode"], error["code"]) == (400, "MALFORMED_JSON")
    assert error["message"] == f'the body is not JSON globesms reads: the key "{key}" is given twice'
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0


def test_a_body_above_the_cap_is_413_body_too_large_and_writes_nothing(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    from globesms.models.limits import MAX_BODY_BYTES

    body = json.dumps({"to": "+85251234567", "text": "x", "client_ref": "r"})
    padded = body[:-1] + " " * (MAX_BODY_BYTES - len(body) + 1) + "}"  # valid JSON, one byte over the cap
    response = post(load_handler("send_api"), lambda_context, padded)
    assert response["statusCode"] == 413
    error = json.loads(response["body"])["error"]
    assert error["code"] == "BODY_TOO_LARGE" and str(MAX_BODY_BYTES) in error["message"].replace(",", "")
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0
    # At the cap exactly it is read (and here accepted).
    assert post(load_handler("send_api"), lambda_context, padded[:-2] + "}")["statusCode"] == 202


def test_the_openapi_answers_are_described_from_the_codes_and_models(stack, load_handler) -> None:  # type: ignore[no-untyped-def]
    from globesms.errors import RefusalCode
    from globesms.models.limits import MAX_BODY_BYTES
    from globesms.models.views import AcceptResponse

    document = json.loads(load_handler("send_api").app.get_openapi_json_schema())
    responses = document["paths"]["/v1/messages"]["post"]["responses"]
    assert responses["202"]["description"] == AcceptResponse.__doc__
    too_large = responses["413"]["description"]
    assert f"BODY_TOO_LARGE: {RefusalCode.BODY_TOO_LARGE.meaning} (more than {MAX_BODY_BYTES:,} bytes)" in too_large
    assert "TOO_MANY_RECIPIENTS: " in too_large
    assert "Retry-After" in responses["409"]["headers"]
    for code in (RefusalCode.MALFORMED_JSON, RefusalCode.VALIDATION_ERROR, RefusalCode.UNSUPPORTED_MEDIA_TYPE):
        assert f"{code}: {code.meaning}" in responses[str(code.status)]["description"]
    codes = document["components"]["schemas"]["RefusalCode"]["enum"]
    assert set(codes) == {c.value for c in RefusalCode}


def test_a_text_over_ten_parts_is_refused_before_anything_is_written(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    response = post(load_handler("send_api"), lambda_context, {"to": "+85251234567", "text": "😀" * 1_600})
    assert response["statusCode"] == 422
    (field,) = json.loads(response["body"])["error"]["fields"]
    assert field["field"] == "text" and "this text is 49" in field["rule"]  # 33 emoji a part: never split
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0


def test_an_accepted_request_is_answered_202_when_the_spend_metric_cannot_be_read(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    """With a deployment limit, every accept ends with a read for SpendLimitUsedPercent. That read failing (a
    throttled table) escaped the handler after the batch was queued: a 5xx a client without an Idempotency-Key
    retries, sending the batch again under a new id (found by a review)."""
    from botocore.exceptions import ClientError

    from globesms.guardrails import limits as limits_module

    monkeypatch.setattr(
        limits_module._limits, "_file", LimitsDoc.model_validate({"version": 1, "monthly_spend": "500"})
    )
    monkeypatch.setattr(limits_module._limits, "_override", None)

    def throttled(self: DynamoDBSpendLedger, month: str, scopes: Any) -> Any:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "Query")

    monkeypatch.setattr(DynamoDBSpendLedger, "spent", throttled)  # only the metric reads it: the send fits
    answer = post(
        load_handler("send_api"), lambda_context, {"to": ["+85251234567"], "text": "Code 123456", "type": "OTP"}
    )
    assert answer["statusCode"] == 202, answer["body"]
    assert sum(len(stack.receive(url)) for url in stack.queue_urls) == 1


def test_a_cold_api_with_an_invalid_guardrails_parameter_sends_nothing_and_says_when_to_retry(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    """A new instance has no last good document: falling back to the shipped ones (no spend limit) let it spend past
    the operator's limit (found by a review). An absent parameter is still the shipped document."""
    import boto3

    from globesms.guardrails import limits as limits_module
    from globesms.guardrails import permissions as permissions_module
    from globesms.guardrails import prices as prices_module

    for module in (limits_module, permissions_module, prices_module):
        module.reset_cache()
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name="/globesms/guardrails/limits", Value='{"monthly_spend": "ten"}', Type="String")
    api = load_handler("send_api")
    monkeypatch.setenv("GLOBESMS_GUARDRAILS_PARAMETERS", "/globesms/guardrails")  # GuardrailsParametersPath
    settings.cache_clear()
    body = {"to": ["+85251234567"], "text": "Sale", "type": "NOTIFY"}
    answer = post(api, lambda_context, body)
    assert (answer["statusCode"], answer["multiValueHeaders"].get("Retry-After")) == (503, ["5"]), answer["body"]
    assert json.loads(answer["body"])["error"]["code"] == "GUARDRAILS_UNAVAILABLE"
    assert sum(len(stack.receive(url)) for url in stack.queue_urls) == 0
    ssm.put_parameter(Name="/globesms/guardrails/limits", Value='{"version": 1}', Type="String", Overwrite=True)
    for module in (limits_module, permissions_module, prices_module):
        module.reset_cache()  # as Powertools' cache of 5 minutes, and the 5 s wait, would have run out
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    assert post(api, lambda_context, body)["statusCode"] == 202  # prices and permissions absent: the shipped ones


def test_huawei_push_authentication_without_a_readable_credentials_secret_refuses_pushes_not_a_crash(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    """With HuaweiReceiptAuth=aksk the receipts function reads the application's AK/SK from Huawei's credentials
    secret before the push is checked: a secret missing or unreadable made every Huawei push (anyone can send one:
    no API key) a 502. Now the push is refused (fail closed) and Huawei sends it again."""
    from aws_lambda_powertools.utilities import parameters

    for name, value in RECEIPT_TOKENS.items():
        monkeypatch.setenv(name, value)
    receipts = load_handler("receipts")
    monkeypatch.setenv("GLOBESMS_HUAWEI_RECEIPT_AUTH", "aksk")
    monkeypatch.setenv("GLOBESMS_HUAWEI_SECRET_NAME", "globesms/huawei-not-created")
    parameters.clear_caches()
    try:
        assert receipts.lambda_handler(event("receipts_huawei"), lambda_context)["statusCode"] == 401
    finally:
        parameters.clear_caches()


def test_huawei_push_authentication_with_null_keys_in_the_credentials_secret_refuses_pushes(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    """A JSON null was read as the text "None": a push signed with key and secret "None" was accepted (a review).
    A secret whose values are not all strings is refused, and without a good one every push is refused."""
    from aws_lambda_powertools.utilities import parameters

    from globesms.secrets import forget_stored_secrets

    for name, value in RECEIPT_TOKENS.items():
        monkeypatch.setenv(name, value)
    receipts = load_handler("receipts")
    boto3.client("secretsmanager").create_secret(
        Name="globesms/huawei-null",
        SecretString=json.dumps({"GLOBESMS_HUAWEI_APP_KEY": None, "GLOBESMS_HUAWEI_APP_SECRET": None}),
    )
    monkeypatch.setenv("GLOBESMS_HUAWEI_RECEIPT_AUTH", "aksk")
    monkeypatch.setenv("GLOBESMS_HUAWEI_SECRET_NAME", "globesms/huawei-null")
    monkeypatch.delenv("GLOBESMS_HUAWEI_APP_KEY", raising=False)
    monkeypatch.delenv("GLOBESMS_HUAWEI_APP_SECRET", raising=False)
    parameters.clear_caches()
    forget_stored_secrets()
    try:
        assert receipts.lambda_handler(signed_huawei_push("None", "None"), lambda_context)["statusCode"] == 401
    finally:
        parameters.clear_caches()
        forget_stored_secrets()
