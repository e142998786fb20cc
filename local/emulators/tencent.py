"""Tencent Cloud SMS emulator: API 3.0 `POST /` with `X-TC-Action: SendMultiGlobalSms` (version 2021-01-11).

It verifies TC3-HMAC-SHA256 with its OWN implementation, written from Tencent's "Signature v3" document (header
values lower-cased, any SignedHeaders list accepted) rather than importing the client's signer, so one
misunderstanding of the scheme cannot pass both sides. Every refusal is Tencent's real shape: HTTP 200 with
`{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`; per-number results go in `SendMultiStatusSet`.
Receipts are pushed to `knobs.receipt_callback_url` as Tencent's JSON array of status reports (up to 100 each).

Tencent-only behaviour the shared Knobs have no field for lives in `TencentOptions` (set with `--options` or at run
time through `POST /_emulator/tencent/options`): a template registry (parameter counts, marketing templates), the
marketing send window (08:00-22:00, off by default, judged in a configurable UTC offset) and registered sender ids.

Not emulated: a nonce replay check (TC3 has no nonce; replay is bounded by the 5-minute timestamp window).
The documented 10 calls/s is applied unless `rate_limits` names SendMultiGlobalSms (0 there turns it off).

Run: python -m local.emulators.tencent --port 9102 --knobs '{"rate_limits": {"SendMultiGlobalSms": 10}}'
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import phonenumbers
from flask import Flask, Request, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_pascal

from local.emulators import common
from local.emulators.common import EmulatorState, Knobs, knobs_from_json, register_admin_routes
from local.settings import LOCAL_ENV_DEFAULTS

OPERATION = "SendMultiGlobalSms"
# The status pulls (they return statuses only when the application's pull mode is on; here it always is).
PULL = "PullSmsSendStatus"
PULL_BY_PHONE_NUMBER = "PullSmsSendStatusByPhoneNumber"
ACTIONS = frozenset({OPERATION, PULL, PULL_BY_PHONE_NUMBER})
MAX_PULL_LIMIT = 100
VERSION = "2021-01-11"
SERVICE = "sms"
REGIONS = frozenset({"ap-singapore", "eu-frankfurt"})
DOCUMENTED_CALLS_PER_SECOND = 10
MAX_ITEMS = 200
MAX_BODY_BYTES = 10 * 1024 * 1024  # API 3.0 POST bodies signed with TC3 may be up to 10 MB
TIMESTAMP_TOLERANCE_SECONDS = 300
SESSION_CONTEXT_MAX_BYTES = 511
RECEIPTS_PER_PUSH = 100
MARKETING_HOURS = (8, 22)  # [08:00, 22:00)
#: Receipts' user_receive_time has no zone in the docs; Tencent's servers write China Standard Time.
RECEIPT_TIMEZONE = timezone(timedelta(hours=8))

_URL_IN_TEXT = re.compile(r"(https?://|www\.)\S+|\b[a-z0-9-]+\.(com|net|org|cn|io|ly|me)\b", re.IGNORECASE)
_SENDER_ID = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9]{1,11}|[0-9]{1,15}")
_AUTHORIZATION = re.compile(
    r"TC3-HMAC-SHA256 Credential=(?P<secret_id>[^/\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z0-9]+)/tc3_request,"
    r"\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)

# Codes Tencent reports per number in SendMultiStatusSet; any other code fails the whole call as Response.Error.
PER_NUMBER_CODES = frozenset(
    {
        "FailedOperation.ContainSensitiveWord",
        "FailedOperation.InsufficientBalanceInSmsPackage",
        "FailedOperation.MarketingSendTimeConstraint",
        "FailedOperation.PhoneNumberInBlacklist",
        "FailedOperation.SignatureIncorrectOrUnapproved",
        "FailedOperation.TemplateIncorrectOrUnapproved",
        "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
        "FailedOperation.TemplateUnapprovedOrNotExist",
        "InternalError.OtherError",
        "InternalError.SendAndRecvFail",
        "InternalError.Timeout",
        "InvalidParameterValue.ContentLengthLimit",
        "InvalidParameterValue.IncorrectPhoneNumber",
        "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
        "InvalidParameterValue.TemplateParameterFormatError",
        "InvalidParameterValue.TemplateParameterLengthLimit",
        "LimitExceeded.AppCountryOrRegionDailyLimit",
        "LimitExceeded.AppCountryOrRegionInBlacklist",
        "LimitExceeded.AppDailyLimit",
        "LimitExceeded.AppGlobalDailyLimit",
        "LimitExceeded.DailyLimit",
        "LimitExceeded.DeliveryFrequencyLimit",
        "LimitExceeded.PhoneNumberDailyLimit",
        "LimitExceeded.PhoneNumberOneHourLimit",
        "LimitExceeded.PhoneNumberSameContentDailyLimit",
        "LimitExceeded.PhoneNumberThirtySecondLimit",
    }
)

_MESSAGES: dict[str, str] = {
    "AuthFailure.InvalidAuthorization": "Authorization in the request header is invalid.",
    "AuthFailure.SecretIdNotFound": "The SecretId is not found, please ensure that your SecretId is correct.",
    "AuthFailure.SignatureExpire": "Signature expired. Timestamp and server time cannot differ by more than five "
    "minutes.",
    "AuthFailure.SignatureFailure": "The provided credentials could not be validated. Please check your signature "
    "is correct.",
    "FailedOperation.FailResolvePacket": "Failed to parse the request packet.",
    "FailedOperation.MarketingSendTimeConstraint": "marketing sms can only be sent between 8:00 and 22:00",
    "FailedOperation.TemplateParamSetNotMatchApprovedTemplate": "the number of template parameters does not match "
    "the approved template",
    "FailedOperation.TemplateUnapprovedOrNotExist": "template is not approved or does not exist",
    "InvalidParameterValue.IncorrectPhoneNumber": "incorrect phone number format",
    "InvalidParameterValue.MultiSmsInfoSetEmpty": "MultiSmsInfoSet is empty",
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter": "urls are not allowed in template parameters",
    "InvalidParameterValue.SdkAppIdNotExist": "SdkAppId does not exist",
    "LimitExceeded.PhoneNumberCountLimit": "the number of phone numbers in one request exceeds 200",
    "RequestSizeLimitExceeded": "The request body exceeds the size limit.",
    "UnauthorizedOperation.SmsSdkAppIdVerifyFail": "SmsSdkAppId verify failed",
    "UnsupportedOperation.ContainDomesticPhoneNumber": "the request contains Chinese mainland phone numbers",
}

# Our normalised receipt outcomes -> Tencent's report_status, errmsg and description.
_RECEIPT_STATUSES: dict[str, tuple[str, str, str]] = {
    "DELIVERED": ("SUCCESS", "DELIVRD", "The SMS message is successfully delivered"),
    "UNDELIVERED": ("FAIL", "UNDELIV", "The SMS message could not be delivered"),
    "EXPIRED": ("FAIL", "EXPIRED", "The SMS message expired before it could be delivered"),
}


class TencentRefusal(Exception):
    """A refusal of the whole call, answered as Response.Error."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message or _MESSAGES.get(code, code)


