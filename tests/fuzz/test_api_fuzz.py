"""POST /v1/messages with generated bodies and headers, through the real handler against moto.

Whatever the input: an answer (never an exception, never a 5xx); a refusal is a 4xx `{"error": {code, message,
fields}}` that names a reason and wrote nothing anywhere; an acceptance left every batch complete (header QUEUED
with exactly `accepted` records, or REJECTED with none) and packs covering exactly the accepted recipients.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from globesms.domain.segments import count_segments
from globesms.models.api import identifier_character_problem, text_character_problem
from globesms.models.limits import MAX_TEXT_SEGMENTS
from globesms.models.views import AcceptResponse
from tests.fuzz.harness import (
    FuzzStack,
    Observed,
    assert_accepts_consistent,
    assert_refusal_explained,
    fuzz_settings,
    refusal_of,
)
from tests.fuzz.strategies import (
    API_BODY,
    IDEMPOTENCY_KEYS,
    huge_number,
    json_text,
    mutated,
    nested,
    send_body,
    with_hidden_characters,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"
REFUSALS = {  # docs/api.md's refusals of a whole request: status -> the codes it may carry
    400: {"MALFORMED_JSON"},
    409: {"IDEMPOTENCY_KEY_REUSED", "IDEMPOTENCY_KEY_IN_PROGRESS"},
    413: {"TOO_MANY_RECIPIENTS", "BODY_TOO_LARGE"},
    415: {"UNSUPPORTED_MEDIA_TYPE"},
    422: {"VALIDATION_ERROR"},
}

CONTENT_TYPES = st.one_of(
    st.just("application/json"),
    st.sampled_from(
        [
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/problem+json",
            None,
            "",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ]
    ),
)


def post_event(body: str | bytes, content_type: str | None, idempotency_key: str | None) -> dict[str, Any]:
    request: dict[str, Any] = json.loads((EVENTS / "send_api_post_messages.json").read_text())
    headers = {"x-api-key": "local-dev-key", "Host": "127.0.0.1:3000"}
    if content_type is not None:
        headers["content-type"] = content_type
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    request["headers"] = headers
    request["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
    request["requestContext"]["identity"]["apiKeyId"] = "fuzz-key-id"
    if isinstance(body, bytes):
        # What API Gateway hands over for a body that is not UTF-8 text.
        request["body"], request["isBase64Encoded"] = base64.b64encode(body).decode(), True
    else:
        request["body"], request["isBase64Encoded"] = body, False
    return request


def call(api: Any, event: dict[str, Any], lambda_context: Any) -> dict[str, Any]:
    response: dict[str, Any] = api.lambda_handler(copy.deepcopy(event), lambda_context)
    status = response["statusCode"]
    assert status == 202 or status in REFUSALS, f"HTTP {status}: {response.get('body')}"
    return response


def header(response: dict[str, Any], name: str) -> list[str]:
    """A header's values in a REST API proxy response (Powertools answers with multiValueHeaders)."""
    values = {k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()}
    single = {k.lower(): [v] for k, v in (response.get("headers") or {}).items()}
    return list(values.get(name.lower()) or single.get(name.lower()) or [])


def check_answer(response: dict[str, Any], seen: Observed) -> AcceptResponse | None:
    """The properties every answer has; the accepted batch, if any."""
    status = response["statusCode"]
    if status != 202:
        refusal = refusal_of(response)
        event(f"HTTP {status} {refusal.code}")
        assert_refusal_explained(refusal)
        assert refusal.code in REFUSALS[status], f"HTTP {status} with code {refusal.code}"
        assert seen.empty, f"a refused request (HTTP {status} {refusal.code}) wrote {seen.describe()}"
        return None
    answer = AcceptResponse.model_validate_json(response["body"])
    event("HTTP 202, " + ("some accepted" if answer.accepted else "none accepted"))
    assert_accepts_consistent(seen)
    assert list(seen.headers) == [answer.batch_id], f"one request, one batch: {seen.describe()}"
    header = seen.headers[answer.batch_id]
    assert (header.accepted, header.rejected) == (answer.accepted, answer.rejected)
    assert header.state == ("QUEUED" if answer.accepted else "REJECTED")
    assert sorted(m.id for m in answer.messages) == sorted(r.id for r in seen.messages.get(answer.batch_id, []))
    assert (answer.accepted, answer.rejected) == (len(answer.messages), len(answer.errors))
    # Every recipient of the request is answered once, accepted or rejected: indexes 0..n-1.
    indexes = sorted([int(m.id.rsplit(".", 1)[1]) for m in answer.messages] + [e.index for e in answer.errors])
    assert indexes == list(range(len(indexes))), f"recipients answered as {indexes}"
    for error in answer.errors:
        assert error.code.strip() and error.message.strip(), f"a recipient refused without a reason: {error}"
    assert_within_content_rules(seen)
    return answer


