"""HuaweiClient against httpx.MockTransport: request shape, echo field, validation, response parsing, transport
failures, batch caps and splitting."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from globesms.dispatch.sending import send_all
from globesms.errors import ErrorCategory, InvalidProviderRequest
from globesms.models.outbound import OutboundSms, ProviderName
from globesms.ports import PlannedCall
from globesms.providers.huawei import AuthMode, HuaweiClient, HuaweiSettings, from_environment, signer
from globesms.providers.huawei import client as huawei_client
from globesms.providers.huawei.client import MAX_BODY_BYTES, OPERATION, is_channel_number
from globesms.routing.capabilities import CAPABILITIES

SECRET = "s3cr3t-app-secret-value"
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
NONCE = "66C92B11FF8A425FB8D4CCFE0ED9ED1F"
ENDPOINT = "https://smsapi.ap-southeast-1.myhuaweicloud.com:443"

Handler = Callable[[httpx.Request], httpx.Response]


def settings(**overrides: Any) -> HuaweiSettings:
    values: dict[str, Any] = {
        "endpoint": ENDPOINT,
        "app_key": "appKey123",
        "app_secret": SecretStr(SECRET),
        "sender": "isms100000001",
        "mainland_sender": "csms100000001",
        "signature": "华为云短信测试",
        "status_callback": "https://hooks.example.com/huawei",
    }
    values.update(overrides)
    return HuaweiSettings(**values)


class Recorder:
    """A MockTransport handler that records every request and answers with `answer(request)`."""

    def __init__(self, answer: Handler | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self._answer = answer or success_for_all

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._answer(request)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


def numbers_of(body: dict[str, Any]) -> list[str]:
    return [number for entry in body["smsContent"] for number in entry["to"]]


def success_for_all(request: httpx.Request, status: str = "000000") -> httpx.Response:
    body = json.loads(request.content)
    result = [
        {
            "originTo": number,
            "createTime": "2024-05-06T07:08:09Z",
            "from": body["from"],
            "smsMsgId": f"id-{number}",
            "status": status,
            "countryId": "CN" if number.startswith("+86") else "SG",
            "total": 2,
        }
        for number in numbers_of(body)
    ]
    return httpx.Response(200, json={"code": "000000", "description": "Success", "result": result})


def make_client(recorder: Handler, **overrides: Any) -> HuaweiClient:
    return HuaweiClient(
        settings(**overrides),
        http=httpx.Client(transport=httpx.MockTransport(recorder)),
        clock=lambda: NOW,
        nonce=lambda: NONCE,
    )


def sms(message_id: str, to: str, template_id: str = "tplA", params: tuple[str, ...] = ("123456",)) -> OutboundSms:
    return OutboundSms(message_id=message_id, to=to, template_id=template_id, template_params=params)


# ------------------------------------------------------------------------------------------------ request shape


def test_provider_attributes() -> None:
    client = make_client(Recorder())
    assert client.name is ProviderName.HUAWEI
    assert client.max_recipients_per_call == 500


def test_request_line_headers_and_body() -> None:
    recorder = Recorder()
    client = make_client(recorder)
    outcomes = client.send(
        [
            sms("m1", "+6591000001", "tplA", ("111",)),
            sms("m2", "+6591000002", "tplA", ("111",)),  # same template + params: same entry
            sms("m3", "+6591000003", "tplA", ("222",)),
            sms("m4", "+6591000004", "tplB", ()),  # no variables: no templateParas
        ]
    )
    [request] = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == "https://smsapi.ap-southeast-1.myhuaweicloud.com/sms/batchSendDiffSms/v1"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Host"] == "smsapi.ap-southeast-1.myhuaweicloud.com:443"  # as configured, and signed
    assert json.loads(request.content) == {
        "from": "isms100000001",
        "statusCallback": "https://hooks.example.com/huawei",
        "extend": "m1",
        "smsContent": [
            {"to": ["+6591000001", "+6591000002"], "templateId": "tplA", "templateParas": ["111"]},
            {"to": ["+6591000003"], "templateId": "tplA", "templateParas": ["222"]},
            {"to": ["+6591000004"], "templateId": "tplB"},
        ],
    }
    assert [o.message_id for o in outcomes] == ["m1", "m2", "m3", "m4"]
    assert all(o.ok and o.extra["extend"] == "m1" for o in outcomes)


def test_body_is_ascii_json_with_escapes() -> None:
    recorder = Recorder()
    make_client(recorder).send([sms("m1", "+6591000001", "tplA", ('验证码 "1+2" \\ ~*%', "\u2028"))])
    raw = recorder.requests[0].content
    assert raw.isascii()
    assert json.loads(raw)["smsContent"][0]["templateParas"] == ['验证码 "1+2" \\ ~*%', "\u2028"]


def test_no_status_callback_when_not_configured() -> None:
    recorder = Recorder()
    make_client(recorder, status_callback=None).send([sms("m1", "+6591000001")])
    assert "statusCallback" not in recorder.bodies()[0]


def test_wsse_headers_verify_with_an_independent_digest() -> None:
    recorder = Recorder()
    make_client(recorder, auth=AuthMode.WSSE).send([sms("m1", "+6591000001")])
    headers = recorder.requests[0].headers
    assert headers["Authorization"] == 'WSSE realm="SDP",profile="UsernameToken",type="Appkey"'
    fields = dict(re.findall(r'(\w+)="([^"]*)"', headers["X-WSSE"]))
    assert fields["Username"] == "appKey123"
    assert fields["Nonce"] == NONCE
    assert fields["Created"] == "2024-05-06T07:08:09Z"
    expected = hashlib.sha256(f"{NONCE}2024-05-06T07:08:09Z{SECRET}".encode()).hexdigest()
    assert base64.b64decode(fields["PasswordDigest"]).decode() == expected
    assert "X-Sdk-Date" not in headers


def test_aksk_signs_exactly_what_is_sent() -> None:
    recorder = Recorder()
    make_client(recorder, auth=AuthMode.AKSK).send([sms("m1", "+6591000001")])
    request = recorder.requests[0]
    assert request.headers["X-Sdk-Date"] == "20240506T070809Z"
    sent = {name: request.headers[name] for name in ("Content-Type", "Host", "X-Sdk-Date")}
    expected = signer.aksk_authorization(
        app_key="appKey123",
        app_secret=SECRET.encode(),
        method="POST",
        path=request.url.path,
        query=(),
        headers=sent,
        body=request.content,
    )
    assert request.headers["Authorization"] == expected
    assert "SignedHeaders=content-type;host;x-sdk-date," in expected
    assert "X-WSSE" not in request.headers


def test_endpoint_base_path_is_requested_and_signed() -> None:
    recorder = Recorder()
    make_client(recorder, auth=AuthMode.AKSK, endpoint="https://gw.example.com/sms-base/").send(
        [sms("m1", "+6591000001")]
    )
    request = recorder.requests[0]
    assert request.url.path == "/sms-base/sms/batchSendDiffSms/v1"
    assert request.headers["Host"] == "gw.example.com"
    sent = {name: request.headers[name] for name in ("Content-Type", "Host", "X-Sdk-Date")}
    expected = signer.aksk_authorization(
        app_key="appKey123",
        app_secret=SECRET.encode(),
        method="POST",
        path="/sms-base/sms/batchSendDiffSms/v1",
        query=(),
        headers=sent,
        body=request.content,
    )
    assert request.headers["Authorization"] == expected


def test_mainland_numbers_go_on_their_own_call_and_outcomes_keep_input_order() -> None:
    recorder = Recorder()
    outcomes = make_client(recorder).send(
        [sms("m1", "+6591000001"), sms("m2", "+8613800000001"), sms("m3", "+6591000002"), sms("m4", "+8613800000002")]
    )
    international, mainland = recorder.bodies()
    assert international["from"] == "isms100000001" and numbers_of(international) == ["+6591000001", "+6591000002"]
    assert "signature" not in international["smsContent"][0]
    assert mainland["from"] == "csms100000001" and numbers_of(mainland) == ["+8613800000001", "+8613800000002"]
    assert mainland["smsContent"][0]["signature"] == "华为云短信测试"
    assert (international["extend"], mainland["extend"]) == ("m1", "m2")
    assert [o.message_id for o in outcomes] == ["m1", "m2", "m3", "m4"]
    assert [o.provider_message_id for o in outcomes] == [
        "id-+6591000001",
        "id-+8613800000001",
        "id-+6591000002",
        "id-+8613800000002",
    ]
    assert [o.extra["extend"] for o in outcomes] == ["m1", "m2", "m1", "m2"]


def test_repeated_number_goes_into_a_later_call() -> None:
    recorder = Recorder()
    outcomes = make_client(recorder).send(
        [sms("m1", "+6591000001"), sms("m2", "+6591000001", params=("9",)), sms("m3", "+6591000002")]
    )
    first, second = recorder.bodies()
    assert numbers_of(first) == ["+6591000001", "+6591000002"]
    assert numbers_of(second) == ["+6591000001"] and second["extend"] == "m2"
    assert [o.message_id for o in outcomes] == ["m1", "m2", "m3"]
    assert all(o.ok for o in outcomes)


def test_sender_id_selects_another_channel_number() -> None:
    recorder = Recorder()
    make_client(recorder).send([sms("m1", "+6591000001")._replace(sender_id="isms200000002"), sms("m2", "+6591000002")])
    assert sorted(body["from"] for body in recorder.bodies()) == ["isms100000001", "isms200000002"]


def with_sender(message: OutboundSms, sender_id: str) -> OutboundSms:
    return message._replace(sender_id=sender_id)


@pytest.mark.parametrize(
    "sender_id",
    [
        "Acme",  # an Alibaba-style sender name: the API takes it for any provider
        "Alicloud321",
        "123456789012345",  # a numeric sender id
        "1069031221280012",  # looks like the docs' older mainland channel, but is as likely a numeric sender id
        "csms200000002",  # a mainland channel number cannot send abroad
        "ISMS200000002",
        "isms",
        "isms20000000x",
        "isms" + "1" * 18,  # 22 characters: longer than `from` may be
        "x" * 40,
    ],
)
def test_a_sender_id_that_is_no_international_channel_number_is_ignored(sender_id: str) -> None:
    recorder = Recorder()
    outcomes = make_client(recorder).send([with_sender(sms("m1", "+6591000001"), sender_id), sms("m2", "+6591000002")])
    [body] = recorder.bodies()  # one call: both on the configured channel
    assert body["from"] == "isms100000001"
    assert all(o.ok for o in outcomes)


def test_a_mainland_recipient_takes_only_a_mainland_channel_number() -> None:
    recorder = Recorder()
    make_client(recorder).send(
        [
            with_sender(sms("m1", "+8613800000001"), "csms200000002"),
            with_sender(sms("m2", "+8613800000002"), "isms200000002"),  # an international channel: ignored
            with_sender(sms("m3", "+8613800000003"), "Acme"),
        ]
    )
    by_sender = {body["from"]: (numbers_of(body), body["smsContent"][0]["signature"]) for body in recorder.bodies()}
    assert by_sender == {
        "csms200000002": (["+8613800000001"], "华为云短信测试"),
        "csms100000001": (["+8613800000002", "+8613800000003"], "华为云短信测试"),
    }


@pytest.mark.parametrize(
    ("sender_id", "kind", "expected"),
    [
        ("isms100000001", "isms", True),
        ("csms100000001", "csms", True),
        ("isms1", "isms", True),
        ("isms" + "9" * 17, "isms", True),  # 21 characters, the most `from` takes
        ("isms" + "9" * 18, "isms", False),
        ("csms100000001", "isms", False),
        ("isms100000001", "csms", False),
        ("isms", "isms", False),
        ("isms 100", "isms", False),
        ("isms\uff11\uff10\uff10", "isms", False),  # full-width digits: digits to str.isdigit, not to Huawei
        ("Isms100", "isms", False),
        ("Acme", "isms", False),
        ("100000001", "isms", False),
        ("", "isms", False),
    ],
)
def test_channel_number_rule(sender_id: str, kind: str, expected: bool) -> None:
    assert is_channel_number(sender_id, kind) is expected


def test_full_batch_of_500_is_one_call() -> None:
    recorder = Recorder()
    messages = [sms(f"m{i}", f"+65910{i:05d}", params=(str(i),)) for i in range(500)]
    outcomes = make_client(recorder).send(messages)
    assert len(recorder.requests) == 1
    assert len(numbers_of(recorder.bodies()[0])) == 500
    assert [o.message_id for o in outcomes] == [m.message_id for m in messages]


def test_body_over_64_kb_is_split_into_calls_that_fit() -> None:
    recorder = Recorder()
    messages = [sms(f"m{i}", f"+65910{i:05d}", params=(f"{i}-" + "x" * 300,)) for i in range(500)]
    outcomes = make_client(recorder).send(messages)
    assert len(recorder.requests) > 1
    assert all(len(request.content) <= MAX_BODY_BYTES for request in recorder.requests)
    sent = [number for body in recorder.bodies() for number in numbers_of(body)]
    assert sorted(sent) == sorted(m.to for m in messages)
    assert [o.message_id for o in outcomes] == [m.message_id for m in messages]
    assert [body["extend"] for body in recorder.bodies()] == [
        next(m.message_id for m in messages if m.to == numbers_of(body)[0]) for body in recorder.bodies()
    ]


# ------------------------------------------------------------------------------------------------- validation


def _too_big_param() -> tuple[str, ...]:
    return ("x" * (MAX_BODY_BYTES + 1),)


@pytest.mark.parametrize(
    ("message", "field", "rule"),
    [
        (OutboundSms(message_id="m", to="+6591000001", text="hello"), "text", "templates only"),
        (OutboundSms(message_id="m", to="+6591000001"), "template_id", "templates only"),
        (sms("m", "+6591000001", template_id="t" * 33), "template_id", "1-32"),
        (sms("m", "6591000001"), "to", "+<country code>"),
        (sms("m", "+65 91000001"), "to", "+<country code>"),
        (sms("m", "+" + "1" * 21), "to", "at most 21"),
        (sms("has space", "+6591000001"), "message_id", "no spaces or braces"),
        (sms("{brace}", "+6591000001"), "message_id", "no spaces or braces"),
        (sms("", "+6591000001"), "message_id", "1-128"),
        (sms("m" * 129, "+6591000001"), "message_id", "1-128"),
        (sms("m", "+6591000001", params=("ok", "")), "template_params", "non-empty"),
        (sms("m", "+6591000001", params=_too_big_param()), "template_params", "at most 65536"),
        (sms("m", "+6591000001", params=("验" * 11000,)), "template_params", "at most 65536"),
        (sms("m", "+6591000001", params=("🎉" * 5500,)), "template_params", "at most 65536"),
    ],
)
def test_invalid_input_is_refused_before_anything_is_sent(message: OutboundSms, field: str, rule: str) -> None:
    recorder = Recorder()
    with pytest.raises(InvalidProviderRequest) as raised:
        make_client(recorder).send([sms("ok", "+6591000009"), message])
    assert raised.value.field == field
    assert rule in raised.value.rule
    assert recorder.requests == []
    problem = make_client(recorder).check(message)  # the same rule, for one message
    assert problem is not None
    assert (problem.field, rule in problem.rule) == (field, True)


@pytest.mark.parametrize("template_id", ["", "t", "t" * 31, "t" * 32, "t" * 33, "t" * 64, "验" * 32, "a b\n"])
def test_routing_takes_exactly_the_template_ids_the_client_sends(template_id: str) -> None:
    """An unregistered id is routed to Huawei, and the registry stores a Huawei id, only in a form this client
    sends: accepted otherwise, the message would fail at dispatch on every send (routing/capabilities.py)."""
    huawei_ids = CAPABILITIES[ProviderName.HUAWEI].template_ids
    assert huawei_ids is not None
    sent = make_client(Recorder()).check(sms("m", "+6591000001", template_id=template_id)) is None
    assert huawei_ids.allow(template_id) is sent


@pytest.mark.parametrize(
    "params",
    [
        ("x" * (MAX_BODY_BYTES - 400),),  # near the limit, but the whole one-recipient body fits
        ("验" * 5000,),  # 30,000 bytes escaped
        ("🎉" * 2500,),  # 30,000 bytes escaped
        ("a",) * 8000,
    ],
)
def test_large_parameters_that_fit_are_accepted(params: tuple[str, ...]) -> None:
    recorder = Recorder()
    client = make_client(recorder)
    message = sms("m1", "+6591000001", params=params)
    assert client.check(message) is None
    [outcome] = client.send([message])
    assert outcome.ok
    assert len(recorder.requests[0].content) <= MAX_BODY_BYTES


def test_the_cheap_size_bound_holds_for_the_worst_message() -> None:
    """`check` skips encoding below its bound, so the bound must hold for the longest fields, every character
    escaped to 12 bytes: the largest parameter the bound lets through must give a body that fits."""
    recorder = Recorder()
    astral = "🎉"
    client = make_client(recorder, signature=astral * 32, status_callback="https://hooks.example.com/" + astral * 900)
    largest = (MAX_BODY_BYTES - client._fixed_body_bound - 3) // 12
    message = OutboundSms(
        message_id=astral * 128,
        to="+86" + "1" * 18,
        template_id=astral * 32,
        template_params=(astral * largest,),
        sender_id="csms" + "1" * 17,
    )
    assert client.check(message) is None
    [outcome] = client.send([message])
    assert outcome.ok
    assert len(recorder.requests[0].content) <= MAX_BODY_BYTES


def test_check_accepts_what_send_sends() -> None:
    client = make_client(Recorder())
    assert client.check(sms("m1", "+6591000001")) is None
    assert client.check(sms("m2", "+8613800000001")) is None
    assert client.check(with_sender(sms("m3", "+6591000001"), "Acme")) is None


def test_one_invalid_message_does_not_fail_the_others_of_its_call() -> None:
    recorder = Recorder()
    client = make_client(recorder, mainland_sender=None, signature=None)
    messages = [
        sms("m1", "+6591000001"),
        sms("m2", "+8613800000001"),  # no mainland channel configured
        sms("m3", "+6591000003", params=("",)),
        sms("m4", "+6591000004"),
    ]
    outcomes = send_all(client, messages)
    assert [o.message_id for o in outcomes] == ["m1", "m2", "m3", "m4"]
    assert [o.ok for o in outcomes] == [True, False, False, True]
    assert outcomes[1].error is not None and outcomes[2].error is not None
    assert (outcomes[1].error.category, outcomes[1].error.code) == (ErrorCategory.REQUEST, "INVALID_REQUEST")
    assert outcomes[1].error.message.startswith("to: a Chinese mainland number (+86) needs")
    assert outcomes[2].error.message == "template_params: every template variable must have a non-empty value"
    [body] = recorder.bodies()
    assert numbers_of(body) == ["+6591000001", "+6591000004"]


def test_mainland_number_without_mainland_configuration() -> None:
    recorder = Recorder()
    client = make_client(recorder, mainland_sender=None, signature=None)
    with pytest.raises(InvalidProviderRequest) as raised:
        client.send([sms("m1", "+6591000001"), sms("m2", "+8613800000000")])
    assert raised.value.field == "to"
    assert "GLOBESMS_HUAWEI_MAINLAND_SENDER" in raised.value.rule
    assert recorder.requests == []


def test_more_than_500_recipients() -> None:
    recorder = Recorder()
    with pytest.raises(InvalidProviderRequest) as raised:
        make_client(recorder).send([sms(f"m{i}", f"+65910{i:05d}") for i in range(501)])
    assert raised.value.field == "messages" and "500" in raised.value.rule
    assert recorder.requests == []


def test_empty_send_makes_no_call() -> None:
    recorder = Recorder()
    assert make_client(recorder).send([]) == []
    assert recorder.requests == []


# ------------------------------------------------------------------------------------------------ answers


def answer(status: int, payload: Any) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(payload, bytes):
            return httpx.Response(status, content=payload)
        return httpx.Response(status, json=payload)

    return handler


def test_success_fields() -> None:
    [outcome] = make_client(Recorder()).send([sms("m1", "+8613800000001")])
    assert outcome.ok
    assert outcome.provider_message_id == "id-+8613800000001"
    assert outcome.segments == 2
    assert outcome.extra == {"extend": "m1", "countryId": "CN"}


def test_per_number_failures_in_a_200_answer() -> None:
    def mixed(request: httpx.Request) -> httpx.Response:
        response = success_for_all(request)
        payload = response.json()
        payload["result"][1]["status"] = "E200028"
        payload["result"][2]["status"] = "E200015"
        payload["result"][3]["status"] = "E209999"  # unknown per-number status
        return httpx.Response(200, json=payload)

    outcomes = make_client(Recorder(mixed)).send([sms(f"m{i}", f"+659100000{i}", params=(str(i),)) for i in range(4)])
    assert outcomes[0].ok
    assert outcomes[1].error is not None and outcomes[1].error.category is ErrorCategory.REQUEST
    assert outcomes[1].error.code == "E200028" and outcomes[1].provider_message_id is None
    assert outcomes[2].error is not None and outcomes[2].error.category is ErrorCategory.THROTTLED
    assert outcomes[3].error is not None and outcomes[3].error.category is ErrorCategory.REQUEST
    assert outcomes[3].error.code == "E209999"


def test_all_numbers_failed_e000510_carries_per_number_status() -> None:
    def all_failed(request: httpx.Request) -> httpx.Response:
        payload = success_for_all(request, status="E200041").json()
        payload["result"][0]["status"] = "E200030"
        payload.update(code="E000510", description="The SMS fails to be sent. For details, see Status.")
        return httpx.Response(400, json=payload)

    outcomes = make_client(Recorder(all_failed)).send([sms("m1", "+6591000001"), sms("m2", "+6591000002")])
    assert [o.error.code if o.error else None for o in outcomes] == ["E200030", "E200041"]
    assert all(o.error and o.error.category is ErrorCategory.REQUEST and o.error.http_status == 400 for o in outcomes)


@pytest.mark.parametrize(
    ("status", "payload", "code", "category"),
    [
        (401, {"code": "E000102", "description": "Invalid app_key."}, "E000102", ErrorCategory.CONFIG),
        (401, {"code": "E000105", "description": "Invalid digest."}, "E000105", ErrorCategory.CONFIG),
        (400, {"code": "E000045", "description": "Authorization verify failed."}, "E000045", ErrorCategory.CONFIG),
        (
            400,
            {"code": "E000503", "description": "The parameter format is incorrect."},
            "E000503",
            ErrorCategory.REQUEST,
        ),
        (403, {"code": "E000623", "description": "limit"}, "E000623", ErrorCategory.THROTTLED),
        (400, {"code": "E000510", "description": "no result"}, "E000510", ErrorCategory.REQUEST),
        (
            429,
            {"error_code": "APIG.0308", "error_msg": "The throttling threshold has been reached", "request_id": "r"},
            "APIG.0308",
            ErrorCategory.THROTTLED,
        ),
        (500, b"<html>oops</html>", "HTTP_500", ErrorCategory.UNKNOWN_OUTCOME),
        (502, b"<html>bad gateway</html>", "HTTP_502", ErrorCategory.RETRYABLE),
        (503, b"", "HTTP_503", ErrorCategory.RETRYABLE),
        (401, b"denied", "HTTP_401", ErrorCategory.CONFIG),
        (200, b"not json", "MALFORMED_RESPONSE", ErrorCategory.UNKNOWN_OUTCOME),
        (200, {"unexpected": True}, "MALFORMED_RESPONSE", ErrorCategory.UNKNOWN_OUTCOME),
        (
            200,
            {"code": "000000", "result": [{"originTo": "+6591000001"}]},
            "MALFORMED_RESPONSE",
            ErrorCategory.UNKNOWN_OUTCOME,
        ),
        (200, {"code": "000000", "result": "nope"}, "MALFORMED_RESPONSE", ErrorCategory.UNKNOWN_OUTCOME),
        (200, {"code": "000000", "description": "Success"}, "MISSING_RESULT", ErrorCategory.UNKNOWN_OUTCOME),
    ],
)
def test_call_level_answers(status: int, payload: Any, code: str, category: ErrorCategory) -> None:
    outcomes = make_client(Recorder(answer(status, payload))).send([sms("m1", "+6591000001"), sms("m2", "+6591000002")])
    for outcome in outcomes:
        assert outcome.error is not None
        assert (outcome.error.code, outcome.error.category, outcome.error.http_status) == (code, category, status)
        assert outcome.provider_message_id is None
        assert outcome.extra["extend"] == "m1"


def test_number_missing_from_an_accepted_answer_is_unknown() -> None:
    def drops_second(request: httpx.Request) -> httpx.Response:
        payload = success_for_all(request).json()
        del payload["result"][1]
        return httpx.Response(200, json=payload)

    first, second = make_client(Recorder(drops_second)).send([sms("m1", "+6591000001"), sms("m2", "+6591000002")])
    assert first.ok
    assert second.error is not None and second.error.code == "MISSING_RESULT"
    assert second.error.category is ErrorCategory.UNKNOWN_OUTCOME


def test_accepted_number_without_sms_msg_id_is_unknown() -> None:
    def no_id(request: httpx.Request) -> httpx.Response:
        payload = success_for_all(request).json()
        del payload["result"][0]["smsMsgId"]
        return httpx.Response(200, json=payload)

    [outcome] = make_client(Recorder(no_id)).send([sms("m1", "+6591000001")])
    assert outcome.error is not None and outcome.error.category is ErrorCategory.UNKNOWN_OUTCOME


def test_origin_to_is_matched_without_the_plus() -> None:
    def no_plus(request: httpx.Request) -> httpx.Response:
        payload = success_for_all(request).json()
        for item in payload["result"]:
            item["originTo"] = item["originTo"].lstrip("+")
        return httpx.Response(200, json=payload)

    outcomes = make_client(Recorder(no_plus)).send([sms("m1", "+6591000001"), sms("m2", "+6591000002")])
    assert [o.provider_message_id for o in outcomes] == ["id-+6591000001", "id-+6591000002"]


# ------------------------------------------------------------------------------------------------- transport


@pytest.mark.parametrize(
    ("exception", "code", "category"),
    [
        (httpx.ConnectError("refused"), "CONNECT_ERROR", ErrorCategory.RETRYABLE),
        (httpx.ConnectTimeout("slow"), "CONNECT_TIMEOUT", ErrorCategory.RETRYABLE),
        (httpx.PoolTimeout("busy"), "POOL_TIMEOUT", ErrorCategory.RETRYABLE),
        (httpx.ReadTimeout("late"), "READ_TIMEOUT", ErrorCategory.UNKNOWN_OUTCOME),
        (httpx.WriteTimeout("late"), "WRITE_TIMEOUT", ErrorCategory.UNKNOWN_OUTCOME),
        (httpx.RemoteProtocolError("cut"), "REMOTE_PROTOCOL_ERROR", ErrorCategory.UNKNOWN_OUTCOME),
        (httpx.LocalProtocolError("bad header"), "LOCAL_PROTOCOL_ERROR", ErrorCategory.REQUEST),
        (httpx.DecodingError("bad gzip"), "DECODING_ERROR", ErrorCategory.UNKNOWN_OUTCOME),
        (httpx.ReadError("reset"), "READ_ERROR", ErrorCategory.UNKNOWN_OUTCOME),
        (httpx.WriteError("reset"), "WRITE_ERROR", ErrorCategory.UNKNOWN_OUTCOME),
    ],
)
def test_transport_failures_are_never_resent(exception: Exception, code: str, category: ErrorCategory) -> None:
    calls = []

    def fail(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise exception

    outcomes = make_client(fail).send([sms("m1", "+6591000001"), sms("m2", "+6591000002")])
    assert len(calls) == 1
    assert all(o.error and (o.error.code, o.error.category) == (code, category) for o in outcomes)
    assert all(o.extra["extend"] == "m1" for o in outcomes)


def test_one_failed_call_does_not_stop_the_others() -> None:
    def international_down(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["from"].startswith("isms"):
            raise httpx.ConnectError("refused")
        return success_for_all(request)

    outcomes = make_client(international_down).send([sms("m1", "+6591000001"), sms("m2", "+8613800000001")])
    assert outcomes[0].error is not None and outcomes[0].error.category is ErrorCategory.RETRYABLE
    assert outcomes[1].ok


def test_one_http_client_is_reused() -> None:
    recorder = Recorder()
    http = httpx.Client(transport=httpx.MockTransport(recorder))
    client = HuaweiClient(settings(), http=http)
    client.send([sms("m1", "+6591000001")])
    client.send([sms("m2", "+6591000002")])
    assert client._http is http and len(recorder.requests) == 2


def test_default_http_client_has_the_configured_timeouts() -> None:
    client = HuaweiClient(settings(connect_timeout=1.5, read_timeout=7))
    timeout = client._http.timeout
    assert (timeout.connect, timeout.read) == (1.5, 7)
    client.close()


# ------------------------------------------------------------------------------------------- configuration


ENV = {
    "GLOBESMS_HUAWEI_APP_KEY": "appKey123",
    "GLOBESMS_HUAWEI_APP_SECRET": SECRET,
    "GLOBESMS_HUAWEI_SENDER": "isms100000001",
}


def test_from_environment_defaults() -> None:
    client = from_environment(ENV)
    s = client.settings
    assert s.endpoint == "https://smsapi.ap-southeast-1.myhuaweicloud.com:443"
    assert (s.auth, s.connect_timeout, s.read_timeout) == (AuthMode.WSSE, 3.0, 10.0)
    assert (s.mainland_sender, s.signature, s.status_callback) == (None, None, None)
    assert s.app_secret.get_secret_value() == SECRET
    client.close()


def test_from_environment_reads_every_variable() -> None:
    env = {
        **ENV,
        "GLOBESMS_HUAWEI_ENDPOINT": "http://127.0.0.1:9103",
        "GLOBESMS_HUAWEI_MAINLAND_SENDER": "csms100000001",
        "GLOBESMS_HUAWEI_SIGNATURE": "Sig",
        "GLOBESMS_HUAWEI_STATUS_CALLBACK": "https://cb.example.com/r",
        "GLOBESMS_HUAWEI_AUTH": "AKSK",
        "GLOBESMS_HTTP_CONNECT_TIMEOUT": "1",
        "GLOBESMS_HTTP_READ_TIMEOUT": "4.5",
    }
    client = from_environment(env)
    s = client.settings
    assert (s.endpoint, s.host) == ("http://127.0.0.1:9103", "127.0.0.1:9103")
    assert (s.mainland_sender, s.signature, s.status_callback) == ("csms100000001", "Sig", "https://cb.example.com/r")
    assert (s.auth, s.connect_timeout, s.read_timeout) == (AuthMode.AKSK, 1.0, 4.5)
    client.close()


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"GLOBESMS_HUAWEI_APP_SECRET": ""}, "GLOBESMS_HUAWEI_APP_SECRET is not set"),
        ({"GLOBESMS_HUAWEI_APP_KEY": ""}, "GLOBESMS_HUAWEI_APP_KEY is not set"),
        ({"GLOBESMS_HUAWEI_SENDER": ""}, "GLOBESMS_HUAWEI_SENDER is not set"),
        ({"GLOBESMS_HUAWEI_AUTH": "basic"}, "GLOBESMS_HUAWEI_AUTH: "),
        ({"GLOBESMS_HUAWEI_MAINLAND_SENDER": "csms1"}, "both"),
        ({"GLOBESMS_HUAWEI_SIGNATURE": "Sig"}, "both"),
        ({"GLOBESMS_HUAWEI_ENDPOINT": "ftp://x"}, "GLOBESMS_HUAWEI_ENDPOINT: "),
        ({"GLOBESMS_HUAWEI_ENDPOINT": "https://user:pw@smsapi.example.com"}, "GLOBESMS_HUAWEI_ENDPOINT: "),
        ({"GLOBESMS_HUAWEI_ENDPOINT": "https://smsapi.example.com/?a=1"}, "GLOBESMS_HUAWEI_ENDPOINT: "),
        ({"GLOBESMS_HUAWEI_STATUS_CALLBACK": "not a url"}, "GLOBESMS_HUAWEI_STATUS_CALLBACK: "),
        ({"GLOBESMS_HUAWEI_SENDER": "x" * 22}, "GLOBESMS_HUAWEI_SENDER: "),
        ({"GLOBESMS_HTTP_READ_TIMEOUT": "0"}, "GLOBESMS_HTTP_READ_TIMEOUT must be a positive number of seconds"),
        ({"GLOBESMS_HTTP_CONNECT_TIMEOUT": "nan"}, "GLOBESMS_HTTP_CONNECT_TIMEOUT must be a positive number"),
        ({"GLOBESMS_HTTP_CONNECT_TIMEOUT": "fast"}, "GLOBESMS_HTTP_CONNECT_TIMEOUT must be a positive number"),
    ],
)
def test_bad_configuration_is_refused_without_showing_the_secret(changes: dict[str, str], needle: str) -> None:
    with pytest.raises(ValueError) as raised:
        from_environment({**ENV, **changes})
    assert needle in str(raised.value)
    assert SECRET not in str(raised.value)
    for value in changes.values():  # no value is shown, secret or not
        assert not value or value not in str(raised.value)
    assert not isinstance(raised.value, ValidationError)
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None or raised.value.__suppress_context__


def test_secret_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("late")

    client = make_client(fail)
    outcomes = client.send([sms("m1", "+6591000001")])
    shown = [repr(client), str(client), repr(client.settings), str(client.settings), repr(outcomes), caplog.text]
    shown.append(client.settings.model_dump_json())
    with pytest.raises(ValidationError) as raised:
        HuaweiSettings(app_key="k", app_secret=SecretStr(SECRET), sender="x" * 40)
    shown.append(str(raised.value))
    assert all(SECRET not in text for text in shown)


# ------------------------------------------------------------------------------------ planning for the rate limiter


def test_plan_counts_the_calls_send_makes() -> None:
    recorder = Recorder()
    client = make_client(recorder)
    messages = [
        sms("m1", "+6591000001"),
        sms("m2", "+8613800000001"),  # mainland: its own channel, so its own call
        sms("m3", "+6591000001"),  # a repeated number: a later call
        sms("m4", "+6591000002"),
    ]
    plan = client.plan(messages)
    assert OPERATION == "batchSendDiffSms"
    assert [(c.operation, c.indexes, c.singles) for c in plan] == [
        (OPERATION, (0, 3), None),
        (OPERATION, (2,), None),
        (OPERATION, (1,), None),
    ]
    client.send(messages)
    assert len(recorder.requests) == len(plan)
    assert [sorted(numbers_of(body)) for body in recorder.bodies()] == [
        sorted(messages[i].to for i in call.indexes) for call in plan
    ]


def test_send_with_its_plan_makes_byte_identical_requests() -> None:
    messages = [sms(f"m{i}", f"+659100000{i}") for i in range(4)] + [sms("m9", "+8613800000009")]
    planned, plain = Recorder(), Recorder()
    client = make_client(planned)
    outcomes = client.send(messages, plan=client.plan(messages))
    assert outcomes == make_client(plain).send(messages)
    assert [(str(r.url), dict(r.headers), r.content) for r in planned.requests] == [
        (str(r.url), dict(r.headers), r.content) for r in plain.requests
    ]


def test_a_plan_huawei_would_cut_differently_is_refused_before_sending() -> None:
    recorder = Recorder()
    client = make_client(recorder)
    messages = [sms("m1", "+6591000001"), sms("m2", "+6591000002")]
    for plan in (
        [PlannedCall(OPERATION, (0,)), PlannedCall(OPERATION, (1,))],
        [PlannedCall("sendSms", (0, 1))],
    ):
        with pytest.raises(InvalidProviderRequest) as refused:
            client.send(messages, plan=plan)
        assert refused.value.field == "plan"
    assert recorder.requests == []


# ---------------------------------------------------------------------------------- the batch fast path's agreement

_HUAWEI_NUMBERS = st.one_of(
    st.from_regex(r"\+[1-9][0-9]{5,14}", fullmatch=True),  # valid
    st.sampled_from(
        ["+8613800138000", "+6591234567", "+1", "+" + "1" * 20, "+" + "1" * 21, "85251230001", "", "+" + "1" * 300]
    ),
    st.sampled_from(["+85212ab", "+852\n+12345", "+852+1234567", "++85212345678", "+٣٣٣٣٣٣٣", "+85251230001\n"]),
)
_HUAWEI_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "to": _HUAWEI_NUMBERS,
    "message_id": st.sampled_from(["", "a b", "a{b", "x" * 128, "x" * 129, "id\u2003x", "ok.1"]),
    "text": st.sampled_from([None, "free text"]),
    "template_id": st.sampled_from([None, "", "tplB", "t" * 33]),
    "template_params": st.sampled_from([(), ("",), ("1", "2"), ("x" * 3000,), ("é" * 2000,)]),
    "sender_id": st.sampled_from([None, "isms100000002", "csms100000002", "Acme"]),
}
# One field per change, so that a send with a single bad value (the case the fast path must leave alone) is common.
_HUAWEI_CHANGES = st.one_of(*(st.fixed_dictionaries({name: values}) for name, values in _HUAWEI_VALUES.items()))


def _prepared_or_refused(client: HuaweiClient, messages: list[OutboundSms]) -> object:
    try:
        return [(call.indices, call.extend, call.body) for call in client.prepare(messages)]
    except InvalidProviderRequest as refused:
        return (refused.field, refused.rule)


@hypothesis_settings(max_examples=300)
@given(st.integers(5, 14), st.lists(st.tuples(st.integers(0, 13), _HUAWEI_CHANGES), max_size=3))
def test_the_batch_fast_path_prepares_what_the_message_by_message_path_does(
    count: int, changes: list[tuple[int, dict[str, Any]]]
) -> None:
    # A valid send with a few messages changed (a field or several, valid values or not): the fast path must
    # prepare exactly the calls the message-by-message path does, or leave the send to it.
    messages = [sms(f"m{n}", f"+65912{n:05d}") for n in range(count)]
    for position, change in changes:
        messages[position % count] = messages[position % count]._replace(**change)
    client = make_client(Recorder())
    fast = _prepared_or_refused(client, messages)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huawei_client, "_FEW", len(messages))  # every send is checked message by message
        slow = _prepared_or_refused(client, messages)
    assert fast == slow


def test_a_number_the_answer_gives_twice_is_an_unknown_outcome() -> None:
    # One entry accepted it (an smsMsgId), the other refused it: taken as the refusal, the last one, it was resent.
    entry = {"originTo": "+6591234567", "from": "isms100000001", "createTime": "2024-05-06T07:08:09Z"}
    result = [{**entry, "status": "000000", "smsMsgId": "acc-1"}, {**entry, "status": "E200015", "smsMsgId": "x"}]
    answer = httpx.Response(200, json={"code": "000000", "description": "Success", "result": result})
    [outcome] = make_client(Recorder(lambda request: answer)).send([sms("b1.00001", "+6591234567")])
    assert outcome.error is not None
    assert (outcome.error.category, outcome.error.code) == (ErrorCategory.UNKNOWN_OUTCOME, "CONFLICTING_RESULTS")


def test_a_negative_count_of_billed_parts_is_refused_as_alibaba_s_and_tencent_s_are() -> None:
    """Huawei's `total` (parts billed) went unchecked: -3 became the record's segments, and the batch totals' and the
    route statistics' parts (found by a review). Alibaba's Segments and Tencent's Fee are `ge=0` already."""
    from pydantic import ValidationError

    from globesms.providers.huawei.wire import SmsId

    fields = {"originTo": "+6581234567", "status": "000000", "smsMsgId": "m1"}
    assert SmsId.model_validate({**fields, "total": 2}).total == 2
    with pytest.raises(ValidationError, match="total"):
        SmsId.model_validate({**fields, "total": -3})
