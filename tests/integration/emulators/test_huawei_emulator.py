"""Our real HuaweiClient against the Huawei emulator, in process through httpx.WSGITransport (no sockets), except
where a real socket is the point: the receipt callback server and the read-timeout case."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from flask import Flask
from werkzeug.serving import make_server

from globesms.errors import ErrorCategory
from globesms.models.outbound import OutboundSms
from globesms.models.receipts import EchoRange
from globesms.providers.huawei import AuthMode, HuaweiClient, settings_from_environment
from globesms.providers.huawei.receipts import parse_push
from globesms.providers.huawei.wire import BatchStatusReports, StatusReport
from local.emulators.common import Knobs
from local.emulators.huawei import create_app
from local.settings import LOCAL_ENV_DEFAULTS

ENV = {
    **LOCAL_ENV_DEFAULTS,
    "GLOBESMS_HUAWEI_MAINLAND_SENDER": "csms0000000001",
    "GLOBESMS_HUAWEI_SIGNATURE": "GlobeSMS",
    # No statusCallback: the emulator pushes receipts to the request's statusCallback when it has one (as Huawei
    # does), and a test must not reach out. Receipt tests set the knob, or a statusCallback on 127.0.0.1.
}
SEND_URL = "https://smsapi.ap-southeast-1.myhuaweicloud.com:443/sms/batchSendDiffSms/v1"
BOTH_MODES = pytest.mark.parametrize("auth", [AuthMode.WSSE, AuthMode.AKSK])


def client_for(app: Flask, auth: AuthMode = AuthMode.WSSE, clock: Any = None, **env: str) -> HuaweiClient:
    settings = settings_from_environment({**ENV, "GLOBESMS_HUAWEI_AUTH": auth.value, **env})
    extra = {"clock": clock} if clock else {}
    return HuaweiClient(settings, http=httpx.Client(transport=httpx.WSGITransport(app=app)), **extra)


def stats(app: Flask) -> dict[str, Any]:
    return app.test_client().get("/_emulator/stats").get_json()


def sms(message_id: str, to: str, params: tuple[str, ...] = ("123456",)) -> OutboundSms:
    return OutboundSms(message_id=message_id, to=to, template_id="tplOtp", template_params=params)


# ------------------------------------------------------------------------------------------------------- sends


@BOTH_MODES
def test_send_succeeds_and_is_recorded(auth: AuthMode) -> None:
    app = create_app(Knobs(), ENV)
    messages = [sms("m1", "+6591000001"), sms("m2", "+8613800000001"), sms("m3", "+6591000002", ("9",))]
    outcomes = client_for(app, auth).send(messages)
    assert all(o.ok for o in outcomes), outcomes
    assert [o.message_id for o in outcomes] == ["m1", "m2", "m3"]
    assert outcomes[1].extra["countryId"] == "CN" and outcomes[0].extra["countryId"] == "SG"
    assert len({o.provider_message_id for o in outcomes}) == 3
    seen = stats(app)
    assert seen["sent"] == {"m1/+6591000001": 1, "m1/+6591000002": 1, "m2/+8613800000001": 1}
    assert seen["rejected_signatures"] == 0
    assert sum(seen["calls_per_second"]["batchSendDiffSms"].values()) == 2  # international + mainland


def test_full_batch_of_500_in_one_call() -> None:
    app = create_app(Knobs(), ENV)
    outcomes = client_for(app, AuthMode.AKSK).send([sms(f"m{i}", f"+65910{i:05d}", (str(i),)) for i in range(500)])
    assert all(o.ok for o in outcomes)
    assert sum(stats(app)["calls_per_second"]["batchSendDiffSms"].values()) == 1
    assert len(stats(app)["sent"]) == 500


# ---------------------------------------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    ("auth", "code", "http_status"),
    [(AuthMode.WSSE, "E000105", 401), (AuthMode.AKSK, "E000045", 400)],
)
def test_wrong_secret_is_rejected_as_config(auth: AuthMode, code: str, http_status: int) -> None:
    app = create_app(Knobs(), ENV)
    [outcome] = client_for(app, auth, GLOBESMS_HUAWEI_APP_SECRET="not-the-secret").send([sms("m1", "+6591000001")])
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.http_status, outcome.error.category) == (
        code,
        http_status,
        ErrorCategory.CONFIG,
    )
    assert stats(app)["rejected_signatures"] == 1
    assert stats(app)["sent"] == {}


@BOTH_MODES
def test_unknown_app_key(auth: AuthMode) -> None:
    app = create_app(Knobs(), ENV)
    [outcome] = client_for(app, auth, GLOBESMS_HUAWEI_APP_KEY="someoneElse").send([sms("m1", "+6591000001")])
    assert outcome.error is not None and (outcome.error.code, outcome.error.http_status) == ("E000102", 401)
    assert outcome.error.category is ErrorCategory.CONFIG


@pytest.mark.parametrize(
    ("auth", "age", "code"),
    [
        (AuthMode.WSSE, timedelta(hours=25), "E000110"),
        (AuthMode.AKSK, timedelta(minutes=16), "E000044"),
        (AuthMode.AKSK, -timedelta(minutes=16), "E000044"),
    ],
)
def test_stale_timestamp(auth: AuthMode, age: timedelta, code: str) -> None:
    app = create_app(Knobs(), ENV)
    client = client_for(app, auth, clock=lambda: datetime.now(UTC) - age)
    [outcome] = client.send([sms("m1", "+6591000001")])
    assert outcome.error is not None and outcome.error.code == code
    assert outcome.error.category is ErrorCategory.CONFIG


@BOTH_MODES
def test_timestamp_inside_the_window_is_accepted(auth: AuthMode) -> None:
    app = create_app(Knobs(), ENV)
    client = client_for(app, auth, clock=lambda: datetime.now(UTC) - timedelta(minutes=10))
    assert client.send([sms("m1", "+6591000001")])[0].ok


def _authenticated(app: Flask, body: dict[str, Any] | bytes, auth: AuthMode = AuthMode.WSSE) -> httpx.Response:
    """A hand-built call, signed by the client's header builder, to reach what the client itself never sends."""
    client = client_for(app, auth)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with httpx.Client(transport=httpx.WSGITransport(app=app)) as http:
        return http.post(SEND_URL, content=raw, headers=client.auth_headers(raw))


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"Authorization": None}, "E000001"),
        ({"Authorization": "Basic abc"}, "E000008"),
        ({"Authorization": 'WSSE profile="UsernameToken",type="Appkey"'}, "E000002"),
        ({"Authorization": 'WSSE realm="XYZ",profile="UsernameToken",type="Appkey"'}, "E000004"),
        ({"Authorization": 'WSSE realm="SDP",profile="Other",type="Appkey"'}, "E000005"),
        ({"Authorization": 'WSSE realm="SDP",profile="UsernameToken"'}, "E000007"),
        ({"X-WSSE": None}, "E000020"),
        ({"X-WSSE": 'Token Username="x"'}, "E000026"),
        (
            {"X-WSSE": 'UsernameToken Username="localHuaweiAppKey",Nonce="abc",Created="2024-01-01T00:00:00Z"'},
            "E000024",
        ),
        (
            {"X-WSSE": 'UsernameToken Username="localHuaweiAppKey",PasswordDigest="x",Nonce="a",Created="yesterday"'},
            "E000025",
        ),
    ],
)
def test_malformed_wsse_headers(change: dict[str, str | None], code: str) -> None:
    app = create_app(Knobs(), ENV)
    raw = json.dumps({"from": "isms0000000001", "smsContent": [{"to": ["+6591000001"], "templateId": "t"}]}).encode()
    headers: dict[str, str] = dict(client_for(app).auth_headers(raw))
    for name, value in change.items():
        headers.pop(name, None)
        if value is not None:
            headers[name] = value
    with httpx.Client(transport=httpx.WSGITransport(app=app)) as http:
        response = http.post(SEND_URL, content=raw, headers=headers)
    assert response.json()["code"] == code


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"X-Sdk-Date": None}, "E000041"),
        ({"X-Sdk-Date": "2024-01-01T00:00:00Z"}, "E000042"),
        ({"Authorization": "SDK-HMAC-SHA256 Access=x"}, "E000043"),
        ({"Host": "other.example.com"}, "E000045"),  # signed host is not the host that arrived
    ],
)
def test_malformed_aksk_headers(change: dict[str, str | None], code: str) -> None:
    app = create_app(Knobs(), ENV)
    raw = json.dumps({"from": "isms0000000001", "smsContent": [{"to": ["+6591000001"], "templateId": "t"}]}).encode()
    headers: dict[str, str] = dict(client_for(app, AuthMode.AKSK).auth_headers(raw))
    for name, value in change.items():
        headers.pop(name, None)
        if value is not None:
            headers[name] = value
    with httpx.Client(transport=httpx.WSGITransport(app=app)) as http:
        response = http.post(SEND_URL, content=raw, headers=headers)
    assert response.json()["code"] == code


