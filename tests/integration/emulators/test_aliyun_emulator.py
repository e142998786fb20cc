"""Our Alibaba client against the Alibaba emulator, in process (httpx.WSGITransport), plus raw signed requests for
the rules our client never breaks, a real socket for read timeouts, and a local callback server for receipts."""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from flask import Flask
from werkzeug.serving import make_server

from globesms.domain.status import Status
from globesms.errors import ErrorCategory
from globesms.models.outbound import MessageType, OutboundSms
from globesms.providers.aliyun import AliyunClient, AliyunSettings
from globesms.providers.aliyun.receipts import ACK, parse_receipts
from globesms.providers.aliyun.signer import Acs3Signer, acs_date, canonical_query
from local.emulators.aliyun import STATE_KEY, create_app
from local.emulators.common import EmulatorState, Knobs
from local.settings import LOCAL_ENV_DEFAULTS

KEY_ID = LOCAL_ENV_DEFAULTS["GLOBESMS_ALIYUN_ACCESS_KEY_ID"]
SECRET = LOCAL_ENV_DEFAULTS["GLOBESMS_ALIYUN_ACCESS_KEY_SECRET"]
BASE_URL = "http://dysmsapi.emulator"


def client_for(app: Flask, *, secret: str = SECRET, key_id: str = KEY_ID, **options: Any) -> AliyunClient:
    clock = options.pop("clock", None)
    nonce = options.pop("nonce", None)
    extra: dict[str, Any] = {}
    if clock is not None:
        extra["clock"] = clock
    if nonce is not None:
        extra["nonce"] = nonce
    settings = AliyunSettings(endpoint=BASE_URL, access_key_id=key_id, access_key_secret=secret, **options)
    return AliyunClient(settings, http=httpx.Client(transport=httpx.WSGITransport(app=app)), **extra)


def state_of(app: Flask) -> EmulatorState:
    state: EmulatorState = app.extensions[STATE_KEY]
    return state


def sms(n: int, **fields: Any) -> OutboundSms:
    values: dict[str, Any] = {"message_id": f"batch1.{n:05d}", "to": f"+8525123{n:04d}", "text": f"hello {n}"}
    values.update(fields)
    return OutboundSms(**values)


def raw_call(app: Flask, action: str, params: dict[str, str], *, body: bool = False) -> httpx.Response:
    """A correctly signed request with any parameters, for the rules our client refuses to break."""
    headers = {
        "host": "dysmsapi.emulator",
        "x-acs-action": action,
        "x-acs-version": "2018-05-01",
        "x-acs-date": acs_date(datetime.now(UTC)),
        "x-acs-signature-nonce": hashlib.sha256(repr((action, params, datetime.now())).encode()).hexdigest(),
    }
    query = canonical_query(params)
    content = b""
    if body:
        content = urlencode(params).encode()
        query = ""
        headers["content-type"] = "application/x-www-form-urlencoded"
    headers["x-acs-content-sha256"] = hashlib.sha256(content).hexdigest()
    headers["authorization"] = Acs3Signer(KEY_ID, SECRET).authorization(
        "POST", "/", query, headers, headers["x-acs-content-sha256"]
    )
    with httpx.Client(transport=httpx.WSGITransport(app=app)) as http:
        return http.post(f"{BASE_URL}/?{query}" if query else f"{BASE_URL}/", headers=headers, content=content)


# ---------------------------------------------------------------------------------------------------------------
# Sending