# --- Tencent-only options ---------------------------------------------------------------------------------------


@dataclass
class TemplateSpec:
    params: int  # the approved template's variable count
    marketing: bool = False
    text: str = ""  # the body with {1}, {2}... (only used to bill segments)


@dataclass
class TencentOptions:
    """`templates` None: any numeric id is an approved, non-marketing template with any parameters.
    `sender_ids` None: any well-formed sender id is registered."""

    templates: dict[str, TemplateSpec] | None = None
    sender_ids: set[str] | None = None
    enforce_marketing_window: bool = False
    marketing_utc_offset_minutes: int = 0  # the zone 08:00-22:00 is judged in (default UTC)

    def update(self, changes: Mapping[str, Any]) -> None:
        for key, value in changes.items():
            if key == "templates":
                self.templates = None if value is None else {k: TemplateSpec(**v) for k, v in value.items()}
            elif key == "sender_ids":
                self.sender_ids = None if value is None else set(value)
            elif key in ("enforce_marketing_window", "marketing_utc_offset_minutes"):
                setattr(self, key, value)
            else:
                raise ValueError(f"unknown option {key!r}")

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sender_ids"] = None if self.sender_ids is None else sorted(self.sender_ids)
        return data


def options_from_json(text: str | None) -> TencentOptions:
    options = TencentOptions()
    if text:
        options.update(json.loads(text))
    return options