def test_tampered_body_fails_the_aksk_signature() -> None:
    app = create_app(Knobs(), ENV)
    raw = json.dumps({"from": "isms0000000001", "smsContent": [{"to": ["+6591000001"], "templateId": "t"}]}).encode()
    headers = client_for(app, AuthMode.AKSK).auth_headers(raw)
    with httpx.Client(transport=httpx.WSGITransport(app=app)) as http:
        response = http.post(SEND_URL, content=raw.replace(b"+659", b"+658"), headers=headers)
    assert (response.status_code, response.json()["code"]) == (400, "E000045")


# --------------------------------------------------------------------------------------------- request rules


def _body(numbers: list[str], sender: str = "isms0000000001", **extra: Any) -> dict[str, Any]:
    return {"from": sender, "smsContent": [{"to": numbers, "templateId": "tplOtp", **extra}], "extend": "m1"}


@pytest.mark.parametrize(
    "body",
    [
        _body([f"+65910{i:05d}" for i in range(501)]),  # more than 500 numbers fails the whole call
        _body(["+" + "1" * 21]),  # a number longer than 21 characters
        _body(["6591000001"]),  # abroad, every number in the standard format "+{country code}..."
        _body(["+65 9100 0001"]),
        _body(["+6591000001"], templateParams=["123456"]),  # a misspelt field is refused, not ignored
        _body(["+6591000001"], sender="isms9999999999"),  # not a channel number of this application
        _body(["+8613800000001"], sender="csms0000000001"),  # mainland channel without a signature
        {**_body(["+6591000001"]), "extend": "has space"},
        {**_body(["+6591000001"]), "extend": "{braces}"},
        {"from": "isms0000000001", "smsContent": []},
        {"smsContent": [{"to": ["+6591000001"], "templateId": "t"}]},
        _body(["+6591000001"], templateParas=["x" * (64 * 1024)]),  # body over 64 KB
        b"not json",
    ],
)
def test_caps_and_format_rules(body: dict[str, Any] | bytes) -> None:
    app = create_app(Knobs(), ENV)
    response = _authenticated(app, body)
    assert (response.status_code, response.json()["code"]) == (400, "E000503")
    assert stats(app)["sent"] == {}