def test_single_and_batch_sends_succeed_and_are_recorded() -> None:
    app = create_app(Knobs(seed=7))
    client = client_for(app)
    otp = sms(1, type=MessageType.OTP, text="Your code is 123456", sender_id="Alicloud")
    batch = [sms(2, text="Hello * ~ % + & = 你好 🎉"), sms(3, text="second"), sms(4, text="third")]
    outcomes = client.send([otp, *batch])

    assert all(o.ok for o in outcomes), outcomes
    assert outcomes[0].segments == 1
    assert outcomes[0].extra["country"] == "Hong Kong"
    assert len({o.provider_message_id for o in outcomes}) == 4
    assert all(re.fullmatch(r"\d{16,}", o.provider_message_id or "") for o in outcomes)
    sent = state_of(app).ledger.snapshot()["sent"]
    assert sent == {
        "batch1.00001": 1,
        "batch1.00002+3/85251230002": 1,
        "batch1.00002+3/85251230003": 1,
        "batch1.00002+3/85251230004": 1,
    }
    assert state_of(app).ledger.snapshot()["rejected_signatures"] == 0


def test_a_full_batch_in_a_form_body() -> None:
    app = create_app(Knobs())
    client = client_for(app)  # 1,000 numbers are far past max_query_length: the parameters go in the body
    messages = [sms(i, to=f"+4479{i:08d}", text=f"message {i} ✓") for i in range(1000)]
    outcomes = client.send(messages)
    assert sum(o.ok for o in outcomes) == 1000
    assert len(state_of(app).ledger.snapshot()["sent"]) == 1000


def test_sending_the_same_call_twice_shows_as_duplicates() -> None:
    app = create_app(Knobs())
    client = client_for(app)
    messages = [sms(1), sms(2)]
    client.send(messages)
    client.send(messages)
    assert state_of(app).ledger.snapshot()["duplicates"] == {
        "batch1.00001+2/85251230001": 2,
        "batch1.00001+2/85251230002": 2,
    }


# ---------------------------------------------------------------------------------------------------------------
# Authentication


def test_wrong_secret_is_rejected_as_alibaba_does() -> None:
    app = create_app(Knobs())
    [outcome] = client_for(app, secret="not-the-secret").send([sms(1)])
    assert outcome.error is not None
    assert outcome.error.code == "SignatureDoesNotMatch"
    assert outcome.error.http_status == 400
    assert outcome.error.category is ErrorCategory.CONFIG
    assert outcome.error.message.startswith("Specified signature is not matched with our calculation.")
    snapshot = state_of(app).ledger.snapshot()
    assert snapshot["rejected_signatures"] == 1
    assert snapshot["sent"] == {}


def test_the_real_error_body_shape() -> None:
    app = create_app(Knobs())
    client = client_for(app, secret="not-the-secret")
    call = client.prepare([sms(1)])[0]
    with httpx.Client(transport=httpx.WSGITransport(app=app)) as http:
        response = http.send(call.request)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert body["Code"] == "SignatureDoesNotMatch"
    assert re.fullmatch(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}", body["RequestId"])


def test_unknown_access_key() -> None:
    app = create_app(Knobs())
    [outcome] = client_for(app, key_id="LTAIunknown").send([sms(1)])
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.http_status, outcome.error.category) == (
        "InvalidAccessKeyId.NotFound",
        404,
        ErrorCategory.CONFIG,
    )


def test_credentials_come_from_env() -> None:
    env = {"GLOBESMS_ALIYUN_ACCESS_KEY_ID": "LTAIother", "GLOBESMS_ALIYUN_ACCESS_KEY_SECRET": "other-secret"}
    app = create_app(Knobs(), env)
    assert client_for(app, key_id="LTAIother", secret="other-secret").send([sms(1)])[0].ok
    assert client_for(app).send([sms(2)])[0].error is not None


def test_stale_timestamp() -> None:
    app = create_app(Knobs())
    stale = datetime.now(UTC) - timedelta(minutes=16)
    [outcome] = client_for(app, clock=lambda: stale).send([sms(1)])
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.category) == ("InvalidTimeStamp.Expired", ErrorCategory.CONFIG)
    recent = datetime.now(UTC) - timedelta(minutes=14)
    assert client_for(app, clock=lambda: recent).send([sms(2)])[0].ok


