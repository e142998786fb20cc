"""The Alibaba client against httpx.MockTransport: wire shape, planning, validation, answers, failures, secrets."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from globesms.dispatch.sending import send_all
from globesms.errors import ErrorCategory, InvalidProviderRequest
from globesms.models.outbound import MessageType, OutboundSms, ProviderName
from globesms.ports import PlannedCall, Provider
from globesms.providers.aliyun import (
    AliyunClient,
    AliyunSettings,
    batch_task_id,
    from_environment,
    plan_calls,
    settings_from_environment,
)
from globesms.providers.aliyun.client import (
    Fields,
    all_valid,
    encoded_json_array,
    message_violation,
    wire_numbers,
)
from globesms.providers.aliyun.signer import Acs3Signer, canonical_query, percent_encode

SECRET = "test-secret-never-shown"
KEY_ID = "LTAItestkey"
FIXED_NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that records requests and answers with `answer(request)`."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


def ok_answer(request: httpx.Request) -> httpx.Response:
    """Accept everything: a single gets a MessageId; a batch gets one id per number, in order."""
    params = wire_params(request)
    if request.headers["x-acs-action"] == "SendMessageToGlobe":
        return httpx.Response(
            200,
            json={
                "ResponseCode": "OK",
                "ResponseDescription": "The SMS Send Request was accepted",
                "RequestId": "REQ-1",
                "MessageId": f"id-{params['To']}",
                "Segments": "2",
                "To": params["To"],
                "NumberDetail": {"Carrier": "CMI", "Region": "HongKong", "Country": "Hongkong, China"},
            },
        )
    numbers = json.loads(params["To"])
    return httpx.Response(
        200,
        json={
            "ResponseCode": "OK",
            "RequestId": "REQ-B",
            "SuccessCount": str(len(numbers)),
            "MessageIdList": json.dumps([f"id-{n}" for n in numbers]),
            "FailedList": "[]",
        },
    )


def make_client(
    answer: Handler = ok_answer, *, nonce: str | None = None, **settings: object
) -> tuple[AliyunClient, Recorder]:
    recorder = Recorder(answer)
    counter = iter(range(10**9))
    client = AliyunClient(
        AliyunSettings(access_key_id=KEY_ID, access_key_secret=SECRET, **settings),
        http=httpx.Client(transport=httpx.MockTransport(recorder)),
        clock=lambda: FIXED_NOW,
        nonce=(lambda: nonce) if nonce else (lambda: f"nonce-{next(counter)}"),
    )
    return client, recorder


def sms(n: int = 1, **fields: Any) -> OutboundSms:
    values: dict[str, Any] = {"message_id": f"b1.{n:05d}", "to": f"+8525123{n:04d}", "text": f"hello {n}"}
    values.update(fields)
    return OutboundSms(**values)


def wire_params(request: httpx.Request) -> dict[str, str]:
    """The business parameters as the server reads them: query string, plus a form body when there is one."""
    params = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
    if request.content:
        params.update(parse_qsl(request.content.decode(), keep_blank_values=True))
    return params


def recompute_authorization(request: httpx.Request) -> str:
    """Sign the request again from what is on the wire, as a server would."""
    signed = request.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {name: request.headers[name] for name in signed}
    query = canonical_query(dict(parse_qsl(request.url.query.decode(), keep_blank_values=True)))
    body_hash = hashlib.sha256(request.content).hexdigest()
    return Acs3Signer(KEY_ID, SECRET).authorization(request.method, request.url.path, query, headers, body_hash)


# ---------------------------------------------------------------------------------------------------------------
# The wire


def test_single_send_request_shape() -> None:
    client, recorder = make_client(channel_id="3790")
    message = sms(7, type=MessageType.OTP, sender_id="Alicloud321", validity_seconds=600, text="Code 1234 *~+%")
    [outcome] = client.send([message])

    [request] = recorder.requests
    assert request.method == "POST"
    assert request.url.path == "/"
    assert request.url.host == "dysmsapi.ap-southeast-1.aliyuncs.com"
    assert request.content == b""
    assert wire_params(request) == {
        "To": "85251230007",
        "Message": "Code 1234 *~+%",
        "Type": "OTP",
        "TaskId": "b1.00007",
        "From": "Alicloud321",
        "ValidityPeriod": "600",
        "ChannelId": "3790",
    }
    # The query on the wire is the canonical query itself.
    assert request.url.query.decode() == canonical_query(wire_params(request))
    assert request.headers["host"] == "dysmsapi.ap-southeast-1.aliyuncs.com"
    assert request.headers["x-acs-action"] == "SendMessageToGlobe"
    assert request.headers["x-acs-version"] == "2018-05-01"
    assert request.headers["x-acs-date"] == "2024-01-02T03:04:05Z"
    assert request.headers["x-acs-signature-nonce"] == "nonce-0"
    assert request.headers["x-acs-content-sha256"] == hashlib.sha256(b"").hexdigest()
    assert request.headers["authorization"].startswith(
        f"ACS3-HMAC-SHA256 Credential={KEY_ID},"
        "SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
        "Signature="
    )
    assert request.headers["authorization"] == recompute_authorization(request)
    assert outcome.ok


def test_batch_request_shape_and_echo_field() -> None:
    client, recorder = make_client()
    messages = [sms(1, text="a b"), sms(2, text="你好 🎉"), sms(3, text='quote " and \\')]
    outcomes = client.send(messages)

    [request] = recorder.requests
    params = wire_params(request)
    assert request.headers["x-acs-action"] == "BatchSendMessageToGlobe"
    assert json.loads(params["To"]) == ["85251230001", "85251230002", "85251230003"]
    assert json.loads(params["Message"]) == ["a b", "你好 🎉", 'quote " and \\']
    assert params["Type"] == "NOTIFY"
    assert params["TaskId"] == batch_task_id("b1.00001", 3) == "b1.00001+3"
    assert "From" not in params and "ValidityPeriod" not in params
    assert request.headers["authorization"] == recompute_authorization(request)
    assert [o.provider_message_id for o in outcomes] == ["id-85251230001", "id-85251230002", "id-85251230003"]
    assert all(o.extra["task_id"] == "b1.00001+3" for o in outcomes)


def test_long_parameters_go_in_a_signed_form_body() -> None:
    client, recorder = make_client(max_query_length=50)
    outcomes = client.send([sms(i, text=f"long enough text {i} ✓") for i in range(1, 4)])

    [request] = recorder.requests
    assert request.url.query == b""
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["x-acs-content-sha256"] == hashlib.sha256(request.content).hexdigest()
    assert "content-type" in request.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert json.loads(wire_params(request)["Message"])[2] == "long enough text 3 ✓"
    assert request.headers["authorization"] == recompute_authorization(request)
    assert all(o.ok for o in outcomes)


def test_a_full_batch_is_one_call() -> None:
    client, recorder = make_client()
    messages = [sms(i, to=f"+4479{i:08d}") for i in range(1000)]
    outcomes = client.send(messages)
    assert len(recorder.requests) == 1
    assert len(json.loads(wire_params(recorder.requests[0])["To"])) == 1000
    assert [o.message_id for o in outcomes] == [m.message_id for m in messages]
    assert all(o.ok for o in outcomes)


@given(st.lists(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40), min_size=1, max_size=30))
def test_encoded_json_array_is_the_encoding_of_the_json(texts: list[str]) -> None:
    expected = percent_encode(json.dumps(texts, separators=(",", ":")))
    assert encoded_json_array(texts) == expected
    assert encoded_json_array(texts * 5) == percent_encode(json.dumps(texts * 5, separators=(",", ":")))


def test_timeouts_and_connection_reuse() -> None:
    client, recorder = make_client(connect_timeout=1.5, read_timeout=7)
    client.send([sms(1)])
    client.send([sms(2)])
    assert recorder.requests[0].extensions["timeout"] == {"connect": 1.5, "read": 7.0, "write": 7.0, "pool": 1.5}
    owned = AliyunClient(AliyunSettings(access_key_id=KEY_ID, access_key_secret=SECRET))
    assert owned._http.timeout.read == 10.0 and owned._http.timeout.connect == 3.0
    with owned:
        pass
    assert owned._http.is_closed


def test_is_a_provider() -> None:
    client, _ = make_client()
    provider: Provider = client
    assert provider.name is ProviderName.ALIYUN
    assert provider.max_recipients_per_call == 1000
    assert provider.send([]) == []


# ---------------------------------------------------------------------------------------------------------------
# Planning


def test_plan_groups_by_type_sender_and_validity() -> None:
    messages = [
        sms(1),
        sms(2, type=MessageType.OTP),
        sms(3),
        sms(4, sender_id="Shop"),
        sms(5, sender_id="Shop"),
        sms(6, type=MessageType.MKT),
        sms(7, validity_seconds=60),
    ]
    plan = plan_calls(messages)
    assert [(c.operation, c.indexes) for c in plan] == [
        ("BatchSendMessageToGlobe", (0, 2)),
        ("SendMessageToGlobe", (1,)),
        ("BatchSendMessageToGlobe", (3, 4)),
        ("SendMessageToGlobe", (5,)),
        ("SendMessageToGlobe", (6,)),
    ]


def test_plan_never_repeats_a_number_in_one_batch() -> None:
    messages = [sms(1), sms(2), sms(3, to=sms(1).to), sms(4)]
    plan = plan_calls(messages)
    assert [(c.operation, c.indexes) for c in plan] == [
        ("BatchSendMessageToGlobe", (0, 1)),
        ("BatchSendMessageToGlobe", (2, 3)),
    ]


def test_plan_min_and_max_batch_size() -> None:
    messages = [sms(i) for i in range(5)]
    assert {c.operation for c in plan_calls(messages, min_batch_size=6)} == {"SendMessageToGlobe"}
    assert [c.indexes for c in plan_calls(messages, max_batch_size=2)] == [(0, 1), (2, 3), (4,)]
    assert [c.operation for c in plan_calls(messages[:1], min_batch_size=1)] == ["BatchSendMessageToGlobe"]
    assert [c.operation for c in plan_calls(messages[:1])] == ["SendMessageToGlobe"]


def test_send_can_be_told_to_avoid_batches() -> None:
    client, recorder = make_client()
    outcomes = client.send([sms(1), sms(2), sms(3)], min_batch_size=4)
    assert [r.headers["x-acs-action"] for r in recorder.requests] == ["SendMessageToGlobe"] * 3
    assert [o.message_id for o in outcomes] == ["b1.00001", "b1.00002", "b1.00003"]
    assert [o.extra["task_id"] for o in outcomes] == ["b1.00001", "b1.00002", "b1.00003"]


_message_fields = st.builds(
    lambda n, type_, sender, validity: sms(n, type=type_, sender_id=sender, validity_seconds=validity),
    st.integers(1, 6),
    st.sampled_from(list(MessageType)),
    st.sampled_from([None, "Shop"]),
    st.sampled_from([None, 60]),
)


@settings(max_examples=200)
@given(st.lists(_message_fields, max_size=40), st.integers(1, 5), st.integers(1, 6))
def test_plan_properties(messages: list[OutboundSms], min_batch: int, max_batch: int) -> None:
    plan = plan_calls(messages, min_batch_size=min_batch, max_batch_size=max_batch)
    covered = sorted(i for call in plan for i in call.indexes)
    assert covered == list(range(len(messages)))
    assert [call.indexes[0] for call in plan] == sorted(call.indexes[0] for call in plan)
    for call in plan:
        group = [messages[i] for i in call.indexes]
        if call.operation == "SendMessageToGlobe":
            assert len(call.indexes) == 1
            continue
        assert min_batch <= len(group) <= max_batch
        assert len({(m.type, m.sender_id, m.validity_seconds) for m in group}) == 1
        assert group[0].type is not MessageType.OTP
        assert len({m.to for m in group}) == len(group)
        assert list(call.indexes) == sorted(call.indexes)


# ---------------------------------------------------------------------------------------------------------------
# Validation before sending


INVALID = [
    ({"template_id": "T1", "text": None}, "template_id", "free text only"),
    ({"template_params": ("a",)}, "template_id", "free text only"),
    ({"text": None}, "text", "required"),
    ({"text": ""}, "text", "required"),
    ({"text": "bad \ud800"}, "text", "valid Unicode"),
    ({"to": "85251230001"}, "to", "leading '+'"),
    ({"to": "+8613800138000"}, "to", "Chinese mainland"),
    ({"to": "+85212ab"}, "to", "6-15 digits"),
    ({"to": "+0123456789"}, "to", "6-15 digits"),
    ({"to": "+1234567890123456"}, "to", "6-15 digits"),
    ({"sender_id": "Ali-Cloud"}, "sender_id", "letters and digits"),
    ({"sender_id": "Alicloud1234"}, "sender_id", "at most 11"),
    ({"sender_id": "1234567890123456"}, "sender_id", "at most 15"),
    ({"sender_id": "Ålicloud"}, "sender_id", "letters and digits"),
    ({"sender_id": ""}, "sender_id", "letters and digits"),
    ({"message_id": ""}, "message_id", "1-250"),
    ({"message_id": "x" * 251}, "message_id", "1-250"),
    ({"validity_seconds": 0}, "validity_seconds", "positive"),
]


@pytest.mark.parametrize(("bad", "field", "rule_part"), INVALID)
def test_invalid_messages_are_refused_before_anything_is_sent(
    bad: dict[str, object], field: str, rule_part: str
) -> None:
    client, recorder = make_client()
    messages = [sms(1), sms(2, type=MessageType.OTP), sms(3, **bad)]
    with pytest.raises(InvalidProviderRequest) as caught:
        client.send(messages)
    assert caught.value.field == field
    assert rule_part in caught.value.rule
    assert caught.value.rule.endswith("(message 3 of 3)")  # which message of the call
    assert recorder.requests == []


@pytest.mark.parametrize(("bad", "field", "rule_part"), INVALID)
def test_check_names_the_same_rule_for_one_message(bad: dict[str, object], field: str, rule_part: str) -> None:
    client, recorder = make_client()
    problem = client.check(sms(3, **bad))
    assert problem is not None
    assert problem.field == field
    assert rule_part in problem.rule
    assert client.check(sms(3)) is None
    assert recorder.requests == []


def test_one_invalid_message_does_not_fail_the_others_of_its_call() -> None:
    client, recorder = make_client()
    messages = [sms(1), sms(2, sender_id="Ali-Cloud"), sms(3), sms(4, to="+8613800138000")]
    outcomes = send_all(client, messages)
    assert [o.message_id for o in outcomes] == ["b1.00001", "b1.00002", "b1.00003", "b1.00004"]
    assert [o.provider_message_id for o in outcomes] == ["id-85251230001", None, "id-85251230003", None]
    assert outcomes[1].error is not None and outcomes[3].error is not None
    assert (outcomes[1].error.category, outcomes[1].error.code) == (ErrorCategory.REQUEST, "INVALID_REQUEST")
    assert outcomes[1].error.message.startswith("sender_id: ")
    assert outcomes[3].error.message.startswith("to: numbers in the Chinese mainland")
    [request] = recorder.requests  # the two valid ones, in one batch call
    assert json.loads(wire_params(request)["To"]) == ["85251230001", "85251230003"]


@pytest.mark.parametrize(
    "good", [{"sender_id": "Alicloud321"}, {"sender_id": "123456789012345"}, {"message_id": "x" * 250}]
)
def test_limits_themselves_are_allowed(good: dict[str, object]) -> None:
    client, _ = make_client()
    [outcome] = client.send([sms(1, **good)])
    assert outcome.ok


def test_more_than_a_batch_per_send_is_refused() -> None:
    client, recorder = make_client()
    with pytest.raises(InvalidProviderRequest) as caught:
        client.send([sms(i, to=f"+4479{i:08d}") for i in range(1001)])
    assert caught.value.field == "messages"
    assert recorder.requests == []


# ---------------------------------------------------------------------------------------------------------------
# Reading answers


def answer_with(status: int, body: object) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)

    return answer


def test_single_success_carries_segments_and_number_detail() -> None:
    client, _ = make_client()
    [outcome] = client.send([sms(1)])
    assert outcome.provider_message_id == "id-85251230001"
    assert outcome.segments == 2
    assert outcome.extra == {
        "task_id": "b1.00001",
        "request_id": "REQ-1",
        "carrier": "CMI",
        "country": "Hongkong, China",
        "region": "HongKong",
    }


def test_single_business_error() -> None:
    body = {"ResponseCode": "MOBILE_NUMBER_ILLEGAL", "ResponseDescription": "bad number", "RequestId": "R"}
    client, _ = make_client(answer_with(200, body))
    [outcome] = client.send([sms(1)])
    assert not outcome.ok and outcome.provider_message_id is None
    assert outcome.error is not None
    assert (outcome.error.category, outcome.error.code, outcome.error.message, outcome.error.http_status) == (
        ErrorCategory.RECIPIENT,
        "MOBILE_NUMBER_ILLEGAL",
        "bad number",
        200,
    )


@pytest.mark.parametrize(
    ("status", "code", "category"),
    [
        (400, "Throttling.User", ErrorCategory.THROTTLED),
        (400, "SignatureDoesNotMatch", ErrorCategory.CONFIG),
        (404, "InvalidAccessKeyId.NotFound", ErrorCategory.CONFIG),
        (400, "InvalidTimeStamp.Expired", ErrorCategory.CONFIG),
        (400, "SignatureNonceUsed", ErrorCategory.RETRYABLE),
        (500, "InternalError", ErrorCategory.UNKNOWN_OUTCOME),
        (503, "ServiceUnavailable", ErrorCategory.RETRYABLE),
    ],
)
def test_gateway_errors_apply_to_every_recipient_of_the_call(status: int, code: str, category: ErrorCategory) -> None:
    body = {"RequestId": "R", "HostId": "h", "Code": code, "Message": "raw message", "Recommend": "url"}
    client, _ = make_client(answer_with(status, body))
    outcomes = client.send([sms(1), sms(2)])
    for outcome in outcomes:
        assert outcome.error is not None
        assert (outcome.error.category, outcome.error.code, outcome.error.http_status) == (category, code, status)
        assert outcome.error.message == "raw message"
        assert outcome.extra == {"task_id": "b1.00001+2", "request_id": "R"}


def test_batch_failed_list_is_per_recipient() -> None:
    body = {
        "ResponseCode": "OK",
        "RequestId": "R",
        "SuccessCount": "2",
        "MessageIdList": '["m1","m3"]',
        "FailedList": '["85251230002"]',
    }
    client, _ = make_client(answer_with(200, body))
    outcomes = client.send([sms(1), sms(2), sms(3)])
    assert [o.provider_message_id for o in outcomes] == ["m1", None, "m3"]
    failed = outcomes[1].error
    assert failed is not None and failed.code == "FailedList" and failed.category is ErrorCategory.RECIPIENT


def test_batch_lists_may_come_as_real_arrays() -> None:
    body = {"ResponseCode": "OK", "MessageIdList": ["m1", "m2"], "FailedList": [], "SuccessCount": 2}
    client, _ = make_client(answer_with(200, body))
    assert [o.provider_message_id for o in client.send([sms(1), sms(2)])] == ["m1", "m2"]


def test_ids_are_kept_as_receipts_give_them_back_and_an_id_of_spaces_is_none() -> None:
    # " m1" was stored as sent, and a receipt for "m1" matched nothing; a MessageId " " made a SUBMITTED record
    # with an id nothing matches (a review).
    body = {"ResponseCode": "OK", "MessageIdList": '[" m1","m2 "]', "FailedList": "[]", "SuccessCount": "2"}
    client, _ = make_client(answer_with(200, body))
    assert [o.provider_message_id for o in client.send([sms(1), sms(2)])] == ["m1", "m2"]
    client, _ = make_client(answer_with(200, {"ResponseCode": "OK", "MessageId": " ", "RequestId": "R"}))
    [outcome] = client.send([sms(1)])
    assert outcome.provider_message_id is None
    assert outcome.error is not None and outcome.error.category is ErrorCategory.UNKNOWN_OUTCOME


def test_batch_business_error_fails_the_whole_call() -> None:
    body = {"ResponseCode": "AMOUNT_NOT_ENOUGH", "ResponseDescription": "no money", "RequestId": "R"}
    client, _ = make_client(answer_with(200, body))
    outcomes = client.send([sms(1), sms(2)])
    assert all(o.error is not None and o.error.code == "AMOUNT_NOT_ENOUGH" for o in outcomes)
    assert all(o.error is not None and o.error.category is ErrorCategory.CONFIG for o in outcomes)


@pytest.mark.parametrize(
    "body",
    [
        {"ResponseCode": "OK", "MessageIdList": '["m1"]', "FailedList": "[]", "SuccessCount": "1"},
        {"ResponseCode": "OK", "MessageIdList": '["m1","m2","m3"]', "FailedList": "[]"},
        {"ResponseCode": "OK", "MessageIdList": '["m1","m2"]', "FailedList": "[]", "SuccessCount": "3"},
        # Blank or repeated ids pair with no number: a blank one was recorded SUBMITTED without an id (a review).
        {"ResponseCode": "OK", "MessageIdList": '["","m2"]', "FailedList": "[]", "SuccessCount": "2"},
        {"ResponseCode": "OK", "MessageIdList": '["m1"," "]', "FailedList": "[]"},
        {"ResponseCode": "OK", "MessageIdList": '["m1","m1"]', "FailedList": "[]", "SuccessCount": "2"},
    ],
)
def test_batch_counts_that_do_not_add_up_are_unknown_outcomes(body: dict[str, str]) -> None:
    client, _ = make_client(answer_with(200, body))
    outcomes = client.send([sms(1), sms(2)])
    for outcome in outcomes:
        assert outcome.error is not None
        assert (outcome.error.category, outcome.error.code) == (
            ErrorCategory.UNKNOWN_OUTCOME,
            "MESSAGE_ID_LIST_MISMATCH",
        )


def test_batch_mismatch_keeps_failed_numbers_failed() -> None:
    body = {"ResponseCode": "OK", "MessageIdList": "[]", "FailedList": '["85251230002"]'}
    client, _ = make_client(answer_with(200, body))
    first, second = client.send([sms(1), sms(2)])
    assert first.error is not None and first.error.category is ErrorCategory.UNKNOWN_OUTCOME
    assert second.error is not None and second.error.code == "FailedList"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"<html>not json</html>"),
        (200, b""),
        (200, ["a", "list"]),
        (200, {"RequestId": "R"}),
        (200, {"ResponseCode": ""}),
        (200, {"ResponseCode": "OK"}),  # accepted without an id
        (200, {"ResponseCode": "OK", "MessageId": "m", "Segments": "many"}),
        (200, {"ResponseCode": "OK", "MessageId": "m", "NumberDetail": "not an object"}),
        (200, {"Code": ""}),
    ],
)
def test_malformed_single_answers_are_unknown_outcomes(status: int, body: object) -> None:
    client, _ = make_client(answer_with(status, body))
    [outcome] = client.send([sms(1)])
    assert outcome.error is not None
    assert outcome.error.category is ErrorCategory.UNKNOWN_OUTCOME
    assert outcome.error.code == "MALFORMED_RESPONSE"


@pytest.mark.parametrize(
    "body",
    [
        {"ResponseCode": "OK", "MessageIdList": "not json", "FailedList": "[]"},
        {"ResponseCode": "OK", "MessageIdList": '{"a": 1}', "FailedList": "[]"},
        {"ResponseCode": "OK", "MessageIdList": '["m1","m2"]', "FailedList": '["4400000000"]'},
        {"ResponseCode": "OK", "MessageIdList": '["m1","m2"]', "SuccessCount": "-1"},
    ],
)
def test_malformed_batch_answers_are_unknown_outcomes(body: dict[str, str]) -> None:
    client, _ = make_client(answer_with(200, body))
    for outcome in client.send([sms(1), sms(2)]):
        assert outcome.error is not None
        assert (outcome.error.category, outcome.error.code) == (ErrorCategory.UNKNOWN_OUTCOME, "MALFORMED_RESPONSE")


def test_malformed_messages_do_not_echo_the_answer() -> None:
    client, _ = make_client(answer_with(200, {"ResponseCode": "OK", "MessageId": "m", "Segments": "n+85299998888"}))
    [outcome] = client.send([sms(1)])
    assert outcome.error is not None and "+85299998888" not in outcome.error.message


@pytest.mark.parametrize(
    ("status", "category"),
    [
        # A bare 500 may come after the backend acted: never resent blindly. 502/503: nobody took the call.
        (500, ErrorCategory.UNKNOWN_OUTCOME),
        (501, ErrorCategory.UNKNOWN_OUTCOME),
        (502, ErrorCategory.RETRYABLE),
        (503, ErrorCategory.RETRYABLE),
        (504, ErrorCategory.UNKNOWN_OUTCOME),
    ],
)
def test_error_status_without_alibaba_body(status: int, category: ErrorCategory) -> None:
    client, _ = make_client(answer_with(status, b"<html>Bad Gateway</html>"))
    [outcome] = client.send([sms(1)])
    assert outcome.error is not None
    assert (outcome.error.category, outcome.error.code, outcome.error.http_status) == (
        category,
        f"HTTP_{status}",
        status,
    )


def test_outcomes_follow_input_order_across_calls() -> None:
    client, recorder = make_client()
    messages = [sms(1), sms(2, type=MessageType.OTP), sms(3), sms(4, type=MessageType.OTP)]
    outcomes = client.send(messages)
    assert [o.message_id for o in outcomes] == ["b1.00001", "b1.00002", "b1.00003", "b1.00004"]
    assert [o.provider_message_id for o in outcomes] == [
        "id-85251230001",
        "id-85251230002",
        "id-85251230003",
        "id-85251230004",
    ]
    assert [r.headers["x-acs-action"] for r in recorder.requests] == [
        "BatchSendMessageToGlobe",
        "SendMessageToGlobe",
        "SendMessageToGlobe",
    ]


# ---------------------------------------------------------------------------------------------------------------
# Transport failures: never resend what may have arrived


def raising(exc: Exception) -> Handler:
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc

    return answer


@pytest.mark.parametrize(
    ("exc", "category", "code"),
    [
        (httpx.ConnectError("refused"), ErrorCategory.RETRYABLE, "CONNECT_ERROR"),
        (httpx.ConnectTimeout("slow"), ErrorCategory.RETRYABLE, "CONNECT_TIMEOUT"),
        (httpx.PoolTimeout("busy"), ErrorCategory.RETRYABLE, "POOL_TIMEOUT"),
        (httpx.ReadTimeout("slow"), ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT"),
        (httpx.WriteTimeout("slow"), ErrorCategory.UNKNOWN_OUTCOME, "WRITE_TIMEOUT"),
        (httpx.RemoteProtocolError("closed"), ErrorCategory.UNKNOWN_OUTCOME, "REMOTE_PROTOCOL_ERROR"),
        (httpx.WriteError("broken pipe"), ErrorCategory.UNKNOWN_OUTCOME, "WRITE_ERROR"),
        (httpx.ReadError("reset"), ErrorCategory.UNKNOWN_OUTCOME, "READ_ERROR"),
    ],
)
def test_transport_failures(exc: Exception, category: ErrorCategory, code: str) -> None:
    client, recorder = make_client(raising(exc))
    outcomes = client.send([sms(1), sms(2)])
    assert len(recorder.requests) == 1  # tried once, never again
    for outcome in outcomes:
        assert outcome.error is not None
        assert (outcome.error.category, outcome.error.code) == (category, code)
        assert outcome.provider_message_id is None


def test_one_failed_call_does_not_stop_the_others() -> None:
    calls = iter([httpx.ReadTimeout("slow")])

    def answer(request: httpx.Request) -> httpx.Response:
        failure = next(calls, None)
        if failure is not None:
            raise failure
        return ok_answer(request)

    client, recorder = make_client(answer)
    first, second = client.send([sms(1, type=MessageType.OTP), sms(2, type=MessageType.OTP)])
    assert first.error is not None and first.error.code == "READ_TIMEOUT"
    assert second.ok
    assert len(recorder.requests) == 2


# ---------------------------------------------------------------------------------------------------------------
# Configuration and secrets

ENV = {
    "GLOBESMS_ALIYUN_ACCESS_KEY_ID": KEY_ID,
    "GLOBESMS_ALIYUN_ACCESS_KEY_SECRET": SECRET,
}


def test_settings_from_environment_defaults() -> None:
    settings = settings_from_environment(ENV)
    assert settings.endpoint == "https://dysmsapi.ap-southeast-1.aliyuncs.com"
    assert settings.access_key_id == KEY_ID
    assert settings.access_key_secret.get_secret_value() == SECRET
    assert settings.channel_id is None
    assert (settings.connect_timeout, settings.read_timeout) == (3.0, 10.0)


def test_settings_from_environment_overrides() -> None:
    settings = settings_from_environment(
        {
            **ENV,
            "GLOBESMS_ALIYUN_ENDPOINT": "http://127.0.0.1:9101/",
            "GLOBESMS_ALIYUN_CHANNEL_ID": "3790",
            "GLOBESMS_HTTP_CONNECT_TIMEOUT": "0.5",
            "GLOBESMS_HTTP_READ_TIMEOUT": "2",
        }
    )
    assert settings.endpoint == "http://127.0.0.1:9101"
    assert settings.channel_id == "3790"
    assert (settings.connect_timeout, settings.read_timeout) == (0.5, 2.0)
    client = from_environment({**ENV, "GLOBESMS_ALIYUN_ENDPOINT": "http://127.0.0.1:9101"})
    assert isinstance(client, AliyunClient)
    client.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GLOBESMS_ALIYUN_ACCESS_KEY_SECRET": SECRET}, "GLOBESMS_ALIYUN_ACCESS_KEY_ID is not set"),
        ({"GLOBESMS_ALIYUN_ACCESS_KEY_ID": KEY_ID}, "GLOBESMS_ALIYUN_ACCESS_KEY_SECRET is not set"),
        ({}, "GLOBESMS_ALIYUN_ACCESS_KEY_ID is not set; GLOBESMS_ALIYUN_ACCESS_KEY_SECRET is not set"),
        ({**ENV, "GLOBESMS_HTTP_READ_TIMEOUT": "soon"}, "GLOBESMS_HTTP_READ_TIMEOUT must be a positive number"),
        ({**ENV, "GLOBESMS_HTTP_READ_TIMEOUT": "inf"}, "GLOBESMS_HTTP_READ_TIMEOUT must be a positive number"),
        ({**ENV, "GLOBESMS_HTTP_CONNECT_TIMEOUT": "0"}, "GLOBESMS_HTTP_CONNECT_TIMEOUT must be a positive number"),
        # Longer would leave a dispatcher no time to start a call within its 30 s (dispatch.sending).
        ({**ENV, "GLOBESMS_HTTP_READ_TIMEOUT": "15.5"}, "GLOBESMS_HTTP_READ_TIMEOUT .* at most 15"),
        ({**ENV, "GLOBESMS_HTTP_CONNECT_TIMEOUT": "6"}, "GLOBESMS_HTTP_CONNECT_TIMEOUT .* at most 5"),
        ({**ENV, "GLOBESMS_ALIYUN_ENDPOINT": "ftp://x"}, "GLOBESMS_ALIYUN_ENDPOINT: .*http"),
    ],
)
def test_bad_environment_is_reported_without_secrets(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        settings_from_environment(env)
    assert SECRET not in str(caught.value)
    assert "ftp://x" not in str(caught.value)  # a variable's value is never shown: it may be a secret
    # Nothing chained that a traceback would print (pydantic's error holds the inputs).
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_blank_variables_are_unset_and_values_are_stripped() -> None:
    settings = settings_from_environment(
        {
            "GLOBESMS_ALIYUN_ACCESS_KEY_ID": f" {KEY_ID}\n",
            "GLOBESMS_ALIYUN_ACCESS_KEY_SECRET": f"{SECRET}\n",
            "GLOBESMS_ALIYUN_CHANNEL_ID": "  ",
            "GLOBESMS_ALIYUN_ENDPOINT": "",
        }
    )
    assert (settings.access_key_id, settings.access_key_secret.get_secret_value()) == (KEY_ID, SECRET)
    assert (settings.channel_id, settings.endpoint) == (None, "https://dysmsapi.ap-southeast-1.aliyuncs.com")


def test_secrets_never_show(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client, recorder = make_client(raising(httpx.ReadTimeout(f"leak {SECRET}?")))
    outcomes = client.send([sms(1), sms(2, type=MessageType.OTP)])
    client_b, recorder_b = make_client(answer_with(400, {"Code": "SignatureDoesNotMatch", "Message": "no"}))
    outcomes += client_b.send([sms(3)])
    shown = [repr(client), str(client), repr(client.settings), str(client.settings), caplog.text]
    shown += [repr(client._signer), str(client._signer)]
    shown += [repr(o) for o in outcomes]
    for request in recorder.requests + recorder_b.requests:
        shown += [str(request.url), repr(dict(request.headers)), request.content.decode()]
    assert all(SECRET not in text for text in shown)
    assert "LTAItestkey" in repr(client)


# ---------------------------------------------------------------------------------------------------------------
# Planning for the rate limiter: `plan` before sending, `send(plan=...)` makes exactly those calls


def request_bytes(request: httpx.Request) -> tuple[str, dict[str, str], bytes]:
    return str(request.url), dict(request.headers), request.content


def test_plan_is_what_send_makes_and_batch_calls_may_go_as_singles() -> None:
    client, recorder = make_client()
    messages = [sms(1), sms(2, type=MessageType.OTP), sms(3)]
    plan = client.plan(messages)
    assert [(c.operation, c.indexes, c.singles) for c in plan] == [
        ("BatchSendMessageToGlobe", (0, 2), "SendMessageToGlobe"),
        ("SendMessageToGlobe", (1,), None),
    ]
    client.send(messages)
    assert [r.headers["x-acs-action"] for r in recorder.requests] == [c.operation for c in plan]


def test_send_with_its_own_plan_makes_byte_identical_requests() -> None:
    messages = [sms(1), sms(2, type=MessageType.OTP), sms(3), sms(4, sender_id="Shop"), sms(5, sender_id="Shop")]
    planned_client, planned = make_client()
    plain_client, plain = make_client()
    outcomes = planned_client.send(messages, plan=planned_client.plan(messages))
    assert outcomes == plain_client.send(messages)
    assert [request_bytes(r) for r in planned.requests] == [request_bytes(r) for r in plain.requests]


def test_a_batch_call_split_into_singles_sends_the_single_requests() -> None:
    messages = [sms(1), sms(2), sms(3)]
    split_client, split = make_client()
    [batch] = split_client.plan(messages)
    outcomes = split_client.send(messages, plan=batch.as_singles())
    singles_client, singles = make_client()
    assert outcomes == singles_client.send(messages, min_batch_size=4)
    assert [r.headers["x-acs-action"] for r in split.requests] == ["SendMessageToGlobe"] * 3
    assert [request_bytes(r) for r in split.requests] == [request_bytes(r) for r in singles.requests]


@pytest.mark.parametrize(
    ("plan", "rule"),
    [
        ([PlannedCall("SendMessageToGlobe", (0,))], "every message exactly once"),
        ([PlannedCall("SendMessageToGlobe", (0, 1))], "carries one message"),
        ([PlannedCall("BatchSendMessageToGlobe", (0, 1)), PlannedCall("SendMessageToGlobe", (1,))], "exactly once"),
        ([PlannedCall("SendSomethingElse", (0, 1))], "unknown operation"),
    ],
)
def test_a_plan_alibaba_would_not_take_is_refused_before_sending(plan: list[PlannedCall], rule: str) -> None:
    client, recorder = make_client()
    with pytest.raises(InvalidProviderRequest) as refused:
        client.send([sms(1), sms(2)], plan=plan)
    assert refused.value.field == "plan" and rule in refused.value.rule
    assert recorder.requests == []


def test_a_batch_call_of_messages_that_cannot_share_one_is_refused() -> None:
    client, recorder = make_client()
    for messages in (
        [sms(1, type=MessageType.OTP), sms(2, type=MessageType.OTP)],  # OTP is no batch Type
        [sms(1), sms(2, sender_id="Shop")],  # different From
        [sms(1), sms(2, to=sms(1).to)],  # the same number twice
    ):
        with pytest.raises(InvalidProviderRequest, match="BatchSendMessageToGlobe"):
            client.send(messages, plan=[PlannedCall("BatchSendMessageToGlobe", (0, 1))])
    assert recorder.requests == []


def test_plan_refuses_what_send_refuses() -> None:
    client, _ = make_client()
    with pytest.raises(InvalidProviderRequest):
        client.plan([sms(1, text=None, template_id="T1")])
    with pytest.raises(InvalidProviderRequest):
        client.plan([sms(i) for i in range(1001)])


@pytest.mark.parametrize(("bad", "field", "rule_part"), INVALID)
def test_a_large_send_names_the_same_rule_and_message(bad: dict[str, object], field: str, rule_part: str) -> None:
    # More messages than `client.FEW`: checked field by field over the whole send (`all_valid`) before any one
    # message is looked at; the refusal must still name the first bad message.
    client, recorder = make_client()
    messages = [sms(n) for n in range(1, 9)]
    messages[5] = sms(6, **bad)
    with pytest.raises(InvalidProviderRequest) as caught:
        client.send(messages)
    assert (caught.value.field, caught.value.rule.endswith("(message 6 of 8)")) == (field, True)
    assert rule_part in caught.value.rule
    assert recorder.requests == []


_NUMBERS = st.one_of(
    st.from_regex(r"\+[1-9][0-9]{5,14}", fullmatch=True),  # valid
    st.sampled_from(
        ["+8613800138000", "+0123456789", "+123456", "+1234567890123456", "85251230001", "", "+" + "1" * 300]
    ),
    st.sampled_from(["+85212ab", "+852\n+12345", "+852+1234567", "++85212345678", "+٣٣٣٣٣٣٣", "+85251230001\n"]),
    st.text(max_size=18),
)
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "to": _NUMBERS,
        "text": st.one_of(st.none(), st.just(""), st.just("bad \ud800"), st.text(max_size=20)),
        "template_id": st.sampled_from([None, "", "T1"]),
        "template_params": st.sampled_from([(), ("a",)]),
        "sender_id": st.sampled_from([None, "", "Acme", "Ali-Cloud", "Alicloud1234", "123456789012345", "Ålicloud"]),
        "message_id": st.sampled_from(["", "x" * 250, "x" * 251]),
        "validity_seconds": st.sampled_from([None, 0, 1, -5, 3600]),
    },
)


@settings(max_examples=300)
@given(st.lists(_FIELDS, max_size=12), st.integers(0, 11))
def test_all_valid_agrees_with_the_rules_message_by_message(changes: list[dict[str, Any]], valid_from: int) -> None:
    # Mostly-valid sends (the first `valid_from` change nothing) as well as sends with bad values anywhere.
    messages = [sms(n, **(change if n > valid_from else {})) for n, change in enumerate(changes, start=1)]
    expected = all(message_violation(message) is None for message in messages)
    assert all_valid(messages) == expected
    assert all_valid(messages, Fields.of(messages)) == expected


@given(st.lists(st.from_regex(r"\+[1-9][0-9]{5,14}", fullmatch=True), min_size=1, max_size=30))
def test_wire_numbers_drop_the_plus(numbers: list[str]) -> None:
    assert wire_numbers(numbers) == tuple(number[1:] for number in numbers)
