"""The guardrails through the API handler (moto built from template.yaml): the dry run, GET /v1/usage, spend
reserved by a send, and another API key's message not found."""

import json
from typing import Any

from globesms.aws.dynamodb_spend import counter_key
from tests.integration.test_handlers import event, post

BODY = {"to": ["+85251234567", "+6591234567"], "text": "Your code is 123456", "type": "OTP"}


def with_key(request: dict[str, Any], key_id: str) -> dict[str, Any]:
    request["requestContext"]["identity"]["apiKeyId"] = key_id
    return request


def call(api: Any, lambda_context: Any, request: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = api.lambda_handler(request, lambda_context)
    return response


def test_a_dry_run_quotes_and_writes_nothing_body_or_query(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    first = post(api, lambda_context, {**BODY, "dry_run": True})
    assert first["statusCode"] == 200, first["body"]
    answer = json.loads(first["body"])
    assert answer["dry_run"] is True and answer["accepted"] == 2
    assert answer["totals"] == {"recipients": 2, "segments": 2, "cost": {"USD": "0.082"}}
    assert [(m["provider"], m["price"], m["cost"]) for m in answer["messages"]] == [
        ("aliyun", "0.044", "0.044"),
        ("aliyun", "0.038", "0.038"),
    ]
    request = event("send_api_post_messages")
    request["body"] = json.dumps(BODY)
    request["queryStringParameters"] = {"dry_run": "true"}
    request["multiValueQueryStringParameters"] = {"dry_run": ["true"]}
    again = call(api, lambda_context, request)
    assert again["statusCode"] == 200 and json.loads(again["body"]) == answer
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0
    assert all(stack.receive(provider) == [] for provider in stack.queue_urls)


def test_a_send_reserves_its_cost_and_usage_shows_it_per_key(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    request = with_key(event("send_api_post_messages"), "key-a")
    request["body"] = json.dumps(BODY)
    sent = call(api, lambda_context, request)
    assert sent["statusCode"] == 202, sent["body"]
    message = json.loads(sent["body"])["messages"][0]
    assert (message["price"], message["cost"], message["currency"]) == ("0.044", "0.044", "USD")
    month = stack.dynamodb.scan(TableName=stack.table_name)["Items"]
    assert any(i["pk"]["S"].startswith("S#all#") and i["spent"]["N"] == "0.082" for i in month)
    usage = with_key(event("send_api_get_message"), "key-a")
    usage.update(path="/v1/usage", pathParameters=None, resource="/v1/usage")
    answer = call(api, lambda_context, usage)
    assert answer["statusCode"] == 200, answer["body"]
    shown = json.loads(answer["body"])
    assert shown["currency"] == "USD" and shown["deployment"] == {"spent": "0.082", "limit": None}
    assert shown["key"] == {"spent": "0.082", "limit": None}
    assert counter_key("all", shown["month"])["pk"]["S"] in {i["pk"]["S"] for i in month}


def test_another_keys_message_and_batch_are_404(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    request = with_key(event("send_api_post_messages"), "key-a")
    request["body"] = json.dumps(BODY)
    accepted = json.loads(call(api, lambda_context, request)["body"])
    message_id, batch_id = accepted["messages"][0]["id"], accepted["batch_id"]
    for key, status in (("key-a", 200), ("key-b", 404)):
        for resource, value in (("messages", message_id), ("batches", batch_id)):
            request = event("send_api_get_message" if resource == "messages" else "send_api_get_batch")
            request = with_key(request, key)
            request["path"] = f"/v1/{resource}/{value}"
            request["pathParameters"] = {"id": value}
            answer = call(api, lambda_context, request)
            assert answer["statusCode"] == status, (key, resource, answer["body"])


def test_otp_velocity_and_pumping_through_the_api(stack, load_handler, lambda_context, capsys) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    one = {"to": ["+85251234567"], "text": "Your code is 123456", "type": "OTP"}
    answers = [json.loads(post(api, lambda_context, one)["body"]) for _ in range(6)]
    assert [a["accepted"] for a in answers] == [1, 1, 1, 1, 1, 0]
    assert answers[5]["errors"][0]["code"] == "VELOCITY_LIMIT"
    quoted = json.loads(post(api, lambda_context, {**one, "dry_run": True})["body"])
    assert quoted["accepted"] == 0 and quoted["errors"][0]["code"] == "VELOCITY_LIMIT"
    burst = {"to": [f"+6591234{n:03d}" for n in range(25)], "text": "Your code is 123456", "type": "OTP"}
    held = json.loads(post(api, lambda_context, burst)["body"])
    assert held["accepted"] == 20 and {e["code"] for e in held["errors"]} == {"FRAUD_SUSPECTED"}
    assert "OTP to SG held as suspected SMS pumping" in held["errors"][0]["message"]
    logged = capsys.readouterr().out
    assert '"PumpingSuspected"' in logged and '"country":"SG"' in logged.replace(" ", "")