def test_reused_nonce() -> None:
    app = create_app(Knobs())
    client = client_for(app, nonce=lambda: "always-the-same")
    first = client.send([sms(1)])[0]
    [second] = client.send([sms(2)])
    assert first.ok
    assert second.error is not None
    assert (second.error.code, second.error.category) == ("SignatureNonceUsed", ErrorCategory.RETRYABLE)
    assert state_of(app).ledger.snapshot()["sent"] == {"batch1.00001": 1}


def test_a_changed_parameter_breaks_the_signature() -> None:
    app = create_app(Knobs())
    call = client_for(app).prepare([sms(1)])[0]
    tampered = httpx.Request(
        "POST", str(call.request.url).replace("85251230001", "85251239999"), headers=call.request.headers
    )
    with httpx.Client(transport=httpx.WSGITransport(app=app)) as http:
        response = http.send(tampered)
    assert (response.status_code, response.json()["Code"]) == (400, "SignatureDoesNotMatch")


def test_a_changed_body_breaks_the_content_hash() -> None:
    app = create_app(Knobs())
    call = client_for(app, max_query_length=0).prepare([sms(1), sms(2)])[0]
    headers = {name: value for name, value in call.request.headers.items() if name != "content-length"}
    tampered = httpx.Request("POST", call.request.url, headers=headers, content=call.request.content + b"&x=1")
    with httpx.Client(transport=httpx.WSGITransport(app=app)) as http:
        response = http.send(tampered)
    assert (response.status_code, response.json()["Code"]) == (400, "SignatureDoesNotMatch")


# ---------------------------------------------------------------------------------------------------------------
# Field rules and caps (raw signed requests: our client refuses these before sending)


def business(response: httpx.Response) -> str:
    assert response.status_code == 200
    code: str = response.json()["ResponseCode"]
    return code


def test_batch_cap() -> None:
    app = create_app(Knobs())
    numbers = [f"44790{i:07d}" for i in range(1001)]
    params = {"To": json.dumps(numbers), "Message": json.dumps(["x"] * 1001), "Type": "NOTIFY"}
    assert business(raw_call(app, "BatchSendMessageToGlobe", params, body=True)) == "MOBILE_COUNT_OVER_LIMIT"
    params = {"To": json.dumps(numbers[:1000]), "Message": json.dumps(["x"] * 1000), "Type": "NOTIFY"}
    assert business(raw_call(app, "BatchSendMessageToGlobe", params, body=True)) == "OK"


