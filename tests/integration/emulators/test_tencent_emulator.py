"""Our Tencent client against the Tencent emulator, in process through httpx.WSGITransport (no sockets), except
where a socket is the point (receipt pushes, a read timeout)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

import httpx
import pytest
from pydantic import SecretStr
from werkzeug.serving import make_server

from globesms.errors import ErrorCategory
from globesms.models.outbound import OutboundSms
from globesms.providers.tencent import TencentSettings, TencentSmsClient
from globesms.providers.tencent.signer import Tc3Signer
from local.emulators import common
from local.emulators import tencent as emulator
from local.emulators.common import Knobs
from local.settings import LOCAL_ENV_DEFAULTS

ENDPOINT = "http://tencent.emulator"
ENV = dict(LOCAL_ENV_DEFAULTS) | {"GLOBESMS_TENCENT_ENDPOINT": ENDPOINT}
SECRET_ID = LOCAL_ENV_DEFAULTS["GLOBESMS_TENCENT_SECRET_ID"]
SECRET_KEY = LOCAL_ENV_DEFAULTS["GLOBESMS_TENCENT_SECRET_KEY"]
APP_ID = LOCAL_ENV_DEFAULTS["GLOBESMS_TENCENT_SDK_APP_ID"]
AT_10_UTC = datetime(2026, 4, 16, 10, 0, tzinfo=UTC).timestamp()
AT_23_UTC = datetime(2026, 4, 16, 23, 0, tzinfo=UTC).timestamp()
AT_01_UTC = datetime(2026, 4, 16, 1, 0, tzinfo=UTC).timestamp()  # 09:00 in Beijing


def make_app(knobs: Knobs | None = None, **kwargs: Any) -> Any:
    return emulator.create_app(knobs or Knobs(rate_limits={"SendMultiGlobalSms": 0}), ENV, **kwargs)


def client_for(app: Any, *, clock: Any = time.time, **env: str) -> TencentSmsClient:
    settings = TencentSettings.from_environment(ENV | env)
    return TencentSmsClient(settings, http=httpx.Client(transport=httpx.WSGITransport(app=app)), clock=clock)


def stats(app: Any) -> dict[str, Any]:
    response: dict[str, Any] = app.test_client().get("/_emulator/stats").get_json()
    return response


def sms(index: int = 0, **fields: Any) -> OutboundSms:
    values: dict[str, Any] = {
        "message_id": f"msg-{index}",
        "to": f"+6019889{index:04d}",
        "template_id": "1800308",
        "template_params": ("1234",),
    }
    return OutboundSms(**(values | fields))


def raw_call(app: Any, payload: Any, *, timestamp: int | None = None) -> dict[str, Any]:
    """A correctly signed call with any body, for the rules our client never lets through."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    tc3 = Tc3Signer(secret_id=SECRET_ID, secret_key=SecretStr(SECRET_KEY), service="sms", host="tencent.emulator")
    headers = {
        "Content-Type": "application/json",
        "Host": "tencent.emulator",
        "X-TC-Action": "SendMultiGlobalSms",
        "X-TC-Version": "2021-01-11",
        "X-TC-Region": "ap-singapore",
        "X-TC-Timestamp": str(timestamp),
        "Authorization": tc3.authorization(body, timestamp),
    }
    with httpx.Client(transport=httpx.WSGITransport(app=app)) as http:
        response = http.post(ENDPOINT + "/", content=body, headers=headers)
    assert response.status_code == 200  # Tencent answers refusals with 200 too
    answer: dict[str, Any] = response.json()["Response"]
    assert "RequestId" in answer
    return answer


def error_code(answer: dict[str, Any]) -> str:
    code: str = answer["Error"]["Code"]
    return code


def item(number: str = "+60198890000", **fields: Any) -> dict[str, Any]:
    return {"PhoneNumber": number, "TemplateId": "1800308", "TemplateParamSet": ["1"], "SessionContext": "x"} | fields


