"""Quiet hours at the API: a waiver the deployment does not allow, and a bad window, are 422 naming the field, with
nothing written."""

import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[2] / "events"


def post(api: Any, lambda_context: Any, body: Any) -> dict[str, Any]:
    request = json.loads((EVENTS / "send_api_post_messages.json").read_text())
    request["body"] = json.dumps(body)
    response: dict[str, Any] = api.lambda_handler(request, lambda_context)
    return response


def test_a_waiver_not_enabled_is_422_naming_quiet_hours(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    response = post(api, lambda_context, {"to": "+85251234567", "text": "sale", "type": "MKT", "quiet_hours": False})
    assert response["statusCode"] == 422
    (field,) = json.loads(response["body"])["error"]["fields"]
    assert field["field"] == "quiet_hours" and "not enabled" in field["rule"]
    bad = {"messages": [{"to": "+85251234567", "text": "sale", "quiet_hours": {"start": "21:00", "end": "21:00"}}]}
    response = post(api, lambda_context, bad)
    assert response["statusCode"] == 422
    assert json.loads(response["body"])["error"]["fields"][0]["field"].startswith("messages.0.quiet_hours")
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0


def test_an_mkt_window_narrower_than_the_deployments_is_422_naming_it_and_writes_nothing(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context
) -> None:
    api = load_handler("send_api")
    narrow = {"start": "04:00", "end": "04:01"}
    response = post(api, lambda_context, {"to": "+85251234567", "text": "sale", "type": "MKT", "quiet_hours": narrow})
    assert response["statusCode"] == 422, response["body"]
    (field,) = json.loads(response["body"])["error"]["fields"]
    assert field["field"] == "quiet_hours" and "must cover this deployment's quiet hours (21:00-08:00)" in field["rule"]
    assert stack.dynamodb.scan(TableName=stack.table_name)["Count"] == 0
    notify = {"to": "+85251234567", "text": "hi", "type": "NOTIFY", "quiet_hours": narrow}  # nothing to NOTIFY
    assert post(api, lambda_context, notify)["statusCode"] == 202