def test_mainland_numbers_are_refused() -> None:
    app = create_app(Knobs())
    single = raw_call(app, "SendMessageToGlobe", {"To": "8613800138000", "Message": "hi"})
    assert business(single) == "NOT_SUPPORTED_COUNTRY"
    params = {"To": '["8613800138000","85251230001"]', "Message": '["a","b"]', "Type": "NOTIFY", "TaskId": "t+2"}
    answer = raw_call(app, "BatchSendMessageToGlobe", params).json()
    assert answer["ResponseCode"] == "OK"
    assert json.loads(answer["FailedList"]) == ["8613800138000"]
    assert len(json.loads(answer["MessageIdList"])) == 1 and answer["SuccessCount"] == "1"
    assert state_of(app).ledger.snapshot()["sent"] == {"t+2/85251230001": 1}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"From": "Ali-Cloud"}, "INVALID_SENDERID"),
        ({"From": "Alicloud1234"}, "INVALID_SENDERID"),
        ({"From": "1234567890123456"}, "INVALID_SENDERID"),
        ({"To": "85212ab"}, "MOBILE_NUMBER_ILLEGAL"),
        ({"To": "+85251230001"}, "MOBILE_NUMBER_ILLEGAL"),  # dialing code and number, digits only
        ({"To": "8525123"}, "MOBILE_NUMBER_ILLEGAL"),  # too short for a Hong Kong number
        ({"To": "0085251230001"}, "MOBILE_NUMBER_ILLEGAL"),
        ({"Type": "PROMO"}, "INVALID_PARAMETERS"),
        ({"TaskId": "x" * 256}, "INVALID_PARAMETERS"),
        ({"ValidityPeriod": "soon"}, "INVALID_PARAMETERS"),
        ({"From": "123456789012345", "TaskId": "x" * 255, "ValidityPeriod": "600"}, "OK"),
        ({"From": "Alicloud321", "Type": "OTP"}, "OK"),
    ],
)
def test_single_field_rules(params: dict[str, str], code: str) -> None:
    app = create_app(Knobs())
    assert business(raw_call(app, "SendMessageToGlobe", {"To": "85251230001", "Message": "hi", **params})) == code


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Type": "OTP"}, "INVALID_PARAMETERS"),
        ({"Message": '["only one"]'}, "INVALID_PARAMETERS"),
        ({"To": "[]", "Message": "[]"}, "INVALID_PARAMETERS"),
        ({"To": "85251230001"}, "INVALID_JSON_PARAM"),
        ({"Message": "[1, 2]"}, "INVALID_JSON_PARAM"),
        ({"From": "Ali Cloud"}, "INVALID_SENDERID"),
    ],
)
def test_batch_field_rules(params: dict[str, str], code: str) -> None:
    app = create_app(Knobs())
    base = {"To": '["85251230001","85251230002"]', "Message": '["a","b"]', "Type": "NOTIFY"}
    assert business(raw_call(app, "BatchSendMessageToGlobe", {**base, **params})) == code


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("x" * 160, "1"),
        ("x" * 161, "2"),  # 153 characters per part of a long message
        ("[" * 80, "1"),  # GSM-7 extension characters take two septets
        ("[" * 81, "2"),
        ("é" * 160, "1"),  # in the GSM-7 alphabet
        ("你" * 70, "1"),  # UCS-2: 70 in one message, 67 per part
        ("你" * 71, "2"),
        ("你" * 135, "3"),
    ],
)
def test_billed_segments(text: str, segments: str) -> None:
    answer = raw_call(create_app(Knobs()), "SendMessageToGlobe", {"To": "85251230001", "Message": text}).json()
    assert (answer["ResponseCode"], answer["Segments"]) == ("OK", segments)


def test_missing_parameters_and_unknown_actions_are_gateway_errors() -> None:
    app = create_app(Knobs())
    missing = raw_call(app, "SendMessageToGlobe", {"Message": "hi"})
    assert (missing.status_code, missing.json()["Code"]) == (400, "MissingTo")
    no_type = raw_call(app, "BatchSendMessageToGlobe", {"To": '["85251230001"]', "Message": '["a"]'})
    assert (no_type.status_code, no_type.json()["Code"]) == (400, "MissingType")
    unknown = raw_call(app, "SendSms", {"PhoneNumbers": "1"})
    assert (unknown.status_code, unknown.json()["Code"]) == (404, "InvalidAction.NotFound")


# ---------------------------------------------------------------------------------------------------------------
# Rate limits and injected faults


def test_throttling_at_a_low_rate_limit() -> None:
    app = create_app(Knobs(rate_limits={"BatchSendMessageToGlobe": 1}))
    client = client_for(app)
    outcomes = [client.send([sms(2 * i), sms(2 * i + 1)]) for i in range(3)]
    throttled = [o for call in outcomes for o in call if o.error is not None]
    # Three calls in well under two seconds: at most two can fall in different seconds.
    assert len(throttled) >= 2
    for outcome in throttled:
        assert outcome.error is not None
        assert (outcome.error.code, outcome.error.http_status, outcome.error.category) == (
            "Throttling.User",
            400,
            ErrorCategory.THROTTLED,
        )
    snapshot = state_of(app).ledger.snapshot()
    assert snapshot["throttled"]["BatchSendMessageToGlobe"] == len(throttled) // 2
    assert len(snapshot["sent"]) == 6 - len(throttled)
    # Singles have their own (unlimited here) budget.
    assert client.send([sms(9, type=MessageType.OTP)])[0].ok