# --- sending ---------------------------------------------------------------------------------------------------------


def test_a_send_succeeds_and_is_recorded() -> None:
    app = make_app()
    outcomes = client_for(app).send([sms(0), sms(1, template_params=("é" * 80,))])

    assert all(o.ok for o in outcomes), outcomes
    assert all(re.fullmatch(r"[0-9a-f-]{36}", o.provider_message_id or "") for o in outcomes)
    assert [o.segments for o in outcomes] == [1, 2]  # 80 UCS-2 characters and a prefix need two parts
    assert outcomes[0].extra["iso_code"] == "MY"
    assert stats(app)["sent"] == {"msg-0": 1, "msg-1": 1}


def test_ledger_counts_repeated_sends_as_duplicates() -> None:
    app = make_app()
    client = client_for(app)
    client.send([sms(0)])
    client.send([sms(0), sms(1)])
    snapshot = stats(app)
    assert snapshot["sent"] == {"msg-0": 2, "msg-1": 1}
    assert snapshot["duplicates"] == {"msg-0": 2}


def test_a_full_batch_of_200_goes_in_one_call() -> None:
    app = make_app()
    outcomes = client_for(app).send([sms(i) for i in range(200)])
    assert len(outcomes) == 200 and all(o.ok for o in outcomes)
    assert sum(stats(app)["calls_per_second"]["SendMultiGlobalSms"].values()) == 1


# --- authentication ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "code"),
    [
        ({"GLOBESMS_TENCENT_SECRET_KEY": "not-the-secret"}, "AuthFailure.SignatureFailure"),
        ({"GLOBESMS_TENCENT_SECRET_ID": "AKIDsomeoneElse"}, "AuthFailure.SecretIdNotFound"),
    ],
)
def test_wrong_credentials_are_refused_and_mapped_to_config(env: dict[str, str], code: str) -> None:
    app = make_app()
    outcomes = client_for(app, **env).send([sms(0), sms(1)])
    for outcome in outcomes:
        assert outcome.error is not None
        assert (outcome.error.code, outcome.error.category) == (code, ErrorCategory.CONFIG)
    snapshot = stats(app)
    assert snapshot["rejected_signatures"] == 1
    assert snapshot["sent"] == {}


def test_a_stale_timestamp_is_refused_as_expired() -> None:
    app = make_app()
    [outcome] = client_for(app, clock=lambda: time.time() - 301).send([sms()])
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.category) == ("AuthFailure.SignatureExpire", ErrorCategory.CONFIG)


def test_a_body_changed_after_signing_is_refused() -> None:
    app = make_app()
    client = client_for(app)
    request = client.build_request([sms()])
    tampered = httpx.Request(
        "POST", request.url, headers=request.headers, content=request.content.replace(b"1234", b"9999")
    )
    with httpx.Client(transport=httpx.WSGITransport(app=app)) as http:
        answer = http.send(tampered).json()["Response"]
    assert error_code(answer) == "AuthFailure.SignatureFailure"


def test_a_host_other_than_the_signed_one_is_refused() -> None:
    app = make_app()
    request = client_for(app).build_request([sms()])
    request.headers["Host"] = "elsewhere.example"
    with httpx.Client(transport=httpx.WSGITransport(app=app)) as http:
        assert error_code(http.send(request).json()["Response"]) == "AuthFailure.SignatureFailure"


def test_a_malformed_authorization_is_refused() -> None:
    app = make_app()
    request = client_for(app).build_request([sms()])
    request.headers["Authorization"] = "Bearer nope"
    with httpx.Client(transport=httpx.WSGITransport(app=app)) as http:
        assert error_code(http.send(request).json()["Response"]) == "AuthFailure.InvalidAuthorization"


def test_a_wrong_sdk_app_id_is_a_config_error() -> None:
    [outcome] = client_for(make_app(), GLOBESMS_TENCENT_SDK_APP_ID="1400999999").send([sms()])
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.category) == (
        "UnauthorizedOperation.SmsSdkAppIdVerifyFail",
        ErrorCategory.CONFIG,
    )