# --- the request body, as Tencent parses it -----------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(alias_generator=to_pascal, extra="forbid", strict=True)


class MultiSmsInfo(_Strict):
    phone_number: str
    template_id: str
    template_param_set: list[str] = []
    sender_id: str = ""
    session_context: str = ""


class SendMultiGlobalSmsRequest(_Strict):
    sms_sdk_app_id: str
    multi_sms_info_set: list[MultiSmsInfo] = []


def _refusal_from(error: ValidationError) -> TencentRefusal:
    first = error.errors()[0]
    name = ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        return TencentRefusal("MissingParameter", f"The request is missing a required parameter `{name}`.")
    if first["type"] == "extra_forbidden":
        return TencentRefusal("UnknownParameter", f"The parameter `{name}` is not recognized.")
    return TencentRefusal("InvalidParameter", f"The value type of parameter `{name}` is not valid.")


# --- TC3 verification (independent of the client's signer) --------------------------------------------------------


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def expected_signature(req: Request, body: bytes, secret_key: str, date: str, service: str, signed: str) -> str:
    header_lines = "".join(f"{name}:{req.headers.get(name, '').strip().lower()}\n" for name in signed.split(";"))
    canonical = "\n".join(
        [
            req.method,
            req.path,
            req.query_string.decode("latin-1"),
            header_lines,
            signed,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            req.headers.get("X-TC-Timestamp", ""),
            scope,
            hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        ]
    )
    key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authenticate(req: Request, body: bytes, credentials: Mapping[str, str], now: float) -> None:
    """Raise TencentRefusal unless the request carries a valid, fresh TC3 signature of a known key."""
    match = _AUTHORIZATION.fullmatch(req.headers.get("Authorization", "").strip())
    if match is None:
        raise TencentRefusal("AuthFailure.InvalidAuthorization")
    signed = match["signed"]
    if not {"content-type", "host"} <= set(signed.split(";")):
        raise TencentRefusal("AuthFailure.InvalidAuthorization", "SignedHeaders must include content-type and host.")
    secret_key = credentials.get(match["secret_id"])
    if secret_key is None:
        raise TencentRefusal("AuthFailure.SecretIdNotFound")
    timestamp_text = req.headers.get("X-TC-Timestamp", "")
    if not timestamp_text.isdigit():
        raise TencentRefusal("MissingParameter", "The request is missing a required parameter `Timestamp`.")
    timestamp = int(timestamp_text)
    if abs(now - timestamp) > TIMESTAMP_TOLERANCE_SECONDS:
        raise TencentRefusal("AuthFailure.SignatureExpire")
    if match["date"] != datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d") or match["service"] != SERVICE:
        raise TencentRefusal("AuthFailure.SignatureFailure")
    expected = expected_signature(req, body, secret_key, match["date"], match["service"], signed)
    if not hmac.compare_digest(expected, match["signature"]):
        raise TencentRefusal("AuthFailure.SignatureFailure")