def test_mainland_number_on_the_international_channel_is_refused_per_number() -> None:
    app = create_app(Knobs(), ENV)
    response = _authenticated(app, _body(["+8613800000001", "+6591000001"]))
    payload = response.json()
    assert (response.status_code, payload["code"]) == (200, "000000")
    assert [item["status"] for item in payload["result"]] == ["E200029", "000000"]
    assert stats(app)["sent"] == {"m1/+6591000001": 1}


def test_all_numbers_refused_is_e000510_with_statuses() -> None:
    app = create_app(Knobs(), ENV)
    response = _authenticated(app, _body(["+8613800000001"]))
    assert (response.status_code, response.json()["code"]) == (400, "E000510")
    assert response.json()["result"][0]["status"] == "E200029"


def test_a_mainland_channel_number_without_country_code_is_plus86() -> None:
    app = create_app(Knobs(), ENV)
    numbers = ["13800000001", "+8613800000002", "+6591000001"]
    response = _authenticated(app, _body(numbers, sender="csms0000000001", signature="GlobeSMS"))
    payload = response.json()
    assert (response.status_code, payload["code"]) == (200, "000000")
    assert [(item["status"], item["countryId"]) for item in payload["result"]] == [
        ("000000", "CN"),
        ("000000", "CN"),
        ("E200029", "SG"),  # a foreign number does not fit a mainland channel's template type
    ]


def test_duplicate_number_in_one_call() -> None:
    app = create_app(Knobs(), ENV)
    response = _authenticated(app, _body(["+6591000001", "+6591000001"]))
    assert [item["status"] for item in response.json()["result"]] == ["000000", "E200041"]


def test_client_keeps_plus86_off_the_international_channel() -> None:
    app = create_app(Knobs(), ENV)
    outcomes = client_for(app).send([sms("m1", "+8613800000001"), sms("m2", "+6591000001")])
    assert all(o.ok for o in outcomes)