def test_an_unsupported_region_is_refused() -> None:
    # Our settings only allow the two documented regions, so the header is set by hand.
    app = make_app()
    request = client_for(app).build_request([sms()])
    request.headers["X-TC-Region"] = "ap-guangzhou"
    with httpx.Client(transport=httpx.WSGITransport(app=app)) as http:
        assert error_code(http.send(request).json()["Response"]) == "UnsupportedRegion"


# --- request rules (sent raw: our client refuses these before sending) -----------------------------------------------


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (
            {"SmsSdkAppId": APP_ID, "MultiSmsInfoSet": [item(f"+6019889{i:04d}") for i in range(201)]},
            "LimitExceeded.PhoneNumberCountLimit",
        ),
        (
            {"SmsSdkAppId": APP_ID, "MultiSmsInfoSet": [item(), item("+8613800138000")]},
            "UnsupportedOperation.ContainDomesticPhoneNumber",
        ),
        ({"SmsSdkAppId": APP_ID, "MultiSmsInfoSet": []}, "InvalidParameterValue.MultiSmsInfoSetEmpty"),
        ({"SmsSdkAppId": APP_ID}, "InvalidParameterValue.MultiSmsInfoSetEmpty"),
        ({"SmsSdkAppId": APP_ID, "MultiSmsInfoSet": [item(SenderId="Bad-Sender")]}, "InvalidParameterValue"),
        ({"SmsSdkAppId": APP_ID, "MultiSmsInfoSet": [item(SenderId="TwelveLetter")]}, "InvalidParameterValue"),
        ({"SmsSdkAppId": APP_ID, "MultiSmsInfoSet": [item(SessionContext="x" * 512)]}, "InvalidParameterValue"),
        ({"SmsSdkAppId": APP_ID, "MultiSmsInfoSet": [item(Text="free text")]}, "UnknownParameter"),
        ({"SmsSdkAppId": APP_ID, "MultiSmsInfoSet": [{"PhoneNumber": "+60198890000"}]}, "MissingParameter"),
        ({"SmsSdkAppId": APP_ID, "MultiSmsInfoSet": [item(TemplateParamSet=[1])]}, "InvalidParameter"),
        ({"MultiSmsInfoSet": [item()]}, "MissingParameter"),
        ({"SmsSdkAppId": "app", "MultiSmsInfoSet": [item()]}, "InvalidParameterValue.SdkAppIdNotExist"),
        (b"{not json", "FailedOperation.FailResolvePacket"),
        ([1, 2], "FailedOperation.FailResolvePacket"),
    ],
)
def test_whole_call_rules_answer_tencent_codes(payload: Any, code: str) -> None:
    app = make_app()
    assert error_code(raw_call(app, payload)) == code
    assert stats(app)["sent"] == {}


def test_per_number_rules_answer_in_the_status_set() -> None:
    answer = raw_call(
        make_app(),
        {
            "SmsSdkAppId": APP_ID,
            "MultiSmsInfoSet": [
                item("+60198890000", SessionContext="good"),
                item("+6012", SessionContext="short"),
                item("+60198890001", TemplateId="abc", SessionContext="bad-template"),
                item("+60198890002", TemplateParamSet=["visit https://x.example/win"], SessionContext="url"),
            ],
        },
    )
    codes = {s["SessionContext"]: s["Code"] for s in answer["SendMultiStatusSet"]}
    assert codes == {
        "good": "Ok",
        "short": "InvalidParameterValue.IncorrectPhoneNumber",
        "bad-template": "FailedOperation.TemplateUnapprovedOrNotExist",
        "url": "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
    }
    first = answer["SendMultiStatusSet"][0]
    assert list(first) == ["Code", "Fee", "IsoCode", "Message", "PhoneNumber", "SerialNo", "SessionContext"]
    assert (first["Fee"], first["IsoCode"], first["Message"]) == (1, "MY", "send success")


