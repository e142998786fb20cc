"""The Tencent client against httpx.MockTransport: the wire request, input rules, result parsing, failures."""

from __future__ import annotations

import json
from collections.abc import Callable
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
from globesms.ports import PlannedCall, Provider
from globesms.providers.tencent import TencentSettings, TencentSmsClient, from_environment, signer, wire

SECRET_KEY = "unit-test-secret-key-1234"
NOW = 1776313405.7
TRACE_ID = "trace-0001"

# The seed's request and its two answers (the numbers unmasked: the seed shows them with ***).
SEED_MESSAGES = [
    OutboundSms(
        "outsid_1776313405_1001", "+60198890000", template_id="1800308", template_params=("190191",), sender_id="Qsms"
    ),
    OutboundSms(
        "outsid_1776313405_1002", "+60198890001", template_id="1800308", template_params=("190192",), sender_id="Qsms"
    ),
]
SEED_REQUEST_BODY = {
    "SmsSdkAppId": "1400006666",
    "MultiSmsInfoSet": [
        {
            "PhoneNumber": "+60198890000",
            "TemplateId": "1800308",
            "TemplateParamSet": ["190191"],
            "SenderId": "Qsms",
            "SessionContext": "outsid_1776313405_1001",
        },
        {
            "PhoneNumber": "+60198890001",
            "TemplateId": "1800308",
            "TemplateParamSet": ["190192"],
            "SenderId": "Qsms",
            "SessionContext": "outsid_1776313405_1002",
        },
    ],
}


def status(
    code: str = "Ok",
    *,
    number: str = "+60198890000",
    context: str = "outsid_1776313405_1001",
    serial: str = "a84166ff-8c6c-41f7-923b-9fdd27fd0fe4",
    fee: int = 1,
    message: str = "send success",
) -> dict[str, Any]:
    return {
        "Code": code,
        "Fee": fee,
        "IsoCode": "MY",
        "Message": message,
        "PhoneNumber": number,
        "SerialNo": serial,
        "SessionContext": context,
    }


SEED_SUCCESS = {
    "Response": {
        "SendMultiStatusSet": [
            status(),
            status(
                number="+60198890001", context="outsid_1776313405_1002", serial="72f1f018-a0c8-4101-976b-265f25b4c0a2"
            ),
        ],
        "RequestId": "104cc55c-05f1-456c-8a0b-18cf25ef56a4",
    }
}
TEMPLATE_REFUSED = "template is not approved or request content does not match the approved template content"
SEED_FAILURE = {
    "Response": {
        "SendMultiStatusSet": [
            status(
                "FailedOperation.TemplateIncorrectOrUnapproved",
                fee=0,
                message=TEMPLATE_REFUSED,
                serial="de61cf79-636e-4ad0-ac0b-dc29937999af",
            ),
            status(
                "FailedOperation.TemplateIncorrectOrUnapproved",
                fee=0,
                message=TEMPLATE_REFUSED,
                number="+60198890001",
                context="outsid_1776313405_1002",
                serial="0b8780c6-e889-4201-87fb-5e8e282b3b3e",
            ),
        ],
        "RequestId": "4899adba-08e2-4350-9fee-ab37b7560c4c",
    }
}


def settings(**overrides: Any) -> TencentSettings:
    values: dict[str, Any] = {"secret_id": "AKIDunit", "secret_key": SecretStr(SECRET_KEY), "sdk_app_id": "1400006666"}
    return TencentSettings(**(values | overrides))


class Recorder:
    """A MockTransport handler that records requests and answers from a queue (or raises)."""

    def __init__(self, *answers: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]) -> None:
        self.requests: list[httpx.Request] = []
        self._answers = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer


def client_with(recorder: Recorder, **overrides: Any) -> TencentSmsClient:
    http = httpx.Client(transport=httpx.MockTransport(recorder))
    return TencentSmsClient(settings(**overrides), http=http, clock=lambda: NOW, nonce=lambda: TRACE_ID)


def json_answer(payload: Any, status_code: int = 200) -> httpx.Response:
    return httpx.Response(status_code, json=payload)


