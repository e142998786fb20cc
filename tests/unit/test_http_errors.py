"""The API's refusals before routing, and the Content-Type it hands Powertools (regressions found by tests/fuzz)."""

import base64
import json
from typing import Any

import pytest

from globesms.http_errors import refuse_non_json_body, refuse_undecodable_body, with_plain_json_content_type


def post(body: str, content_type: str | None = "application/json", *, base64_encoded: bool = False) -> dict[str, Any]:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return {
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "a/b+json", None]
)
def test_json_bodies_pass_the_media_type_check(content_type: str | None) -> None:
    assert refuse_non_json_body(post("{}", content_type)) is None


def test_a_form_is_refused_as_unsupported_media_type() -> None:
    refusal = refuse_non_json_body(post("to=1", "application/x-www-form-urlencoded"))
    assert refusal is not None and refusal["statusCode"] == 415
    assert json.loads(refusal["body"])["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize("raw", [b"\x80\x81", b'{"to": "\xff"}'])
def test_a_body_that_is_not_utf8_is_malformed_json_not_a_crash(raw: bytes) -> None:
    refusal = refuse_undecodable_body(post(base64.b64encode(raw).decode(), base64_encoded=True))
    assert refusal is not None and refusal["statusCode"] == 400
    error = json.loads(refusal["body"])["error"]
    assert error["code"] == "MALFORMED_JSON" and "UTF-8" in error["message"]


def test_a_body_that_is_not_the_base64_it_claims_is_malformed_json() -> None:
    refusal = refuse_undecodable_body(post("not base64!", base64_encoded=True))
    assert refusal is not None and refusal["statusCode"] == 400


@pytest.mark.parametrize(
    "event",
    [
        post('{"to": "+85251234567"}'),
        post(base64.b64encode('{"text": "字"}'.encode()).decode(), base64_encoded=True),
        post(""),
    ],
)
def test_readable_bodies_pass_the_decoding_check(event: dict[str, Any]) -> None:
    assert refuse_undecodable_body(event) is None


@pytest.mark.parametrize(
    "content_type", ["APPLICATION/JSON", "Application/Json; charset=utf-8", "application/problem+json"]
)
def test_json_under_another_spelling_reaches_powertools_as_application_json(content_type: str) -> None:
    event = post("{}", content_type)
    event["headers"]["x-other"] = "kept"
    plain = with_plain_json_content_type(event)
    assert plain["headers"] == {"x-other": "kept", "content-type": "application/json"}
    assert plain["multiValueHeaders"] == {"content-type": ["application/json"]}
    assert event["headers"]["Content-Type"] == content_type  # the caller's event is left as it was


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "text/plain", None])
def test_other_events_are_handed_over_unchanged(content_type: str | None) -> None:
    event = post("{}", content_type)
    assert with_plain_json_content_type(event) is event