def check_common_headers(req: Request) -> None:
    action = req.headers.get("X-TC-Action", "")
    if action not in ACTIONS:
        raise TencentRefusal("InvalidAction", f"The action `{action}` is not supported by this emulator.")
    version = req.headers.get("X-TC-Version", "")
    if version != VERSION:
        raise TencentRefusal("NoSuchVersion", f"The requested version `{version}` of service `sms` is not found.")
    region = req.headers.get("X-TC-Region", "")
    if region not in REGIONS:
        raise TencentRefusal("UnsupportedRegion", f"The `Region` `{region}` is not supported by {OPERATION}.")


# --- the send ----------------------------------------------------------------------------------------------------


@dataclass
class Recipient:
    """One MultiSmsInfo after the checks: `code` is None when it is accepted for sending."""

    info: MultiSmsInfo
    number: phonenumbers.PhoneNumber | None
    code: str | None = None
    serial_no: str = field(default_factory=lambda: str(uuid.uuid4()))
    fee: int = 0


def parse_body(body: bytes, sdk_app_id: str) -> SendMultiGlobalSmsRequest:
    if len(body) > MAX_BODY_BYTES:
        raise TencentRefusal("RequestSizeLimitExceeded")
    try:
        payload = json.loads(body)
    except ValueError:
        raise TencentRefusal("FailedOperation.FailResolvePacket") from None
    if not isinstance(payload, dict):
        raise TencentRefusal("FailedOperation.FailResolvePacket")
    try:
        parsed = SendMultiGlobalSmsRequest.model_validate(payload)
    except ValidationError as exc:
        raise _refusal_from(exc) from None
    if parsed.sms_sdk_app_id != sdk_app_id:
        code = (
            "UnauthorizedOperation.SmsSdkAppIdVerifyFail"
            if parsed.sms_sdk_app_id.isdigit()
            else ("InvalidParameterValue.SdkAppIdNotExist")
        )
        raise TencentRefusal(code)
    if not parsed.multi_sms_info_set:
        raise TencentRefusal("InvalidParameterValue.MultiSmsInfoSetEmpty")
    if len(parsed.multi_sms_info_set) > MAX_ITEMS:
        raise TencentRefusal("LimitExceeded.PhoneNumberCountLimit")
    return parsed


def _parse_number(text: str) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    return number if text.startswith("+") and phonenumbers.is_valid_number(number) else None


def check_call(items: list[MultiSmsInfo], options: TencentOptions) -> list[Recipient]:
    """Whole-call rules first (they refuse everything), then the per-number ones."""
    recipients = [Recipient(item, _parse_number(item.phone_number)) for item in items]
    for index, recipient in enumerate(recipients):
        info = recipient.info
        if recipient.number is not None and recipient.number.country_code == 86:
            raise TencentRefusal("UnsupportedOperation.ContainDomesticPhoneNumber")
        if info.sender_id and not _SENDER_ID.fullmatch(info.sender_id):
            raise TencentRefusal(
                "InvalidParameterValue", f"The value of parameter `MultiSmsInfoSet.{index}.SenderId` is invalid."
            )
        if options.sender_ids is not None and info.sender_id and info.sender_id not in options.sender_ids:
            raise TencentRefusal(
                "InvalidParameterValue", f"The SenderId `{info.sender_id}` is not registered for this application."
            )
        if len(info.session_context.encode("utf-8")) > SESSION_CONTEXT_MAX_BYTES:
            raise TencentRefusal(
                "InvalidParameterValue", f"`MultiSmsInfoSet.{index}.SessionContext` must be shorter than 512 bytes."
            )
    return recipients


def judge_recipient(recipient: Recipient, options: TencentOptions, now: float) -> None:
    info = recipient.info
    template = _template(info.template_id, options)
    if recipient.number is None:
        recipient.code = "InvalidParameterValue.IncorrectPhoneNumber"
    elif template is None:
        recipient.code = "FailedOperation.TemplateUnapprovedOrNotExist"
    elif options.templates is not None and len(info.template_param_set) != template.params:
        recipient.code = "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"
    elif any(_URL_IN_TEXT.search(param) for param in info.template_param_set):
        recipient.code = "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter"
    elif template.marketing and options.enforce_marketing_window and not _in_marketing_window(now, options):
        recipient.code = "FailedOperation.MarketingSendTimeConstraint"
    else:
        recipient.fee = billed_segments(_rendered(template, info.template_param_set))