@pytest.mark.parametrize(
    ("code", "status", "category"),
    [
        ("AMOUNT_NOT_ENOUGH", 200, ErrorCategory.CONFIG),
        ("MOBILE_NUMBER_ILLEGAL", 200, ErrorCategory.RECIPIENT),
        ("QPS_LIMIT_CONTROL", 200, ErrorCategory.THROTTLED),
        ("SYSTEM_ERROR", 200, ErrorCategory.RETRYABLE),
        ("ServiceUnavailable", 503, ErrorCategory.RETRYABLE),
        ("InternalError", 500, ErrorCategory.UNKNOWN_OUTCOME),
        ("Throttling.User", 400, ErrorCategory.THROTTLED),
    ],
)
def test_injected_errors(code: str, status: int, category: ErrorCategory) -> None:
    app = create_app(Knobs(error_rates={code: 1.0}))
    outcomes = client_for(app).send([sms(1), sms(2), sms(3, type=MessageType.OTP)])
    for outcome in outcomes:
        assert outcome.error is not None
        assert (outcome.error.code, outcome.error.http_status, outcome.error.category) == (code, status, category)
    assert state_of(app).ledger.snapshot()["sent"] == {}


@pytest.fixture
def served_app() -> Iterator[tuple[Flask, str]]:
    app = create_app(Knobs(timeout_rate=1.0, timeout_seconds=1.0))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_a_held_answer_is_an_unknown_outcome_after_the_send(served_app: tuple[Flask, str]) -> None:
    app, url = served_app
    settings = AliyunSettings(endpoint=url, access_key_id=KEY_ID, access_key_secret=SECRET, read_timeout=0.2)
    with AliyunClient(settings) as client:
        [outcome] = client.send([sms(1)])
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.category) == ("READ_TIMEOUT", ErrorCategory.UNKNOWN_OUTCOME)
    assert state_of(app).ledger.snapshot()["sent"] == {"batch1.00001": 1}  # it was accepted all the same


# ---------------------------------------------------------------------------------------------------------------
# Receipts