def assert_within_content_rules(seen: Observed) -> None:
    """Nothing recorded to be sent breaks the documented content rules (docs/security.md)."""
    for records in seen.messages.values():
        for record in records:
            if record.text is not None:
                assert text_character_problem(record.text) is None, f"{record.id} kept a refused character"
                assert count_segments(record.text) <= MAX_TEXT_SEGMENTS, f"{record.id} is over {MAX_TEXT_SEGMENTS}"
            if record.client_ref is not None:
                assert identifier_character_problem(record.client_ref) is None, f"{record.id}: client_ref"
            for name, value in (record.template_params or {}).items():
                assert identifier_character_problem(name) is None, f"{record.id}: a template parameter's name"
                assert text_character_problem(value) is None, f"{record.id}: a template parameter's value"


@fuzz_settings(120)
@given(body=API_BODY, content_type=CONTENT_TYPES, key=st.none() | IDEMPOTENCY_KEYS)
def test_any_post_is_answered_with_a_reason_and_leaves_no_batch_half_written(  # type: ignore[no-untyped-def]
    fuzz_stack: FuzzStack, send_api, lambda_context, body: str | bytes, content_type: str | None, key: str | None
) -> None:
    api = send_api
    fuzz_stack.clear()
    response = call(api, post_event(body, content_type, key), lambda_context)
    check_answer(response, fuzz_stack.observe())


@fuzz_settings(60)
@given(body=st.one_of(nested(), huge_number(), send_body().flatmap(with_hidden_characters).flatmap(json_text)))
def test_bodies_at_and_past_the_read_and_content_limits_are_answered_never_crash(  # type: ignore[no-untyped-def]
    fuzz_stack: FuzzStack, send_api, lambda_context, body: str
) -> None:
    # Deep nesting (RecursionError) and huge integers (ValueError) escaped as 502s; control and bidi characters,
    # extensions and texts of too many parts were accepted. Drawn here every run, not once in a while.
    fuzz_stack.clear()
    response = call(send_api, post_event(body, "application/json", None), lambda_context)
    check_answer(response, fuzz_stack.observe())


@fuzz_settings(30)
@given(body=send_body(), other=send_body() | send_body().flatmap(mutated), key=st.uuids().map(str))
def test_an_idempotency_key_replays_its_first_answer_or_refuses_another_body(  # type: ignore[no-untyped-def]
    fuzz_stack: FuzzStack, send_api, lambda_context, body: dict[str, Any], other: Any, key: str
) -> None:
    api = send_api
    fuzz_stack.clear()
    first = call(api, post_event(json.dumps(body), "application/json", key), lambda_context)
    written = fuzz_stack.observe()
    answer = check_answer(first, written)

    again = call(api, post_event(json.dumps(body, indent=1), "application/json", key), lambda_context)
    if answer is None:  # a refusal is not kept as the key's answer: the retry is refused the same way
        assert again["statusCode"] == first["statusCode"], again["body"]
        assert fuzz_stack.observe().empty
        return
    assert again["statusCode"] == 202 and header(again, "Idempotent-Replayed") == ["true"]
    assert json.loads(again["body"]) == json.loads(first["body"])
    replayed = fuzz_stack.observe()
    assert not any(replayed.packs.values()), "a replay queued packs again"
    assert replayed.items == written.items, "a replay changed the table"

    another = call(api, post_event(json.dumps(other), "application/json", key), lambda_context)
    event(f"another body: HTTP {another['statusCode']}")
    if another["statusCode"] == 202:  # the mutation left the body as it was, as the key compares it
        assert json.loads(another["body"]) == json.loads(first["body"])
    elif another["statusCode"] == 409:
        assert refusal_of(another).code == "IDEMPOTENCY_KEY_REUSED"
    else:  # refused before the key is looked at
        assert_refusal_explained(refusal_of(another))
    after = fuzz_stack.observe()
    assert not any(after.packs.values()), "the same key with another body queued packs"
    assert after.items == replayed.items, "the same key with another body changed the table"