def message(index: int = 0, **fields: Any) -> OutboundSms:
    values: dict[str, Any] = {"message_id": f"m{index}", "to": f"+6019889{index:04d}", "template_id": "1800308"}
    return OutboundSms(**(values | fields))


def ok_for(request: httpx.Request) -> httpx.Response:
    items = json.loads(request.content)["MultiSmsInfoSet"]
    statuses = [
        status(number=i["PhoneNumber"], context=i["SessionContext"], serial=f"serial-{n}") for n, i in enumerate(items)
    ]
    return json_answer({"Response": {"SendMultiStatusSet": statuses, "RequestId": "req-1"}})


# --- the wire request ---------------------------------------------------------------------------------------------


def test_client_satisfies_the_provider_port() -> None:
    client: Provider = client_with(Recorder(ok_for))
    assert client.name is ProviderName.TENCENT
    assert client.max_recipients_per_call == 200


def test_request_is_the_seed_request_signed_with_tc3() -> None:
    recorder = Recorder(json_answer(SEED_SUCCESS))
    client_with(recorder).send(SEED_MESSAGES)

    [sent] = recorder.requests
    assert sent.method == "POST"
    assert str(sent.url) == "https://sms.intl.tencentcloudapi.com/"
    assert json.loads(sent.content) == SEED_REQUEST_BODY
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Host"] == "sms.intl.tencentcloudapi.com"
    assert sent.headers["X-TC-Action"] == "SendMultiGlobalSms"
    assert sent.headers["X-TC-Version"] == "2021-01-11"
    assert sent.headers["X-TC-Region"] == "ap-singapore"
    assert sent.headers["X-TC-Timestamp"] == "1776313405"
    assert sent.headers["X-TC-TraceId"] == TRACE_ID

    canonical = signer.canonical_request(
        method="POST",
        uri="/",
        query="",
        content_type="application/json",
        host="sms.intl.tencentcloudapi.com",
        payload_hash=signer.hashed_payload(sent.content),
    )
    scope = "2026-04-16/sms/tc3_request"
    key = signer.signing_key(SECRET_KEY, "2026-04-16", "sms")
    expected = signer.signature(key, signer.string_to_sign(1776313405, scope, canonical))
    assert sent.headers["Authorization"] == (
        f"TC3-HMAC-SHA256 Credential=AKIDunit/{scope}, SignedHeaders=content-type;host, Signature={expected}"
    )
    assert SECRET_KEY not in sent.headers["Authorization"]


def test_body_is_serialised_like_the_sdk() -> None:
    recorder = Recorder(ok_for)
    client_with(recorder).send([message(template_params=("Zoë 50% * ~ +",))])
    body = recorder.requests[0].content
    assert body == json.dumps(json.loads(body)).encode("ascii")  # ", "/": " separators, ASCII escapes
    assert b"Zo\\u00eb 50% * ~ +" in body


def reference_body(app_id: str, messages: list[OutboundSms]) -> bytes:
    """What the SDK serialises: json.dumps with its defaults over the fields we set, in its model order."""
    items = []
    for m in messages:
        item: dict[str, Any] = {"PhoneNumber": m.to, "TemplateId": m.template_id}
        if m.template_params:
            item["TemplateParamSet"] = list(m.template_params)
        if m.sender_id:
            item["SenderId"] = m.sender_id
        item["SessionContext"] = m.message_id
        items.append(item)
    return json.dumps({"SmsSdkAppId": app_id, "MultiSmsInfoSet": items}).encode("ascii")


free_text = st.text(st.characters(codec="utf-8"), max_size=30)