def test_client_maps_per_number_refusals() -> None:
    outcomes = client_for(make_app()).send([sms(0), sms(1, template_params=("go to www.example.com",))])
    assert outcomes[0].ok
    assert outcomes[1].error is not None
    assert outcomes[1].error.category is ErrorCategory.REQUEST


def test_template_registry_checks_parameter_count_and_existence() -> None:
    options = emulator.TencentOptions(templates={"1800308": emulator.TemplateSpec(params=2)})
    outcomes = client_for(make_app(options=options)).send(
        [
            sms(0, template_params=("a", "b")),
            sms(1, template_params=("a",)),
            sms(2, template_id="999"),
        ]
    )
    assert outcomes[0].ok
    assert outcomes[1].error is not None
    assert outcomes[1].error.code == "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"
    assert outcomes[2].error is not None
    assert outcomes[2].error.code == "FailedOperation.TemplateUnapprovedOrNotExist"


def test_registered_sender_ids_are_enforced() -> None:
    options = emulator.TencentOptions(sender_ids={"Qsms"})
    client = client_for(make_app(options=options))
    assert client.send([sms(0, sender_id="Qsms")])[0].ok
    [refused] = client.send([sms(1, sender_id="Other")])
    assert refused.error is not None
    assert (refused.error.code, refused.error.category) == ("InvalidParameterValue", ErrorCategory.REQUEST)


# --- marketing window ----------------------------------------------------------------------------------------------


def marketing_options(**fields: Any) -> emulator.TencentOptions:
    templates = {"1800308": emulator.TemplateSpec(params=1, marketing=True), "1800309": emulator.TemplateSpec(params=1)}
    return emulator.TencentOptions(templates=templates, **fields)


@pytest.mark.parametrize(
    ("now", "offset_minutes", "enforced", "refused"),
    [
        (AT_23_UTC, 0, True, True),
        (AT_10_UTC, 0, True, False),
        (AT_01_UTC, 0, True, True),  # 01:00 UTC
        (AT_01_UTC, 480, True, False),  # 09:00 at UTC+8
        (AT_23_UTC, 0, False, False),  # off by default
    ],
)
def test_marketing_templates_only_go_out_between_8_and_22(
    now: float, offset_minutes: int, enforced: bool, refused: bool
) -> None:
    options = marketing_options(enforce_marketing_window=enforced, marketing_utc_offset_minutes=offset_minutes)
    app = make_app(options=options, clock=lambda: now)
    marketing, notice = client_for(app, clock=lambda: now).send([sms(0), sms(1, template_id="1800309")])
    assert notice.ok
    if refused:
        assert marketing.error is not None
        assert (marketing.error.code, marketing.error.category) == (
            "FailedOperation.MarketingSendTimeConstraint",
            ErrorCategory.THROTTLED,
        )
        assert stats(app)["sent"] == {"msg-1": 1}
    else:
        assert marketing.ok


def test_options_can_be_changed_at_run_time() -> None:
    app = make_app(clock=lambda: AT_23_UTC)
    admin = app.test_client()
    changed = admin.post(
        "/_emulator/tencent/options",
        json={
            "templates": {"1800308": {"params": 1, "marketing": True}},
            "enforce_marketing_window": True,
        },
    ).get_json()
    assert changed["enforce_marketing_window"] is True
    assert admin.post("/_emulator/tencent/options", json={"nope": 1}).status_code == 400
    [outcome] = client_for(app, clock=lambda: AT_23_UTC).send([sms()])
    assert outcome.error is not None and outcome.error.code == "FailedOperation.MarketingSendTimeConstraint"


# --- throttling and injected faults ----------------------------------------------------------------------------------


