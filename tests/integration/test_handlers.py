"""Each handler driven by its events/*.json file, against moto built from template.yaml."""

import json
from pathlib import Path
from typing import Any

import pytest

from globesms.models.outbound import ProviderName
from globesms.status import Status
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


def test_too_many_recipients_is_413(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    specs = [
        {"to": [f"+8525{i:07d}" for i in range(5_001)], "text": "x"},
        {"to": [f"+6591{i:06d}" for i in range(5_000)], "text": "y"},
    ]
    response = post(api, lambda_context, {"messages": specs})
    assert response["statusCode"] == 413
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0


def test_validation_errors_name_nested_fields(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    response = post(api, lambda_context, {"messages": [{"to": "+85251234567", "text": "x", "validity_seconds": 5}]})
    fields = json.loads(response["body"])["error"]["fields"]
    assert response["statusCode"] == 422
    assert fields[0]["field"] == "messages.0.validity_seconds"


def test_unknown_ids_are_404(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    for name in ("send_api_get_message", "send_api_get_batch"):
        response = api.lambda_handler(event(name), lambda_context)
        assert response["statusCode"] == 404
        assert json.loads(response["body"])["error"]["code"] == "NOT_FOUND"


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