def _template(template_id: str, options: TencentOptions) -> TemplateSpec | None:
    if not template_id.isdigit():
        return None
    if options.templates is None:
        return TemplateSpec(params=-1)
    return options.templates.get(template_id)


def _in_marketing_window(now: float, options: TencentOptions) -> bool:
    local = datetime.fromtimestamp(now, timezone(timedelta(minutes=options.marketing_utc_offset_minutes)))
    start, end = MARKETING_HOURS
    return start <= local.hour < end


def _rendered(template: TemplateSpec, params: list[str]) -> str:
    if not template.text:
        return "[Globesms] " + " ".join(params)
    text = template.text
    for position, value in enumerate(params, start=1):
        text = text.replace(f"{{{position}}}", value)
    return text


def billed_segments(text: str) -> int:
    """160/153 characters per part for plain ASCII, 70/67 for anything else (UCS-2)."""
    single, multi = (160, 153) if text.isascii() else (70, 67)
    return 1 if len(text) <= single else math.ceil(len(text) / multi)


def status_entry(recipient: Recipient) -> dict[str, Any]:
    # Field order and values as in the SendMultiGlobalSms page's examples; a refused number still gets a SerialNo there.
    code = recipient.code or "Ok"
    return {
        "Code": code,
        "Fee": recipient.fee if recipient.code is None else 0,
        "IsoCode": phonenumbers.region_code_for_number(recipient.number) if recipient.number else "",
        "Message": "send success" if recipient.code is None else _MESSAGES.get(code, code),
        "PhoneNumber": recipient.info.phone_number,
        "SerialNo": recipient.serial_no,
        "SessionContext": recipient.info.session_context,
    }


def receipt_report(recipient: Recipient, outcome: str, received: datetime) -> dict[str, str]:
    assert recipient.number is not None  # only accepted recipients get receipts
    report_status, errmsg, description = _RECEIPT_STATUSES.get(outcome, _RECEIPT_STATUSES["UNDELIVERED"])
    report = {
        "user_receive_time": received.astimezone(RECEIPT_TIMEZONE).strftime("%Y-%m-%d %H:%M:%S"),
        "nationcode": str(recipient.number.country_code),
        "mobile": phonenumbers.national_significant_number(recipient.number),
        "report_status": report_status,
        "errmsg": errmsg,
        "description": description,
        "sid": recipient.serial_no,
    }
    if recipient.info.session_context:
        report["ext"] = recipient.info.session_context  # the SessionContext echo, when the application enables it
    return report


def _response(payload: dict[str, Any]) -> Response:
    payload["RequestId"] = str(uuid.uuid4())
    return Response(json.dumps({"Response": payload}), status=200, mimetype="application/json")


def _error_response(refusal: TencentRefusal) -> Response:
    return _response({"Error": {"Code": refusal.code, "Message": refusal.message}})


# --- the app -----------------------------------------------------------------------------------------------------


