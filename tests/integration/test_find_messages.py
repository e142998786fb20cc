"""GET /v1/messages?client_ref= and ?to= through the local API Gateway, against moto with the template's indexes."""

from __future__ import annotations

from typing import Any

import pytest

from globesms.aws import clients
from tests.integration.gateway import InProcessApi


@pytest.fixture
def api(load_handler, lambda_context) -> InProcessApi:  # type: ignore[no-untyped-def]
    return InProcessApi(load_handler("send_api").lambda_handler, lambda_context)


@pytest.fixture
def dynamodb_calls() -> list[str]:
    """Every DynamoDB operation the handler makes from here on."""
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    clients.dynamodb().meta.events.register("before-call.dynamodb", record)
    return calls


def send(api: InProcessApi, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.call("POST", "/v1/messages", body=body)
    assert answer.status == 202, answer.body
    accepted: dict[str, Any] = answer.json()
    return accepted


def test_messages_are_found_by_client_ref_and_by_number_page_by_page(
    api: InProcessApi, dynamodb_calls: list[str]
) -> None:
    first = send(api, {"to": ["+85251234567", "+6591234567"], "text": "one", "client_ref": "order-7"})
    second = send(api, {"to": "+85251234567", "text": "two", "client_ref": "order-8"})
    dynamodb_calls.clear()

    found = api.call("GET", "/v1/messages", query="client_ref=order-7")
    assert found.status == 200, found.body
    page = found.json()
    assert sorted(m["id"] for m in page["messages"]) == sorted(m["id"] for m in first["messages"])
    assert {(m["status"], m["client_ref"]) for m in page["messages"]} == {("QUEUED", "order-7")}
    assert page["next"] is None

    # By number, written as people write it: both batches' messages to it, newest first.
    by_number = api.call("GET", "/v1/messages", query="to=%2B852%205123-4567")
    assert by_number.status == 200, by_number.body
    ids = [m["id"] for m in by_number.json()["messages"]]
    assert ids == [second["messages"][0]["id"], first["messages"][0]["id"]]

    # One at a time, following `next`.
    seen, after = [], None
    while True:
        query = "to=%2B85251234567&limit=1" + (f"&after={after}" if after else "")
        answer = api.call("GET", "/v1/messages", query=query)
        assert answer.status == 200, answer.body
        seen += [m["id"] for m in answer.json()["messages"]]
        after = answer.json()["next"]
        if after is None:
            break
    assert seen == ids

    assert "Scan" not in dynamodb_calls
    # A page with a next one keeps its position under a token (PutItem); following it reads it (GetItem).
    assert {"Query", "BatchGetItem", "PutItem", "GetItem"} >= set(dynamodb_calls)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "query.client_ref"),
        ("client_ref=a&to=%2B85251234567", "query.client_ref"),
        ("to=12345", "query.to"),
        ("to=%2B85223456789", "query.to"),  # a Hong Kong landline: never a recipient
        ("client_ref=a&after=bm90LWEtY3Vyc29y", "query.after"),
        ("client_ref=a&limit=0", "query.limit"),
    ],
)
def test_a_lookup_that_cannot_be_answered_is_refused_naming_the_field(
    api: InProcessApi, query: str, field: str
) -> None:
    answer = api.call("GET", "/v1/messages", query=query)
    assert answer.status == 422, answer.body
    error = answer.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [f["field"] for f in error["fields"]] == [field]


def test_a_cursor_of_another_lookup_is_refused(api: InProcessApi) -> None:
    send(api, {"to": ["+85251234567", "+6591234567"], "text": "one", "client_ref": "order-7"})
    page = api.call("GET", "/v1/messages", query="client_ref=order-7&limit=1").json()
    assert page["next"] is not None
    answer = api.call("GET", "/v1/messages", query=f"client_ref=order-8&after={page['next']}")
    assert answer.status == 422
    assert answer.json()["error"]["fields"] == [{"field": "query.after", "rule": "the cursor belongs to another query"}]


def test_a_lookup_by_number_logs_the_number_masked(api: InProcessApi, caplog: pytest.LogCaptureFixture) -> None:
    send(api, {"to": "+85251234567", "text": "one"})
    caplog.clear()
    assert api.call("GET", "/v1/messages", query="to=%2B85251234567").status == 200
    (found,) = [r for r in caplog.records if r.getMessage() == "messages found"]
    assert (found.by, found.value, found.found) == ("to", "+852******67", 1)  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if "5123456" in str(vars(r))]


def test_a_cursor_tells_nothing_of_another_api_keys_messages(load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    """The next page's position is the last index entry read, which may be another key's message to the number (the
    page leaves it out): handed out as such, it named that key's batch id and time."""
    other_key = "key-b-value-0123456789"
    api = InProcessApi(
        load_handler("send_api").lambda_handler, lambda_context, {"GLOBESMS_API_KEYS": f"key-b={other_key}"}
    )
    send(api, {"to": "+85251234567", "text": "mine", "client_ref": "order-1"})
    theirs = api.call("POST", "/v1/messages", body={"to": "+85251234567", "text": "theirs"}, key=other_key)
    assert theirs.status == 202, theirs.body
    page = api.call("GET", "/v1/messages", query="to=%2B85251234567&limit=1").json()
    assert page["messages"] == [] and page["next"] is not None  # key-b's message is the newest: read, left out
    cursor = page["next"]
    assert len(cursor) == 22  # a token: it names nothing (a base64 JSON key before, of key-b's batch and time)
    mine = api.call("GET", "/v1/messages", query=f"to=%2B85251234567&limit=1&after={cursor}").json()
    assert [m["client_ref"] for m in mine["messages"]] == ["order-1"]


def test_an_expired_or_unknown_cursor_is_refused(api: InProcessApi, stack: Any) -> None:
    send(api, {"to": ["+85251234567", "+6591234567"], "text": "one", "client_ref": "order-7"})
    cursor = api.call("GET", "/v1/messages", query="client_ref=order-7&limit=1").json()["next"]
    stack.dynamodb.update_item(
        TableName=stack.table_name,
        Key={"pk": {"S": f"C#{cursor}"}, "sk": {"S": "#"}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": "1"}},  # TTL deletes it within days, not at once
    )
    for after in (cursor, "A" * 22):
        answer = api.call("GET", "/v1/messages", query=f"client_ref=order-7&after={after}")
        assert answer.status == 422
        assert answer.json()["error"]["fields"] == [
            {"field": "query.after", "rule": "the cursor has expired or was never given: start again without `after`"}
        ]


def test_a_cursor_with_an_empty_key_is_refused_not_handed_to_dynamodb(api: InProcessApi) -> None:
    # DynamoDB refuses an empty key value in ExclusiveStartKey (a ValidationException: a 5xx); moto lets it through.
    import base64
    import json as json_module

    crafted = {"client_ref": "x", "created_at": "", "pk": "B#", "sk": ""}
    cursor = base64.urlsafe_b64encode(json_module.dumps(crafted).encode()).decode().rstrip("=")
    answer = api.call("GET", "/v1/messages", query=f"client_ref=x&after={cursor}")
    assert answer.status == 422 and answer.json()["error"]["fields"][0]["field"] == "query.after", answer.body