class ReceiptSink:
    """A local callback endpoint that answers like a well-behaved receiver and keeps what it got."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.content_types: list[str] = []
        self.arrived = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                answer = json.dumps(ACK).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                with sink.arrived:
                    sink.bodies.append(body)
                    sink.content_types.append(self.headers.get("Content-Type", ""))
                    sink.arrived.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/receipts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[bytes]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.bodies) >= count, timeout), self.bodies
            return list(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[ReceiptSink]:
    receiver = ReceiptSink()
    yield receiver
    receiver.close()


DATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0800")
REPORT_FIELDS = {
    "To",
    "Status",
    "MessageId",
    "TaskId",
    "SmsSize",
    "SendDate",
    "ReceiveDate",
    "ErrorCode",
    "ErrorDescription",
}


def test_receipts_are_pushed_in_alibabas_format(sink: ReceiptSink) -> None:
    app = create_app(Knobs(receipt_callback_url=sink.url, receipt_delay_seconds=0))
    client = client_for(app)
    single = client.send([sms(1, type=MessageType.OTP, text="x" * 200)])
    batch = client.send([sms(2), sms(3)])
    bodies = sink.wait_for(2)

    raw_reports = [report for body in bodies for report in json.loads(body)]
    assert all(isinstance(json.loads(body), list) for body in bodies)
    assert all(content_type.startswith("application/json") for content_type in sink.content_types)
    assert all(set(report) == REPORT_FIELDS for report in raw_reports)
    assert all(DATE.fullmatch(report["SendDate"]) and DATE.fullmatch(report["ReceiveDate"]) for report in raw_reports)

    reports = {r.message_id: r for body in bodies for r in parse_receipts(body)}
    assert set(reports) == {o.provider_message_id for o in single + batch}
    by_id = {o.provider_message_id: o for o in single + batch}
    for provider_id, report in reports.items():
        assert report.outcome is Status.DELIVERED and report.status == "1"
        assert report.task_id == by_id[provider_id].extra["task_id"]
    single_report = reports[str(single[0].provider_message_id)]
    assert (single_report.sms_size, single_report.to) == (2, "85251230001")
    assert {reports[str(o.provider_message_id)].to for o in batch} == {"85251230002", "85251230003"}


def test_receipt_outcomes_and_duplicates(sink: ReceiptSink) -> None:
    knobs = Knobs(
        receipt_callback_url=sink.url,
        receipt_delay_seconds=0,
        receipt_mix={"UNDELIVERED": 0.5, "EXPIRED": 0.5},
        receipt_duplicate_rate=1.0,
        seed=3,
    )
    app = create_app(knobs)
    outcomes = client_for(app).send([sms(i, type=MessageType.OTP) for i in range(1, 7)])
    bodies = sink.wait_for(12)
    reports = [r for body in bodies for r in parse_receipts(body)]
    assert len(reports) == 12
    assert {r.message_id for r in reports} == {o.provider_message_id for o in outcomes}
    assert {(r.status, r.outcome) for r in reports} == {("2", Status.UNDELIVERED), ("6", Status.EXPIRED)}
    assert {r.error_code for r in reports} == {"UNDELIV", "EXPIRED"}


def test_no_receipts_for_refused_numbers(sink: ReceiptSink) -> None:
    app = create_app(Knobs(receipt_callback_url=sink.url, receipt_delay_seconds=0))
    params = {"To": '["8613800138000","85251230001"]', "Message": '["a","b"]', "Type": "NOTIFY", "TaskId": "t+2"}
    raw_call(app, "BatchSendMessageToGlobe", params)
    [body] = sink.wait_for(1)
    assert [r.to for r in parse_receipts(body)] == ["85251230001"]


# ---------------------------------------------------------------------------------------------------------------
# The official SDK against the emulator: its independent signature check accepts what Alibaba's SDK signs


@pytest.mark.sdk
def test_the_official_sdk_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    sdk_client_module = importlib.import_module("alibabacloud_dysmsapi20180501.client")
    sdk_models = importlib.import_module("alibabacloud_dysmsapi20180501.models")
    openapi_client = importlib.import_module("alibabacloud_tea_openapi.client")
    openapi_models = importlib.import_module("alibabacloud_tea_openapi.models")
    darabonba_core = importlib.import_module("darabonba.core")
    darabonba_response = importlib.import_module("darabonba.response")
    darabonba_runtime = importlib.import_module("darabonba.runtime")

    app = create_app(Knobs())
    flask_client = app.test_client()

    def through_flask(request: Any, runtime: Any) -> Any:
        url = httpx.URL(darabonba_core.DaraCore.compose_url(request))
        answer = flask_client.open(
            url.raw_path.decode(), method=request.method, headers=request.headers, data=request.body or b""
        )
        response = darabonba_response.DaraResponse()
        response.status_code = answer.status_code
        response.headers = {name.lower(): value for name, value in answer.headers.items()}
        response.body = answer.get_data()
        return response

    monkeypatch.setattr(openapi_client.DaraCore, "do_action", staticmethod(through_flask))
    config = openapi_models.Config(access_key_id=KEY_ID, access_key_secret=SECRET, endpoint="dysmsapi.emulator")
    client = sdk_client_module.Client(config)
    runtime = darabonba_runtime.RuntimeOptions()

    single = client.send_message_to_globe_with_options(
        sdk_models.SendMessageToGlobeRequest(to="85251230001", message="Hi there * ~ + % 你好", task_id="sdk.1"),
        runtime,
    )
    assert single.body.response_code == "OK" and single.body.message_id
    batch = client.batch_send_message_to_globe_with_options(
        sdk_models.BatchSendMessageToGlobeRequest(
            to='["85251230002","85251230003"]', message='["a b","c+d"]', type="MKT", task_id="sdk.2+2"
        ),
        runtime,
    )
    assert batch.body.response_code == "OK"
    assert len(json.loads(batch.body.message_id_list)) == 2
    assert state_of(app).ledger.snapshot()["sent"] == {"sdk.1": 1, "sdk.2+2/85251230002": 1, "sdk.2+2/85251230003": 1}