@given(
    st.lists(
        st.builds(
            OutboundSms,
            message_id=free_text.filter(bool),
            to=st.from_regex(r"\+[1-7][0-9]{7,13}", fullmatch=True),
            text=st.none(),
            template_id=st.from_regex(r"[0-9]{1,8}", fullmatch=True),
            template_params=st.lists(free_text, max_size=3).map(tuple),
            sender_id=st.one_of(st.none(), st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,10}", fullmatch=True)),
            validity_seconds=st.none(),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_hand_built_body_equals_json_dumps(messages: list[OutboundSms]) -> None:
    for m in messages:
        assert wire.message_violation(m) is None  # request_body is only ever given messages that pass the rules
    assert wire.request_body("1400006666", messages) == reference_body("1400006666", messages)


def test_body_escapes_quotes_controls_and_astral_characters() -> None:
    tricky = message(message_id='a"b\\c\n\u0001🎉', template_params=("</script>", "\t", ""))
    assert wire.request_body("1", [tricky]) == reference_body("1", [tricky])
    assert b"\\ud83c\\udf89" in wire.request_body("1", [tricky])


def test_echo_field_carries_our_message_id_and_optional_fields_are_omitted() -> None:
    recorder = Recorder(ok_for)
    client_with(recorder).send([message(message_id="01HZY-our-id")])
    [item] = json.loads(recorder.requests[0].content)["MultiSmsInfoSet"]
    assert item == {"PhoneNumber": "+60198890000", "TemplateId": "1800308", "SessionContext": "01HZY-our-id"}


def test_region_and_endpoint_port_are_used_and_signed() -> None:
    recorder = Recorder(ok_for)
    client_with(recorder, endpoint="http://127.0.0.1:9102", region="eu-frankfurt").send([message()])
    sent = recorder.requests[0]
    assert str(sent.url) == "http://127.0.0.1:9102/"
    assert sent.headers["Host"] == "127.0.0.1:9102"
    assert sent.headers["X-TC-Region"] == "eu-frankfurt"
    tc3 = signer.Tc3Signer(secret_id="AKIDunit", secret_key=SecretStr(SECRET_KEY), service="sms", host="127.0.0.1:9102")
    assert sent.headers["Authorization"] == tc3.authorization(sent.content, 1776313405)


def test_every_request_carries_the_configured_timeouts() -> None:
    recorder = Recorder(ok_for)
    client_with(recorder, connect_timeout=1.5, read_timeout=4.0).send([message()])
    timeout = recorder.requests[0].extensions["timeout"]
    assert timeout["connect"] == 1.5
    assert timeout["read"] == 4.0


def test_one_http_client_is_reused_across_calls() -> None:
    recorder = Recorder(ok_for)
    client = client_with(recorder)
    client.send([message()])
    client.send([message()])
    assert len(recorder.requests) == 2
    owned = TencentSmsClient(settings())
    assert owned._http is owned._http  # one per instance
    owned.close()
    assert owned._http.is_closed


# --- input rules: raised before anything is sent ---------------------------------------------------------------------


INVALID = [
    ({"text": "free text", "template_id": None}, "text", "templates only"),
    ({"template_id": None}, "template_id", "approved Global SMS template"),
    ({"template_id": "SMS_123"}, "template_id", "numeric id"),
    ({"to": "+8613800138000"}, "to", "+86"),
    ({"to": "60198890000"}, "to", "E.164"),
    ({"to": "+60 19889"}, "to", "E.164"),
    ({"sender_id": "TooLongSender"}, "sender_id", "at most 11"),
    ({"sender_id": "Bad-Id"}, "sender_id", "letters and digits"),
    ({"sender_id": "1234567890123456"}, "sender_id", "at most 15"),
    ({"sender_id": ""}, "sender_id", "letters and digits"),
    ({"message_id": ""}, "message_id", "SessionContext"),
    ({"message_id": "é" * 256}, "message_id", "512 bytes"),
]


@pytest.mark.parametrize(("fields", "field", "rule"), INVALID)
def test_invalid_input_is_refused_before_sending(fields: dict[str, Any], field: str, rule: str) -> None:
    recorder = Recorder(ok_for)
    with pytest.raises(InvalidProviderRequest) as raised:
        client_with(recorder).send([message(1), message(**fields)])
    assert raised.value.field == field
    assert rule in raised.value.rule
    assert recorder.requests == []


@pytest.mark.parametrize(("fields", "field", "rule"), INVALID)
def test_check_names_the_same_rule_for_one_message(fields: dict[str, Any], field: str, rule: str) -> None:
    client = client_with(Recorder(ok_for))
    problem = client.check(message(**fields))
    assert problem is not None
    assert (problem.field, rule in problem.rule) == (field, True)
    assert client.check(message()) is None


def test_one_invalid_message_does_not_fail_the_others_of_its_call() -> None:
    recorder = Recorder(ok_for)
    messages = [message(0), message(1, template_id="SMS_123"), message(2), message(3, to="+8613800138000")]
    outcomes = send_all(client_with(recorder), messages)
    assert [o.message_id for o in outcomes] == ["m0", "m1", "m2", "m3"]
    assert [o.ok for o in outcomes] == [True, False, True, False]
    assert outcomes[1].error is not None and outcomes[3].error is not None
    assert (outcomes[1].error.category, outcomes[1].error.code) == (ErrorCategory.REQUEST, "INVALID_REQUEST")
    assert outcomes[1].error.message.startswith("template_id: ")
    assert outcomes[3].error.message == "to: Chinese mainland numbers (+86) are not served by SendMultiGlobalSms"
    [request] = recorder.requests
    assert [i["SessionContext"] for i in json.loads(request.content)["MultiSmsInfoSet"]] == ["m0", "m2"]


def test_edge_values_that_are_allowed() -> None:
    recorder = Recorder(ok_for)
    outcomes = client_with(recorder).send(
        [
            message(0, sender_id="ABCDEFGHIJK"),
            message(1, sender_id="123456789012345"),
            message(2, message_id="x" * 511, to="+85291234567"),  # Hong Kong is +852, not mainland
        ]
    )
    assert all(o.ok for o in outcomes)


def test_duplicate_message_ids_are_refused() -> None:
    recorder = Recorder(ok_for)
    with pytest.raises(InvalidProviderRequest) as raised:
        client_with(recorder).send([message(0), message(1, message_id="m0")])
    assert raised.value.field == "message_id"
    assert recorder.requests == []


def test_batch_cap_is_200_recipients() -> None:
    recorder = Recorder(ok_for)
    client = client_with(recorder)
    outcomes = client.send([message(i) for i in range(200)])
    assert len(outcomes) == 200 and all(o.ok for o in outcomes)
    assert len(recorder.requests) == 1
    with pytest.raises(InvalidProviderRequest) as raised:
        client.send([message(i) for i in range(201)])
    assert raised.value.field == "messages"
    assert len(recorder.requests) == 1


def test_no_messages_means_no_call() -> None:
    recorder = Recorder(ok_for)
    assert client_with(recorder).send([]) == []
    assert recorder.requests == []


# --- results --------------------------------------------------------------------------------------------------------


def test_seed_success_gives_serial_numbers_and_fees() -> None:
    outcomes = client_with(Recorder(json_answer(SEED_SUCCESS))).send(SEED_MESSAGES)
    assert [o.message_id for o in outcomes] == ["outsid_1776313405_1001", "outsid_1776313405_1002"]
    assert [o.provider_message_id for o in outcomes] == [
        "a84166ff-8c6c-41f7-923b-9fdd27fd0fe4",
        "72f1f018-a0c8-4101-976b-265f25b4c0a2",
    ]
    assert all(o.ok and o.segments == 1 for o in outcomes)
    assert outcomes[0].extra == {"request_id": "104cc55c-05f1-456c-8a0b-18cf25ef56a4", "fee": "1", "iso_code": "MY"}


def test_seed_failure_is_a_request_error_per_recipient() -> None:
    outcomes = client_with(Recorder(json_answer(SEED_FAILURE))).send(SEED_MESSAGES)
    for outcome in outcomes:
        assert outcome.error is not None
        assert outcome.error.category is ErrorCategory.REQUEST
        assert outcome.error.code == "FailedOperation.TemplateIncorrectOrUnapproved"
        assert outcome.error.message == TEMPLATE_REFUSED
        assert outcome.error.http_status == 200
        assert outcome.provider_message_id is None


def test_mixed_results_are_matched_by_session_context_not_position() -> None:
    answer = {
        "Response": {
            "RequestId": "r",
            "SendMultiStatusSet": [
                status("FailedOperation.PhoneNumberInBlacklist", number="+60198890001", context="m1", fee=0),
                status(number="+60198890000", context="m0", serial="s-0"),
            ],
        }
    }
    outcomes = client_with(Recorder(json_answer(answer))).send([message(0), message(1)])
    assert outcomes[0].provider_message_id == "s-0"
    assert outcomes[1].error is not None
    assert outcomes[1].error.category is ErrorCategory.RECIPIENT


def test_status_without_session_context_is_taken_by_position_if_the_number_matches() -> None:
    answer = {
        "Response": {
            "RequestId": "r",
            "SendMultiStatusSet": [
                status(number="+60198890000", context="", serial="s-0"),
                status(number="+60199999999", context="", serial="s-x"),
            ],
        }
    }
    outcomes = client_with(Recorder(json_answer(answer))).send([message(0), message(1)])
    assert outcomes[0].provider_message_id == "s-0"
    assert outcomes[1].error is not None and outcomes[1].error.code == "MISSING_RESULT"
    assert outcomes[1].error.category is ErrorCategory.UNKNOWN_OUTCOME


def test_ok_without_serial_number_is_an_unknown_outcome() -> None:
    answer = {"Response": {"RequestId": "r", "SendMultiStatusSet": [status(context="m0", serial="")]}}
    [outcome] = client_with(Recorder(json_answer(answer))).send([message(0)])
    assert outcome.error is not None
    assert (outcome.error.category, outcome.error.code) == (ErrorCategory.UNKNOWN_OUTCOME, "MISSING_SERIAL_NO")


@pytest.mark.parametrize(
    ("code", "category"),
    [
        ("AuthFailure.SignatureFailure", ErrorCategory.CONFIG),
        ("AuthFailure.SecretIdNotFound", ErrorCategory.CONFIG),
        ("RequestLimitExceeded", ErrorCategory.THROTTLED),
        ("InternalError", ErrorCategory.UNKNOWN_OUTCOME),
        ("LimitExceeded.PhoneNumberCountLimit", ErrorCategory.REQUEST),
    ],
)
def test_top_level_error_with_http_200_fails_every_recipient(code: str, category: ErrorCategory) -> None:
    answer = {"Response": {"Error": {"Code": code, "Message": "refused"}, "RequestId": "r"}}
    outcomes = client_with(Recorder(json_answer(answer))).send([message(0), message(1), message(2)])
    assert len(outcomes) == 3
    for outcome in outcomes:
        assert outcome.error is not None
        assert (outcome.error.category, outcome.error.code, outcome.error.message) == (category, code, "refused")
        assert outcome.error.http_status == 200


@pytest.mark.parametrize(
    ("response", "category"),
    [
        (httpx.Response(200, content=b"<html>oops</html>"), ErrorCategory.UNKNOWN_OUTCOME),
        (httpx.Response(200, json={"Result": "Ok"}), ErrorCategory.UNKNOWN_OUTCOME),
        (httpx.Response(200, json={"Response": {"RequestId": "r"}}), ErrorCategory.UNKNOWN_OUTCOME),
        (
            httpx.Response(
                200, json={"Response": {"RequestId": "r", "SendMultiStatusSet": [{"Fee": -1, "Code": "Ok"}]}}
            ),
            ErrorCategory.UNKNOWN_OUTCOME,
        ),
        (httpx.Response(200, json=[1, 2]), ErrorCategory.UNKNOWN_OUTCOME),
        (httpx.Response(200, content=b""), ErrorCategory.UNKNOWN_OUTCOME),
        (httpx.Response(502, content=b"Bad Gateway"), ErrorCategory.RETRYABLE),
        (httpx.Response(503, content=b"busy"), ErrorCategory.RETRYABLE),
        (httpx.Response(504, content=b"Gateway Timeout"), ErrorCategory.UNKNOWN_OUTCOME),
        (httpx.Response(429, content=b"slow down"), ErrorCategory.THROTTLED),
        (httpx.Response(403, content=b"forbidden"), ErrorCategory.CONFIG),
    ],
)
def test_malformed_responses_never_crash(response: httpx.Response, category: ErrorCategory) -> None:
    outcomes = client_with(Recorder(response)).send([message(0), message(1)])
    for outcome in outcomes:
        assert outcome.error is not None
        assert (outcome.error.category, outcome.error.code) == (category, "MALFORMED_RESPONSE")
        assert outcome.error.http_status == response.status_code


def test_error_body_behind_a_gateway_status_is_still_read() -> None:
    answer = {"Response": {"Error": {"Code": "InternalError", "Message": "x"}, "RequestId": "r"}}
    [outcome] = client_with(Recorder(json_answer(answer, 500))).send([message(0)])
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.http_status) == ("InternalError", 500)


# --- transport failures ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exception", "category", "code"),
    [
        (httpx.ConnectError("refused"), ErrorCategory.RETRYABLE, "CONNECT_ERROR"),
        (httpx.ConnectTimeout("slow"), ErrorCategory.RETRYABLE, "CONNECT_TIMEOUT"),
        (httpx.PoolTimeout("busy"), ErrorCategory.RETRYABLE, "POOL_TIMEOUT"),
        (httpx.ReadTimeout("late"), ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT"),
        (httpx.WriteTimeout("late"), ErrorCategory.UNKNOWN_OUTCOME, "WRITE_TIMEOUT"),
        (httpx.RemoteProtocolError("cut"), ErrorCategory.UNKNOWN_OUTCOME, "REMOTE_PROTOCOL_ERROR"),
        (httpx.WriteError("cut"), ErrorCategory.UNKNOWN_OUTCOME, "WRITE_ERROR"),
        (httpx.ReadError("cut"), ErrorCategory.UNKNOWN_OUTCOME, "READ_ERROR"),
        (httpx.LocalProtocolError("bad header"), ErrorCategory.REQUEST, "LOCAL_PROTOCOL_ERROR"),
    ],
)
def test_transport_failures(exception: Exception, category: ErrorCategory, code: str) -> None:
    recorder = Recorder(exception)
    outcomes = client_with(recorder).send([message(0), message(1)])
    assert len(recorder.requests) == 1  # never resent
    for outcome in outcomes:
        assert outcome.error is not None
        assert (outcome.error.category, outcome.error.code) == (category, code)


def test_a_real_refused_connection_is_retryable() -> None:
    client = TencentSmsClient(settings(endpoint="http://127.0.0.1:9", connect_timeout=0.5))
    [outcome] = client.send([message(0)])
    client.close()
    assert outcome.error is not None and outcome.error.category is ErrorCategory.RETRYABLE


# --- settings and secrets ------------------------------------------------------------------------------------------


ENV = {
    "GLOBESMS_TENCENT_SECRET_ID": "AKIDenv",
    "GLOBESMS_TENCENT_SECRET_KEY": SECRET_KEY,
    "GLOBESMS_TENCENT_SDK_APP_ID": "1400000000",
}


def test_from_environment_defaults() -> None:
    client = from_environment(ENV)
    assert isinstance(client, TencentSmsClient)
    assert client.settings.endpoint == "https://sms.intl.tencentcloudapi.com"
    assert client.settings.host == "sms.intl.tencentcloudapi.com"
    assert client.settings.region == "ap-singapore"
    assert (client.settings.connect_timeout, client.settings.read_timeout) == (3.0, 10.0)
    client.close()


def test_from_environment_reads_every_variable() -> None:
    env = ENV | {
        "GLOBESMS_TENCENT_ENDPOINT": "https://sms.intl.tencentcloudapi.com:8443",
        "GLOBESMS_TENCENT_REGION": "eu-frankfurt",
        "GLOBESMS_HTTP_CONNECT_TIMEOUT": "1.5",
        "GLOBESMS_HTTP_READ_TIMEOUT": "7",
    }
    loaded = TencentSettings.from_environment(env)
    assert loaded.host == "sms.intl.tencentcloudapi.com:8443"
    assert loaded.region == "eu-frankfurt"
    assert (loaded.connect_timeout, loaded.read_timeout) == (1.5, 7.0)
    assert loaded.secret_key.get_secret_value() == SECRET_KEY
    assert TencentSettings.from_environment(ENV | {"GLOBESMS_TENCENT_ENDPOINT": "http://[::1]:9102"}).host == (
        "[::1]:9102"
    )
    assert TencentSettings.from_environment(ENV | {"GLOBESMS_TENCENT_ENDPOINT": "https://h.example:443"}).host == (
        "h.example"
    )


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"GLOBESMS_TENCENT_REGION": "ap-guangzhou"}, "GLOBESMS_TENCENT_REGION: "),
        ({"GLOBESMS_TENCENT_ENDPOINT": "ftp://x"}, "GLOBESMS_TENCENT_ENDPOINT: "),
        ({"GLOBESMS_TENCENT_ENDPOINT": "https://x/v2/index.php"}, "GLOBESMS_TENCENT_ENDPOINT: "),
        ({"GLOBESMS_TENCENT_SDK_APP_ID": "app-1"}, "GLOBESMS_TENCENT_SDK_APP_ID: "),
        ({"GLOBESMS_TENCENT_SECRET_ID": ""}, "GLOBESMS_TENCENT_SECRET_ID is not set"),
        ({"GLOBESMS_TENCENT_SECRET_KEY": " "}, "GLOBESMS_TENCENT_SECRET_KEY is not set"),
        ({"GLOBESMS_HTTP_READ_TIMEOUT": "0"}, "GLOBESMS_HTTP_READ_TIMEOUT must be a positive number of seconds"),
        ({"GLOBESMS_HTTP_CONNECT_TIMEOUT": "3s"}, "GLOBESMS_HTTP_CONNECT_TIMEOUT must be a positive number"),
        ({"GLOBESMS_TENCENT_SDK_APP_ID": ""}, "GLOBESMS_TENCENT_SDK_APP_ID is not set"),
    ],
)
def test_bad_settings_name_the_variable_without_showing_values(override: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError) as raised:
        TencentSettings.from_environment(ENV | override)
    assert named in str(raised.value)
    assert SECRET_KEY not in str(raised.value)
    for value in override.values():
        assert not value.strip() or value not in str(raised.value)
    assert not isinstance(raised.value, ValidationError)  # whose details would hold the inputs
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None or raised.value.__suppress_context__


