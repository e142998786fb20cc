"""Huawei Cloud Message & SMS emulator: `POST /sms/batchSendDiffSms/v1` and status-report pushes.

It checks both authentication modes with its OWN implementation (deliberately not importing the client's signer,
so one misunderstanding of the scheme cannot pass both sides), answers in Huawei's real shapes and codes, and
pushes a call's status reports as Huawei's pages say: to the request's `statusCallback`, form-urlencoded, one report
per request ("Status Report Receiving API"); a request without one, to the address configured on the application
(`knobs.receipt_callback_url`), as `{"statusReportList": [...]}` of up to 50 when started with `--receipt-format
batch` ("Batch Status Reports Receiving API": that address is the batch one), one form report per request with
`--receipt-format form` (a local convenience: Huawei has no such application address). A test whose client sends a
`statusCallback` it must not reach sends none instead, and sets the knob.

The request rules, result codes and report fields are this module's own, written from Huawei's public page "Batch
SMS Sending API" (Message & SMS, `POST /sms/batchSendDiffSms/v1`, https://support.huaweicloud.com/intl/en-us/api-msgsms/)
and its "Status Report Receiving API", not imported from the client: a rule the client gets wrong then shows up as a
refusal in the emulator tests (tests/integration/emulators/test_emulators_are_independent.py keeps it that way).

Not emulated: a nonce replay check (Huawei documents no such check and no error code for it).

Run: python -m local.emulators.huawei --port 9103 --knobs '{"rate_limits": {"batchSendDiffSms": 10}}'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, unquote, urlencode

import phonenumbers
from flask import Flask, Request, Response, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from local.emulators import common
from local.emulators.common import EmulatorState, Knobs, knobs_from_json, register_admin_routes
from local.settings import LOCAL_ENV_DEFAULTS

OPERATION = "batchSendDiffSms"
SEND_PATH = "/sms/batchSendDiffSms/v1"
MAX_BODY_BYTES = 64 * 1024
MAX_NUMBERS = 500
MAX_NUMBER_LENGTH = 21
WSSE_WINDOW = timedelta(hours=24)  # the page: nonce time vs. send time may differ by at most 24 hours
AKSK_WINDOW = timedelta(minutes=15)  # the page: X-Sdk-Date may differ by at most 15 minutes
RECEIPT_BATCH_SIZE = 50
#: Table 5, `to`: "+{Country code}{Area code}{Terminal number}"; abroad "all recipient numbers must be in the
#: standard format", while a mainland number without "+{Country code}" gets +86.
_STANDARD_NUMBER = re.compile(r"\+[0-9]+")
_MAINLAND_CHANNEL_NUMBER = re.compile(r"\+?[0-9]+")
ReceiptFormat = Literal["form", "batch"]

SUCCESS_CODE = "000000"
ALL_NUMBERS_FAILED_CODE = "E000510"  # "The SMS fails to be sent. For details, see Status."
#: Huawei Cloud's API gateway (in front of the SMS service) answers flow control with HTTP 429 and its own body,
#: `{"error_code": "APIG.0308", "error_msg": "The throttling threshold has been reached: ...", "request_id"}` (API
#: Gateway "Error Codes" page); the SMS page names no rate-limit code of its own.
GATEWAY_THROTTLED_CODE = "APIG.0308"

#: The SMS page's "Result Codes" table (Table 8): code -> (HTTP status, message), in Huawei's words.
CALL_RESULT_CODES: dict[str, tuple[int, str]] = {
    "E000000": (400, "System error."),
    "E000001": (400, "Authorization not contained in the HTTP header."),
    "E000002": (400, "realm not contained in Authorization."),
    "E000003": (400, "profile not contained in Authorization."),
    "E000004": (400, "The value of realm in Authorization must be SDP."),
    "E000005": (400, "The value of profile in Authorization must be UsernameToken."),
    "E000006": (400, "The value of type in Authorization must be app_key."),
    "E000007": (400, "type not contained in Authorization."),
    "E000008": (400, "WSSE not contained in Authorization."),
    "E000020": (400, "X-WSSE not contained in the HTTP header."),
    "E000021": (400, "UserName not contained in X-WSSE."),
    "E000022": (400, "Nonce not contained in X-WSSE."),
    "E000023": (400, "Created not contained in X-WSSE."),
    "E000024": (400, "PasswordDigest not contained in X-WSSE."),
    "E000025": (400, "The format of Created is incorrect."),
    "E000026": (400, "UsernameToken not contained in X-WSSE."),
    "E000027": (400, "Invalid request."),
    "E000041": (400, "X-Sdk-Date header is empty."),
    "E000042": (400, "The format of X-Sdk-Date header is invalid."),
    "E000043": (400, "The format of Authorization header is incorrect."),
    "E000044": (400, "X-Sdk-Date is expired."),
    "E000045": (400, "Authorization verify failed."),
    "E000503": (400, "The parameter format is incorrect."),
    ALL_NUMBERS_FAILED_CODE: (400, "The SMS fails to be sent. For details, see Status."),
    "E000101": (401, "Authentication failed."),
    "E000102": (401, "Invalid app_key."),
    "E000103": (401, "The status of the app_key is unavailable."),
    "E000104": (401, "Invalid app_secret."),
    "E000105": (401, "Invalid digest."),
    "E000106": (401, "The app_key is not allowed to invoke this API."),
    "E000109": (401, "The user status is deactivated."),
    "E000110": (401, "Time out limit."),
    "E000111": (401, "Incorrect username or password."),
    "E000112": (401, "The subscriber status is frozen."),
    "E000620": (403, "The app client ip is not in ip white list."),
    "E000623": (403, "Number of SMSs sent by the SP reached the limit."),
    "E000630": (403, "Number of SMSs sent by the SP reached the country/region limit."),
    GATEWAY_THROTTLED_CODE: (429, "The throttling threshold has been reached: policy user over ratelimit"),
}

#: The per-number `status` values the page lists (Table 7, SmsID.status): they come back inside `result`.
NUMBER_STATUSES: dict[str, str] = {
    "E200015": "Too many SMSs are waiting to be sent.",
    "E200028": "Failed to verify the template.",
    "E200029": "Failed to verify the template type.",
    "E200030": "The template is not activated.",
    "E200031": "Failed to verify the protocol.",
    "E200033": "The template type is incorrect.",
    "E200041": "The recipient numbers of the same SMS are duplicate.",
}


# ------------------------------------------------------------------------------------------------ request shape


class _Wire(BaseModel):
    # Unknown fields are refused: a misspelt field name ("templateParams") would be silently ignored by a lenient
    # server, and a test should see it.
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")


class SmsContent(_Wire):
    """Table 5, SmsContent."""

    to: list[str] = Field(min_length=1)
    template_id: str = Field(alias="templateId", min_length=1, max_length=32)
    template_paras: list[str] | None = Field(default=None, alias="templateParas")  # "JSONArray format"
    signature: str | None = Field(default=None, max_length=32)  # "0 to 32 characters", mainland only


class BatchSendDiffSmsBody(_Wire):
    """Table 4, the request body."""

    from_: str = Field(alias="from", min_length=1, max_length=21)
    status_callback: str | None = Field(default=None, alias="statusCallback", min_length=1, max_length=1024)
    # "String (1 to 128 characters) ... Spaces and braces {} are not allowed." (any whitespace is refused here)
    extend: str | None = Field(default=None, pattern=r"^[^\s{}]{1,128}$")
    sms_content: list[SmsContent] = Field(alias="smsContent", min_length=1)


class StatusReport(BaseModel):
    """One status report as the "Status Report Receiving API" page lists its fields; every value a string."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    sms_msg_id: str = Field(alias="smsMsgId")
    total: str
    sequence: str  # which part of a long message
    status: str
    status_desc: str = Field(alias="statusDesc")
    source: str  # "1" the SMS platform, "2" the carrier's SMSC
    update_time: str = Field(alias="updateTime")  # UTC, yyyy-MM-dd'T'HH:mm:ss'Z'
    extend: str | None = None
    to: str | None = None  # sent together with `extend`
    org_code: str | None = Field(default=None, alias="orgCode")  # appears in the page's samples