def test_success_answer_has_the_documented_fields() -> None:
    app = create_app(Knobs(), ENV)
    payload = _authenticated(app, _body(["+6591000001"])).json()
    assert (payload["code"], payload["description"]) == ("000000", "Success")
    [item] = payload["result"]
    assert set(item) == {"originTo", "createTime", "from", "smsMsgId", "status", "countryId", "total"}
    assert datetime.strptime(item["createTime"], "%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------ throttling, faults


def test_throttling_at_a_low_rate_limit() -> None:
    app = create_app(Knobs(rate_limits={"batchSendDiffSms": 1}), ENV)
    client = client_for(app)
    outcomes = [client.send([sms(f"m{i}", f"+659100000{i}")])[0] for i in range(5)]
    throttled = [o for o in outcomes if o.error is not None]
    assert len(throttled) >= 3  # 5 fast calls span at most two wall-clock seconds
    for outcome in throttled:
        assert outcome.error is not None
        assert (outcome.error.code, outcome.error.http_status) == ("APIG.0308", 429)
        assert outcome.error.category is ErrorCategory.THROTTLED
    seen = stats(app)
    assert seen["throttled"]["batchSendDiffSms"] == len(throttled)
    assert len(seen["sent"]) == 5 - len(throttled)


@pytest.mark.parametrize(
    ("code", "http_status", "category"),
    [
        ("E000623", 403, ErrorCategory.THROTTLED),
        ("E000112", 401, ErrorCategory.CONFIG),
        ("E000620", 403, ErrorCategory.CONFIG),
        ("E000000", 400, ErrorCategory.REQUEST),
        ("APIG.0308", 429, ErrorCategory.THROTTLED),
    ],
)
def test_injected_call_errors(code: str, http_status: int, category: ErrorCategory) -> None:
    app = create_app(Knobs(error_rates={code: 1.0}), ENV)
    outcomes = client_for(app).send([sms("m1", "+6591000001"), sms("m2", "+6591000002")])
    for outcome in outcomes:
        assert outcome.error is not None
        assert (outcome.error.code, outcome.error.http_status, outcome.error.category) == (code, http_status, category)
    assert stats(app)["sent"] == {}


@pytest.mark.parametrize(
    ("code", "category"), [("E200028", ErrorCategory.REQUEST), ("E200015", ErrorCategory.THROTTLED)]
)
def test_injected_per_number_status(code: str, category: ErrorCategory) -> None:
    app = create_app(Knobs(error_rates={code: 1.0}), ENV)
    outcomes = client_for(app).send([sms("m1", "+6591000001"), sms("m2", "+6591000002")])
    for outcome in outcomes:
        assert outcome.error is not None
        assert (outcome.error.code, outcome.error.http_status, outcome.error.category) == (code, 400, category)


def test_knobs_change_at_run_time() -> None:
    app = create_app(Knobs(), ENV)
    client = client_for(app)
    assert client.send([sms("m1", "+6591000001")])[0].ok
    app.test_client().post("/_emulator/knobs", json={"error_rates": {"E000109": 1.0}})
    [outcome] = client.send([sms("m2", "+6591000002")])
    assert outcome.error is not None and outcome.error.code == "E000109"


# ---------------------------------------------------------------------------------------------------- receipts


class CallbackServer:
    """A tiny HTTP server on 127.0.0.1 that records what is posted to it."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._arrived = threading.Condition()
        received, arrived = self.received, self._arrived

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with arrived:
                    received.append((self.headers.get("Content-Type", ""), body))
                    arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/huawei/receipts"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count and time.monotonic() < deadline:
                self._arrived.wait(deadline - time.monotonic())
        return list(self.received)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def callback() -> Iterator[CallbackServer]:
    server = CallbackServer()
    yield server
    server.close()


def test_status_reports_are_pushed_one_per_request_as_forms(callback: CallbackServer) -> None:
    app = create_app(Knobs(receipt_callback_url=callback.url, receipt_delay_seconds=0.0), ENV)
    outcomes = client_for(app).send([sms("m1", "+6591000001"), sms("m2", "+6591000002")])
    received = callback.wait_for(2)
    assert len(received) == 2
    reports = []
    for content_type, body in received:
        assert content_type == "application/x-www-form-urlencoded"
        reports.append(StatusReport.model_validate(dict(parse_qsl(body.decode()))))
    by_id = {report.sms_msg_id: report for report in reports}
    assert set(by_id) == {o.provider_message_id for o in outcomes}
    for outcome, number in zip(outcomes, ["+6591000001", "+6591000002"], strict=True):
        report = by_id[outcome.provider_message_id or ""]
        assert (report.status, report.source, report.total, report.sequence) == ("DELIVRD", "2", "1", "1")
        assert (report.extend, report.to, report.org_code) == ("m1", number, "DELIVRD")
        assert report.update_time and datetime.strptime(report.update_time, "%Y-%m-%dT%H:%M:%SZ")
        assert report.status_desc


def test_receipt_outcomes_map_to_huawei_statuses_and_duplicate(callback: CallbackServer) -> None:
    knobs = Knobs(
        receipt_callback_url=callback.url,
        receipt_delay_seconds=0.0,
        receipt_mix={"UNDELIVERED": 1.0},
        receipt_duplicate_rate=1.0,
    )
    app = create_app(knobs, ENV)
    client_for(app).send([sms("m1", "+6591000001")])
    received = callback.wait_for(2)
    statuses = [dict(parse_qsl(body.decode()))["status"] for _, body in received]
    assert statuses == ["UNDELIV", "UNDELIV"]
    ids = {dict(parse_qsl(body.decode()))["smsMsgId"] for _, body in received}
    assert len(ids) == 1  # the same report twice


def test_batch_status_reports_variant(callback: CallbackServer) -> None:
    knobs = Knobs(receipt_callback_url=callback.url, receipt_delay_seconds=0.0, receipt_mix={"EXPIRED": 1.0})
    app = create_app(knobs, ENV, receipt_format="batch")
    client_for(app).send([sms(f"m{i}", f"+65910{i:05d}", (str(i),)) for i in range(60)])
    received = callback.wait_for(2)
    assert [content_type for content_type, _ in received] == ["application/json"] * 2
    batches = [BatchStatusReports.model_validate_json(body) for _, body in received]
    assert sorted(len(batch.status_report_list) for batch in batches) == [10, 50]
    assert {report.status for batch in batches for report in batch.status_report_list} == {"EXPIRED"}


@pytest.mark.parametrize("receipt_format", ["form", "batch"])
def test_receipts_go_to_the_requests_status_callback(callback: CallbackServer, receipt_format: str) -> None:
    knob_target = CallbackServer()
    try:
        knobs = Knobs(receipt_callback_url=knob_target.url, receipt_delay_seconds=0.0)
        app = create_app(knobs, ENV, receipt_format="batch" if receipt_format == "batch" else "form")
        client = client_for(app, GLOBESMS_HUAWEI_STATUS_CALLBACK=callback.url)
        outcomes = client.send([sms("b1.00001", "+6591000001"), sms("b1.00002", "+6591000002")])
        # One form report per request to a statusCallback, whatever the application's address takes.
        received = callback.wait_for(2)
        assert [content_type for content_type, _ in received] == ["application/x-www-form-urlencoded"] * 2
        assert knob_target.wait_for(1, timeout=0.3) == []  # the knob is only the fallback
    finally:
        knob_target.close()
    parsed = [parse_push(body, content_type) for content_type, body in received]
    reports = [report for push in parsed for report in push.reports]
    assert [push.refused_items for push in parsed] == [[]] * len(parsed)
    assert {r.provider_message_id for r in reports} == {o.provider_message_id for o in outcomes}
    assert {r.to for r in reports} == {"+6591000001", "+6591000002"}
    assert {r.echo for r in reports} == {EchoRange("b1", 1, 500)}


def test_no_receipts_without_a_callback_knob(callback: CallbackServer) -> None:
    app = create_app(Knobs(receipt_delay_seconds=0.0), ENV)
    client_for(app).send([sms("m1", "+6591000001")])
    assert callback.wait_for(1, timeout=0.3) == []


# ------------------------------------------------------------------------------------------------ read timeout


def test_accepted_call_whose_answer_times_out_is_unknown_outcome() -> None:
    app = create_app(Knobs(timeout_rate=1.0, timeout_seconds=1.0), ENV)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {**ENV, "GLOBESMS_HUAWEI_ENDPOINT": f"http://127.0.0.1:{server.server_port}"}
        env["GLOBESMS_HTTP_READ_TIMEOUT"] = "0.3"
        client = HuaweiClient(settings_from_environment(env))
        [outcome] = client.send([sms("m1", "+6591000001")])
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.category) == ("READ_TIMEOUT", ErrorCategory.UNKNOWN_OUTCOME)
    assert stats(app)["sent"] == {"m1/+6591000001": 1}  # the emulator did accept it: resending would duplicate