def test_values_from_the_environment_are_stripped() -> None:
    loaded = TencentSettings.from_environment(
        ENV | {"GLOBESMS_TENCENT_SECRET_KEY": f"{SECRET_KEY}\n", "GLOBESMS_TENCENT_REGION": " "}
    )
    assert loaded.secret_key.get_secret_value() == SECRET_KEY
    assert loaded.region == "ap-singapore"


def test_secret_never_shows_in_reprs() -> None:
    recorder = Recorder(ok_for)
    client = client_with(recorder)
    client.send([message()])  # derives and caches the day's signing key
    day_key = client._signer._day_key
    assert day_key is not None
    shown = [repr(client), str(client), repr(client.settings), str(client.settings)]
    shown += [repr(client._signer), str(client._signer), repr(day_key), str(day_key)]
    for text in shown:
        assert SECRET_KEY not in text
        assert day_key.key.hex() not in text and repr(day_key.key) not in text
    client.close()


@pytest.mark.parametrize(
    "override", [{"secret_key": SecretStr(" padded")}, {"secret_id": "AKID\n"}, {"secret_key": SecretStr("")}]
)
def test_credentials_with_stray_whitespace_or_empty_are_refused(override: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        settings(**override)


# --- planning for the rate limiter ------------------------------------------------------------------------------


def test_plan_is_one_send_multi_global_sms_call_for_the_whole_send() -> None:
    client = client_with(Recorder(ok_for))
    assert client.plan([message(i) for i in range(3)]) == [PlannedCall("SendMultiGlobalSms", (0, 1, 2))]
    assert client.plan([]) == []
    with pytest.raises(InvalidProviderRequest):
        client.plan([message(0), message(1, message_id="m0")])  # a message id used twice: what send refuses


def test_send_with_its_plan_makes_the_same_request() -> None:
    messages = [message(i) for i in range(3)]
    planned, plain = Recorder(ok_for), Recorder(ok_for)
    client = client_with(planned)
    outcomes = client.send(messages, plan=client.plan(messages))
    assert outcomes == client_with(plain).send(messages)
    [a], [b] = planned.requests, plain.requests
    assert (str(a.url), dict(a.headers), a.content) == (str(b.url), dict(b.headers), b.content)


def test_a_plan_other_than_the_one_call_is_refused_before_sending() -> None:
    recorder = Recorder(ok_for)
    client = client_with(recorder)
    for plan in (
        [PlannedCall("SendMultiGlobalSms", (0,)), PlannedCall("SendMultiGlobalSms", (1,))],
        [PlannedCall("SendSms", (0, 1))],
    ):
        with pytest.raises(InvalidProviderRequest) as refused:
            client.send([message(0), message(1)], plan=plan)
        assert refused.value.field == "plan"
    assert recorder.requests == []


_NUMBERS = st.one_of(
    st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True),  # valid
    st.sampled_from(["+8613800138000", "+0123456789", "+123456", "+1234567890123456", "85251230001", "", "+"]),
    st.sampled_from(["+85212ab", "+852\n+12345", "+852+1234567", "++85212345678", "+٣٣٣٣٣٣٣", "+85251230001\n"]),
    st.text(max_size=18),
)
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "to": _NUMBERS,
        "text": st.sampled_from([None, "", "free text"]),
        "template_id": st.sampled_from([None, "", "1234567", "12a", "٣٣", "1" * 32, "1" * 33]),
        "sender_id": st.sampled_from([None, "", "Acme", "Ali-Cloud", "Alicloud1234", "123456789012345", "Ålicloud"]),
        "message_id": st.sampled_from(["", "x" * 127, "x" * 128, "é" * 127, "😀" * 127, "😀" * 128, "x" * 600]),
    },
)