def test_the_documented_rate_limit_applies_unless_overridden() -> None:
    knobs = Knobs()
    emulator.create_app(knobs, ENV)
    assert knobs.rate_limits == {"SendMultiGlobalSms": 10}
    explicit = Knobs(rate_limits={"SendMultiGlobalSms": 0})
    emulator.create_app(explicit, ENV)
    assert explicit.rate_limits == {"SendMultiGlobalSms": 0}


def test_calls_over_the_rate_limit_are_throttled() -> None:
    app = make_app(Knobs(rate_limits={"SendMultiGlobalSms": 2}))
    client = client_for(app)
    results = [client.send([sms(i)])[0] for i in range(5)]  # 5 calls within 2 seconds: at least one is over
    throttled = [r for r in results if not r.ok]
    assert throttled
    for outcome in throttled:
        assert outcome.error is not None
        assert (outcome.error.code, outcome.error.category) == ("RequestLimitExceeded", ErrorCategory.THROTTLED)
    snapshot = stats(app)
    assert snapshot["throttled"] == {"SendMultiGlobalSms": len(throttled)}
    assert len(snapshot["sent"]) == 5 - len(throttled)


@pytest.mark.parametrize(
    ("code", "category"),
    [
        ("InternalError", ErrorCategory.UNKNOWN_OUTCOME),
        ("AuthFailure.SignatureExpire", ErrorCategory.CONFIG),
        ("LimitExceeded.AppGlobalDailyLimit", ErrorCategory.THROTTLED),
        ("FailedOperation.PhoneNumberInBlacklist", ErrorCategory.RECIPIENT),
        ("InternalError.Timeout", ErrorCategory.UNKNOWN_OUTCOME),
    ],
)
def test_injected_errors_come_back_in_the_real_shape(code: str, category: ErrorCategory) -> None:
    app = make_app(Knobs(error_rates={code: 1.0}, rate_limits={"SendMultiGlobalSms": 0}))
    raw = raw_call(app, {"SmsSdkAppId": APP_ID, "MultiSmsInfoSet": [item()]})
    if code in emulator.PER_NUMBER_CODES:
        assert [s["Code"] for s in raw["SendMultiStatusSet"]] == [code]
    else:
        assert error_code(raw) == code
    outcomes = client_for(app).send([sms(0), sms(1)])
    for outcome in outcomes:
        assert outcome.error is not None
        assert (outcome.error.code, outcome.error.category) == (code, category)
    assert stats(app)["sent"] == {}


# --- receipts --------------------------------------------------------------------------------------------------------