# Our normalised receipt outcomes -> Huawei's status value, description and source ("2": the carrier's SMSC).
_RECEIPT_STATUSES: dict[str, tuple[str, str, str]] = {
    "DELIVERED": ("DELIVRD", "The user has received the SMS.", "2"),
    "UNDELIVERED": ("UNDELIV", "The SMS failed to be delivered to the user.", "2"),
    "EXPIRED": ("EXPIRED", "The SMS expired before it could be delivered.", "2"),
    "REJECTED": ("REJECTD", "The SMS was rejected by the SMS center.", "1"),
}


@dataclass(frozen=True)
class _Application:
    """What the emulated SMS application accepts: its credentials and channel numbers."""

    app_key: str
    app_secret: str
    international_sender: str
    mainland_sender: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> _Application:
        return cls(
            app_key=env["GLOBESMS_HUAWEI_APP_KEY"],
            app_secret=env["GLOBESMS_HUAWEI_APP_SECRET"],
            international_sender=env["GLOBESMS_HUAWEI_SENDER"],
            mainland_sender=env.get("GLOBESMS_HUAWEI_MAINLAND_SENDER") or None,
        )


class _Refused(Exception):
    """The call is answered with a Huawei result code instead of being processed."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# --------------------------------------------------------------------------------------------- authentication


_QUOTED_ATTRIBUTE = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
_AKSK_AUTHORIZATION = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=([^,\s]+),\s*SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})$"
)


def _attributes(text: str) -> dict[str, str]:
    return {match.group(1): match.group(2) for match in _QUOTED_ATTRIBUTE.finditer(text)}


def _verify_wsse(req: Request, authorization: str, application: _Application, now: datetime) -> None:
    scheme = _attributes(authorization)
    for name, missing, expected, wrong in (
        ("realm", "E000002", "SDP", "E000004"),
        ("profile", "E000003", "UsernameToken", "E000005"),
        ("type", "E000007", "Appkey", "E000006"),
    ):
        if name not in scheme:
            raise _Refused(missing)
        if scheme[name] != expected:
            raise _Refused(wrong)
    token = req.headers.get("X-WSSE")
    if token is None:
        raise _Refused("E000020")
    if not token.strip().startswith("UsernameToken"):
        raise _Refused("E000026")
    fields = _attributes(token)
    for name, missing in (("Username", "E000021"), ("Nonce", "E000022"), ("Created", "E000023")):
        if not fields.get(name):
            raise _Refused(missing)
    if not fields.get("PasswordDigest"):
        raise _Refused("E000024")
    try:
        created = datetime.strptime(fields["Created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise _Refused("E000025") from None
    if fields["Username"] != application.app_key:
        raise _Refused("E000102")
    if abs(now - created) > WSSE_WINDOW:
        raise _Refused("E000110")
    material = (fields["Nonce"] + fields["Created"] + application.app_secret).encode("utf-8")
    expected_digest = base64.b64encode(hashlib.sha256(material).hexdigest().encode("ascii")).decode("ascii")
    if not hmac.compare_digest(expected_digest, fields["PasswordDigest"]):
        raise _Refused("E000105")


def _percent(text: str) -> str:
    return quote(text, safe="-_.~")


def _gateway_canonical_request(req: Request, signed_names: list[str], body: bytes) -> str:
    """The API gateway's canonical request, rebuilt from what actually arrived."""
    path = "/".join(_percent(part) for part in req.path.split("/"))
    if not path.endswith("/"):
        path += "/"
    pairs = []
    for item in req.query_string.decode("ascii").split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((unquote(name), unquote(value)))
    query = "&".join(f"{_percent(name)}={_percent(value)}" for name, value in sorted(pairs))
    header_lines = []
    for name in signed_names:
        header_value = req.headers.get(name)
        if header_value is None:
            raise _Refused("E000045")
        header_lines.append(f"{name}:{header_value.strip()}\n")
    return "\n".join(
        [req.method, path, query, "".join(header_lines), ";".join(signed_names), hashlib.sha256(body).hexdigest()]
    )