def create_app(
    knobs: Knobs | None = None,
    env: Mapping[str, str] | None = None,
    *,
    options: TencentOptions | None = None,
    clock: Callable[[], float] = time.time,
) -> Flask:
    state = EmulatorState(knobs or Knobs())
    # 0 in rate_limits means "no limit"; absent means the documented limit.
    state.knobs.rate_limits.setdefault(OPERATION, DOCUMENTED_CALLS_PER_SECOND)
    options = options or TencentOptions()
    settings = {**LOCAL_ENV_DEFAULTS, **(env or {})}
    credentials = {settings["GLOBESMS_TENCENT_SECRET_ID"]: settings["GLOBESMS_TENCENT_SECRET_KEY"]}
    sdk_app_id = settings["GLOBESMS_TENCENT_SDK_APP_ID"]
    options_lock = threading.Lock()

    app = Flask("tencent-emulator")
    register_admin_routes(app, state)
    common.register_reply_route(app, state, _reply_callback)

    @app.get("/_emulator/tencent/options")
    def get_options() -> Any:
        return jsonify(options.as_json())

    @app.post("/_emulator/tencent/options")
    def set_options() -> Any:
        try:
            with options_lock:
                options.update(request.get_json(force=True) or {})
        except (TypeError, ValueError) as exc:
            return jsonify({"error": str(exc)}), 400
        return jsonify(options.as_json())

    @app.post("/")
    def api() -> Response:
        state.faults.delay()
        body = request.get_data(cache=False)
        try:
            check_common_headers(request)
            try:
                authenticate(request, body, credentials, clock())
            except TencentRefusal:
                state.ledger.record_rejected_signature()
                raise
            action = request.headers.get("X-TC-Action", "")
            if action != OPERATION:
                return pull_answer(state, action, body, sdk_app_id)
            if not state.gate.admit(OPERATION):
                limit = state.knobs.rate_limits.get(OPERATION, 0)
                raise TencentRefusal(
                    "RequestLimitExceeded",
                    f"Your current request times exceeds the frequency limit `{limit:g}` for a second. "
                    "Please reduce the frequency of calls.",
                )
            injected = state.faults.injected_error()
            bare = common.bare_status(injected)
            if bare is not None and bare in common.BARE_STATUSES_BEFORE:
                return common.bare_response(bare)
            if bare is not None:
                injected = None  # processed as usual; only the answer is replaced
            if injected is not None and injected not in PER_NUMBER_CODES:
                raise TencentRefusal(injected)
            parsed = parse_body(body, sdk_app_id)
            recipients = check_call(parsed.multi_sms_info_set, options)
        except TencentRefusal as refusal:
            return _error_response(refusal)
        now = clock()
        for recipient in recipients:
            if injected is not None:
                recipient.code = injected  # a per-number code injected for the call: every number gets it
            else:
                judge_recipient(recipient, options, now)
        accepted = [r for r in recipients if r.code is None]
        for recipient in accepted:
            state.ledger.record_sent(recipient.info.session_context or recipient.info.phone_number, OPERATION)
        schedule_receipts(state, accepted)
        state.faults.hold_after_accept()
        if bare is not None:
            return common.bare_response(bare)  # sent, but the answer is lost
        return _response({"SendMultiStatusSet": [status_entry(r) for r in recipients]})

    return app


def schedule_receipts(state: EmulatorState, accepted: list[Recipient]) -> None:
    url = state.knobs.receipt_callback_url
    if not accepted:
        return
    received = datetime.now(UTC) + timedelta(seconds=state.knobs.receipt_delay_seconds)
    reports = []
    for recipient in accepted:
        report = receipt_report(recipient, state.faults.receipt_outcome(), received)
        if state.knobs.undelivered_code and report["report_status"] == "FAIL" and report["errmsg"] == "UNDELIV":
            report["errmsg"] = report["sub_error"] = state.knobs.undelivered_code
        withheld = state.faults.withhold_receipt()
        pulled = pulled_status(recipient, report, received)
        # Pulls find statuses by number (ByPhoneNumber) and in the order they came (PullSmsSendStatus).
        state.remember_status(f"{recipient.info.phone_number}#{recipient.serial_no}", pulled, withheld=withheld)
        if not withheld:
            reports.append(report)
    if not url or not reports:
        return
    duplicates = [report for report in reports if state.faults.duplicate_receipt()]
    for batch, delay in ((reports, None), (duplicates, state.knobs.receipt_delay_seconds * 2)):
        for start in range(0, len(batch), RECEIPTS_PER_PUSH):
            chunk = batch[start : start + RECEIPTS_PER_PUSH]
            state.pusher.schedule(_push(state, url, chunk), delay)