class CallbackServer:
    """A tiny receiver on 127.0.0.1 that answers like a Tencent callback should and keeps what it got."""

    def __init__(self) -> None:
        self.pushes: list[Any] = []
        self.arrived = threading.Condition()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with received.arrived:
                    received.pushes.append(json.loads(body))
                    received.arrived.notify_all()
                answer = json.dumps({"result": 0, "errmsg": "OK"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms/callback"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def reports(self, count: int, timeout: float = 5.0) -> list[dict[str, str]]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while sum(len(p) for p in self.pushes) < count and time.monotonic() < deadline:
                self.arrived.wait(deadline - time.monotonic())
            return [report for push in self.pushes for report in push]


@pytest.fixture
def callback() -> Iterator[CallbackServer]:
    server = CallbackServer()
    yield server
    server.server.shutdown()
    server.server.server_close()


def receipt_knobs(url: str, **fields: Any) -> Knobs:
    return Knobs(receipt_callback_url=url, receipt_delay_seconds=0.05, rate_limits={"SendMultiGlobalSms": 0}, **fields)


def test_receipts_reach_the_callback_in_tencent_format(callback: CallbackServer) -> None:
    app = make_app(receipt_knobs(callback.url))
    outcomes = client_for(app).send([sms(0), sms(1, to="+447400123456")])

    reports = callback.reports(2)
    assert all(isinstance(push, list) for push in callback.pushes)
    assert len(reports) == 2
    by_sid = {r["sid"]: r for r in reports}
    first = by_sid[outcomes[0].provider_message_id or ""]
    assert set(first) == {
        "user_receive_time",
        "nationcode",
        "mobile",
        "report_status",
        "errmsg",
        "description",
        "sid",
        "ext",
    }
    assert (first["nationcode"], first["mobile"]) == ("60", "198890000")
    assert (first["report_status"], first["errmsg"]) == ("SUCCESS", "DELIVRD")
    assert first["ext"] == "msg-0"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", first["user_receive_time"])
    second = by_sid[outcomes[1].provider_message_id or ""]
    assert (second["nationcode"], second["mobile"], second["ext"]) == ("44", "7400123456", "msg-1")


@pytest.mark.parametrize(
    ("outcome", "status"), [("UNDELIVERED", ("FAIL", "UNDELIV")), ("EXPIRED", ("FAIL", "EXPIRED"))]
)
def test_failed_receipts_use_tencent_status_values(
    callback: CallbackServer, outcome: str, status: tuple[str, str]
) -> None:
    client_for(make_app(receipt_knobs(callback.url, receipt_mix={outcome: 1.0}))).send([sms()])
    [report] = callback.reports(1)
    assert (report["report_status"], report["errmsg"]) == status


def test_duplicate_receipts_are_pushed_again(callback: CallbackServer) -> None:
    client_for(make_app(receipt_knobs(callback.url, receipt_duplicate_rate=1.0))).send([sms(0), sms(1)])
    reports = callback.reports(4)
    assert len(reports) == 4
    assert sorted(r["ext"] for r in reports) == ["msg-0", "msg-0", "msg-1", "msg-1"]


def test_refused_numbers_get_no_receipt(callback: CallbackServer) -> None:
    client_for(make_app(receipt_knobs(callback.url))).send([sms(0), sms(1, to="+60123456")])
    reports = callback.reports(1)
    time.sleep(0.2)  # let a wrong second report arrive if there were one
    assert [r["ext"] for r in callback.reports(1)] == ["msg-0"] == [r["ext"] for r in reports]


# --- a real socket: accepted, then no answer in time -----------------------------------------------------------------


def test_a_held_answer_is_a_read_timeout_with_the_send_recorded() -> None:
    app = make_app(Knobs(timeout_rate=1.0, timeout_seconds=1.0, rate_limits={"SendMultiGlobalSms": 0}))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        settings = TencentSettings.from_environment(
            ENV | {"GLOBESMS_TENCENT_ENDPOINT": url, "GLOBESMS_HTTP_READ_TIMEOUT": "0.2"}
        )
        with TencentSmsClient(settings) as client:
            [outcome] = client.send([sms()])
        assert outcome.error is not None
        assert (outcome.error.code, outcome.error.category) == ("READ_TIMEOUT", ErrorCategory.UNKNOWN_OUTCOME)
        assert stats(app)["sent"] == {"msg-0": 1}  # the provider did take it: a resend would duplicate
    finally:
        server.shutdown()
        server.server_close()


def test_main_serves_the_app_with_knobs_and_options() -> None:
    served: dict[str, Any] = {}

    class FakeServer:
        def serve_forever(self) -> None:
            served["serving"] = True

        def server_close(self) -> None:
            served["closed"] = True

    def fake_make_server(host: str, port: int, app: Any, threaded: bool) -> FakeServer:
        served.update(host=host, port=port, app=app, threaded=threaded)
        return FakeServer()

    with mock.patch.object(common, "make_server", fake_make_server):
        emulator.main(["--knobs", '{"latency_ms": 5}', "--options", '{"enforce_marketing_window": true}'])
    assert (served["host"], served["port"], served["threaded"]) == ("127.0.0.1", 9102, True)
    assert served["serving"] and served["closed"]
    options = served["app"].test_client().get("/_emulator/tencent/options").get_json()
    assert options["enforce_marketing_window"] is True