def _verify_aksk(req: Request, authorization: str, application: _Application, now: datetime) -> None:
    sdk_date = req.headers.get("X-Sdk-Date", "")
    if not sdk_date:
        raise _Refused("E000041")
    try:
        signed_at = datetime.strptime(sdk_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise _Refused("E000042") from None
    match = _AKSK_AUTHORIZATION.match(authorization.strip())
    if match is None:
        raise _Refused("E000043")
    access, signed_headers, presented = match.groups()
    signed_names = signed_headers.split(";")
    if "host" not in signed_names or "x-sdk-date" not in signed_names or signed_names != sorted(signed_names):
        raise _Refused("E000043")
    if abs(now - signed_at) > AKSK_WINDOW:
        raise _Refused("E000044")
    if access != application.app_key:
        raise _Refused("E000102")
    canonical = _gateway_canonical_request(req, signed_names, req.get_data())
    to_sign = "\n".join(["SDK-HMAC-SHA256", sdk_date, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    expected = hmac.new(application.app_secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, presented):
        raise _Refused("E000045")


def _authenticate(req: Request, application: _Application) -> None:
    authorization = req.headers.get("Authorization")
    if not authorization:
        raise _Refused("E000001")
    now = datetime.now(UTC)
    if authorization.startswith("SDK-HMAC-SHA256"):
        _verify_aksk(req, authorization, application, now)
    elif authorization.startswith("WSSE"):
        _verify_wsse(req, authorization, application, now)
    else:
        raise _Refused("E000008")


# ------------------------------------------------------------------------------------------------------ answers


def _json(payload: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json;charset=UTF-8")


def _refusal(code: str) -> Response:
    status, description = CALL_RESULT_CODES.get(code, (0, "Emulated failure."))
    if code.startswith("APIG."):
        if code == GATEWAY_THROTTLED_CODE:
            description += ",limit:configured,time:1 second"
        payload = {"error_code": code, "error_msg": description, "request_id": uuid.uuid4().hex}
        return _json(payload, status or 429)
    return _json({"code": code, "description": description}, status or 400)


def _is_number_status(code: str) -> bool:
    """Per-number statuses (E200xxx) come back inside `result`, not as the call's own answer."""
    return code in NUMBER_STATUSES or (code not in CALL_RESULT_CODES and code.startswith("E2"))


def _country_id(number: str) -> str:
    if _is_mainland(number):
        return "CN"
    digits = number.lstrip("+")
    for length in (1, 2, 3):
        region = phonenumbers.region_code_for_country_code(int(digits[:length] or 0))
        if region != "ZZ":
            return str(region)
    return "ZZ"


def _utc_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _validated_body(raw: bytes, application: _Application) -> BatchSendDiffSmsBody:
    if len(raw) > MAX_BODY_BYTES:
        raise _Refused("E000503")
    try:
        body = BatchSendDiffSmsBody.model_validate_json(raw)
    except ValidationError:
        raise _Refused("E000503") from None
    if body.from_ not in (application.international_sender, application.mainland_sender):
        raise _Refused("E000503")  # not a channel number of this application
    mainland_channel = body.from_ == application.mainland_sender
    numbers = [number for entry in body.sms_content for number in entry.to]
    # "a maximum of 500 numbers ... If there are more than 500 numbers, the SMS fails to be sent to any of them."
    if len(numbers) > MAX_NUMBERS:
        raise _Refused("E000503")
    number_format = _MAINLAND_CHANNEL_NUMBER if mainland_channel else _STANDARD_NUMBER
    if any(len(number) > MAX_NUMBER_LENGTH or not number_format.fullmatch(number) for number in numbers):
        raise _Refused("E000503")
    if mainland_channel and any(not entry.signature for entry in body.sms_content):
        raise _Refused("E000503")  # a mainland channel sends under an approved signature
    return body


def _is_mainland(number: str) -> bool:
    # Without "+{Country code}" a mainland channel's number is +86 (Table 5); calling codes are prefix-free, so
    # "+86" is the mainland and nothing else (+852, +853 and +886 differ in their second digit).
    return number.startswith("+86") or not number.startswith("+")


def _number_status(number: str, mainland_channel: bool, seen: set[str], injected: str | None) -> str:
    if injected is not None:
        return injected
    if number in seen:
        return "E200041"
    if _is_mainland(number) != mainland_channel:
        # +86 on the international channel, or a foreign number on a mainland channel: the channel's
        # template type does not fit the destination.
        return "E200029"
    return SUCCESS_CODE


def _results(body: BatchSendDiffSmsBody, mainland_channel: bool, injected: str | None) -> list[dict[str, Any]]:
    batch_id = uuid.uuid4()
    created = _utc_text(datetime.now(UTC))
    seen: set[str] = set()
    results = []
    for sequence, number in enumerate(number for entry in body.sms_content for number in entry.to):
        results.append(
            {
                "originTo": number,
                "createTime": created,
                "from": body.from_,
                "smsMsgId": f"{batch_id}_{sequence}",
                "status": _number_status(number, mainland_channel, seen, injected),
                "countryId": _country_id(number),
                "total": 1,
            }
        )
        seen.add(number)
    return results


# -------------------------------------------------------------------------------------------------------- receipts


def _status_report(result: dict[str, Any], extend: str | None, outcome: str) -> StatusReport:
    status, description, source = _RECEIPT_STATUSES.get(outcome, _RECEIPT_STATUSES["UNDELIVERED"])
    return StatusReport(
        sms_msg_id=result["smsMsgId"],
        total=str(result["total"]),
        sequence="1",
        status=status,
        status_desc=description,
        source=source,
        update_time=_utc_text(datetime.now(UTC)),
        extend=extend,
        to=result["originTo"] if extend else None,  # Huawei sends `to` together with `extend`
        org_code=status,
    )


def _schedule_receipts(
    state: EmulatorState,
    accepted: list[dict[str, Any]],
    extend: str | None,
    receipt_format: ReceiptFormat,
    status_callback: str | None = None,
) -> None:
    url = status_callback or state.knobs.receipt_callback_url
    if not url:
        return
    reports = []
    for result in accepted:
        report = _status_report(result, extend, state.faults.receipt_outcome())
        if state.knobs.undelivered_code and report.status == "UNDELIV":
            report = report.model_copy(update={"org_code": state.knobs.undelivered_code})
        if state.faults.withhold_receipt():  # Huawei has no status query: a withheld receipt is simply never heard
            continue
        reports.append(report)
        if state.faults.duplicate_receipt():
            reports.append(report)
    wire = [report.model_dump(by_alias=True, exclude_none=True) for report in reports]

    def push_form(form: dict[str, str]) -> None:
        state.pusher.schedule(lambda client: state.pusher.post(client, url, data=form))

    def push_batch(items: list[dict[str, str]]) -> None:
        state.pusher.schedule(lambda client: state.pusher.post(client, url, json={"statusReportList": items}))

    if receipt_format == "batch" and not status_callback:  # a statusCallback always gets one report per request
        for start in range(0, len(wire), RECEIPT_BATCH_SIZE):
            push_batch(wire[start : start + RECEIPT_BATCH_SIZE])
    else:
        for form in wire:
            push_form(form)


# ------------------------------------------------------------------------------------------------------------ app


def create_app(
    knobs: Knobs | None = None, env: Mapping[str, str] | None = None, *, receipt_format: ReceiptFormat = "form"
) -> Flask:
    state = EmulatorState(knobs or Knobs())
    application = _Application.from_env({**LOCAL_ENV_DEFAULTS, **(env or {})})
    app = Flask("globesms-huawei-emulator")
    app.extensions["globesms_emulator_state"] = state

    @app.post(SEND_PATH)
    def batch_send_diff_sms() -> Response:
        state.faults.delay()
        try:
            _authenticate(request, application)
        except _Refused as refused:
            state.ledger.record_rejected_signature()
            return _refusal(refused.code)
        if not state.gate.admit(OPERATION):
            return _refusal(GATEWAY_THROTTLED_CODE)
        try:
            body = _validated_body(request.get_data(), application)
        except _Refused as refused:
            return _refusal(refused.code)
        injected = state.faults.injected_error()
        bare = common.bare_status(injected)
        if bare is not None and bare in common.BARE_STATUSES_BEFORE:
            return common.bare_response(bare)
        if bare is not None:
            injected = None  # processed as usual; only the answer is replaced
        if injected is not None and not _is_number_status(injected):
            return _refusal(injected)
        results = _results(body, body.from_ == application.mainland_sender, injected)
        accepted = [result for result in results if result["status"] == SUCCESS_CODE]
        for result in accepted:
            key = f"{body.extend}/{result['originTo']}" if body.extend else result["originTo"]
            state.ledger.record_sent(key, OPERATION)
        state.faults.hold_after_accept()
        _schedule_receipts(state, accepted, body.extend, receipt_format, body.status_callback)
        if bare is not None:
            return common.bare_response(bare)  # sent, but the answer is lost
        if not accepted:
            description = CALL_RESULT_CODES[ALL_NUMBERS_FAILED_CODE][1]
            return _json({"code": ALL_NUMBERS_FAILED_CODE, "description": description, "result": results}, 400)
        return _json({"code": SUCCESS_CODE, "description": "Success", "result": results}, 200)

    register_admin_routes(app, state)
    common.register_reply_route(app, state, _uplink_push)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = common.emulator_arguments("huawei", "Huawei Cloud Message & SMS emulator")
    parser.add_argument("--receipt-format", choices=["form", "batch"], default="form")
    args = parser.parse_args(argv)
    app = create_app(knobs_from_json(args.knobs), dict(os.environ), receipt_format=args.receipt_format)
    common.serve(app, args, "huawei")


def _uplink_push(sender: str, text: str, to: str) -> tuple[bytes, str]:
    """A reply (上行短信) as Huawei pushes it to a mainland application's reply URL: a form of smsMsgId, from, to,
    body, createTime (UTC)."""
    form = {
        "smsMsgId": f"{uuid.uuid4()}_0",
        "from": sender,
        "to": to or "10690000",
        "body": text,
        "createTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return urlencode(form).encode(), "application/x-www-form-urlencoded"


if __name__ == "__main__":
    main()