def pulled_status(recipient: Recipient, report: dict[str, str], received: datetime) -> dict[str, Any]:
    """A status as the pulls return it (PullSmsSendStatus structure), from the same outcome as the push."""
    status: dict[str, Any] = {
        "UserReceiveTime": int(received.timestamp()),
        "CountryCode": report["nationcode"],
        "SubscriberNumber": report["mobile"],
        "PhoneNumber": recipient.info.phone_number,
        "SerialNo": recipient.serial_no,
        "ReportStatus": report["report_status"],
        "Description": report["description"],
        "SessionContext": recipient.info.session_context or "",
    }
    if "sub_error" in report:  # from 2026-12-01: Tencent's finer error code
        status["SubError"] = report["sub_error"]
        status["SubErrorDesc"] = report["description"]
    return status


def pull_answer(state: EmulatorState, action: str, body: bytes, sdk_app_id: str) -> Response:
    """PullSmsSendStatus / PullSmsSendStatusByPhoneNumber. Statuses of withheld receipts are left out when the knob
    `status_query_answers` is "pending" (as with the application's pull mode off)."""
    try:
        fields = json.loads(body)
    except ValueError:
        return _error_response(TencentRefusal("InvalidParameter", "The body is not JSON."))
    if not isinstance(fields, dict) or fields.get("SmsSdkAppId") != sdk_app_id:
        return _error_response(TencentRefusal("InvalidParameterValue.SdkAppIdNotExist", "Unknown SmsSdkAppId."))
    limit = fields.get("Limit")
    if not isinstance(limit, int) or not 0 < limit <= MAX_PULL_LIMIT:
        return _error_response(TencentRefusal("InvalidParameterValue", "Limit must be 1-100."))
    if not state.gate.admit(action):
        return _error_response(TencentRefusal("RequestLimitExceeded", "Too many pulls in this second."))
    with state.statuses_lock:
        entries = list(state.statuses.items())
    visible = [
        (k, v) for k, (v, withheld) in entries if not (withheld and state.knobs.status_query_answers == "pending")
    ]
    if action == PULL_BY_PHONE_NUMBER:
        number, begin, end = fields.get("PhoneNumber"), fields.get("BeginTime", 0), fields.get("EndTime", 2**62)
        chosen = [v for k, v in visible if k.startswith(f"{number}#") and begin <= v["UserReceiveTime"] <= end]
        offset = fields.get("Offset", 0) if isinstance(fields.get("Offset", 0), int) else 0
        statuses = chosen[offset : offset + limit]
    else:  # each status is pulled once
        statuses = [v for _, v in visible if not v.get("_pulled")][:limit]
        for status in statuses:
            status["_pulled"] = True
    return _response({"PullSmsSendStatusSet": [{k: v for k, v in s.items() if k != "_pulled"} for s in statuses]})


def _push(state: EmulatorState, url: str, reports: list[dict[str, str]]) -> Callable[[httpx.Client], None]:
    def push(client: httpx.Client) -> None:
        state.pusher.post(client, url, json=reports)

    return push


def main(argv: list[str] | None = None) -> None:
    parser = common.emulator_arguments("tencent", "Tencent Cloud SMS (SendMultiGlobalSms) emulator")
    parser.add_argument("--options", default=None, help="JSON object of TencentOptions fields")
    args = parser.parse_args(argv)
    app = create_app(knobs_from_json(args.knobs), dict(os.environ), options=options_from_json(args.options))
    common.serve(app, args, "tencent")


def _reply_callback(sender: str, text: str, to: str) -> tuple[bytes, str]:
    """A reply as Tencent's "SMS reply" callback carries it: one JSON object, the country code apart from the
    national number, the time in Unix seconds."""
    number = phonenumbers.parse(sender, None)
    item = {
        "extend": to,
        "mobile": str(number.national_number),
        "nationcode": str(number.country_code),
        "sign": "Acme",
        "text": text,
        "time": int(time.time()),
    }
    return json.dumps(item, ensure_ascii=False).encode(), "application/json"


if __name__ == "__main__":
    main()