@hypothesis_settings(max_examples=300)
@given(st.lists(_FIELDS, max_size=12), st.integers(0, 11))
def test_the_whole_call_check_agrees_with_the_rules_message_by_message(
    changes: list[dict[str, Any]], valid_from: int
) -> None:
    # Mostly-valid calls (the first `valid_from` change nothing) as well as calls with bad values anywhere.
    messages = [message(n, **(change if n > valid_from else {})) for n, change in enumerate(changes, start=1)]
    assert wire.all_valid(messages) == all(wire.message_violation(m) is None for m in messages)


def test_the_whole_call_check_takes_long_ids_within_sessioncontexts_bytes() -> None:
    # 128 to 511 ASCII characters fit SessionContext's 511 bytes; past the cheap bound of 127 characters the whole
    # call check counts their bytes, as the per-message rule does.
    for message_id, fits in (("x" * 128, True), ("x" * 511, True), ("x" * 512, False), ("é" * 256, False)):
        messages = [message(0), message(1, message_id=message_id)]
        assert wire.all_valid(messages) is fits
        assert (wire.message_violation(messages[1]) is None) is fits


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        # Two statuses for one recipient: accepted and refused. Taken as the refusal it was sent again; as the
        # success, the refusal was dropped.
        (
            [
                status(number="+60198890000", context="m0", serial="serial-accepted"),
                status("LimitExceeded.DeliveryFrequencyLimit", number="+60198890000", context="m0", serial=""),
            ],
            "CONFLICTING_RESULTS",
        ),
        # Our SessionContext on a status about another number: not this recipient's.
        (
            [status("InvalidParameterValue.IncorrectPhoneNumber", number="+60111111111", context="m0", serial="")],
            "MISSING_RESULT",
        ),
    ],
)
def test_a_status_that_cannot_be_this_recipients_alone_is_an_unknown_outcome(
    statuses: list[dict[str, Any]], code: str
) -> None:
    answer = json_answer({"Response": {"SendMultiStatusSet": statuses, "RequestId": "r"}})
    [outcome] = client_with(Recorder(answer)).send([message(0, to="+60198890000")])
    assert outcome.error is not None
    assert (outcome.error.category, outcome.error.code) == (ErrorCategory.UNKNOWN_OUTCOME, code)
