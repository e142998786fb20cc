"""Huawei Cloud Message & SMS emulator: `POST /sms/batchSendDiffSms/v1` and status-report pushes.

It checks both authentication modes with its OWN implementation (deliberately not importing the client's signer,
so one misunderstanding of the scheme cannot pass both sides), answers in Huawei's real shapes and codes, and
pushes a call's status reports to the request's `statusCallback`, as Huawei does (locally that is `make run`'s
receipt URL), or to `knobs.receipt_callback_url` when the request had none: form-urlencoded one per request, or as
`{"statusReportList": [...]}` (up to 50) when started with `--receipt-format batch`. A test whose client sends a
`statusCallback` it must not reach sends none instead, and sets the knob.

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
from urllib.parse import quote, unquote

import phonenumbers
from flask import Flask, Request, Response, request
from pydantic import ValidationError

from globesms.providers.huawei.errors import (
    ALL_NUMBERS_FAILED_CODE,
    GATEWAY_THROTTLED_CODE,
    RESULT_CODES,
    SUCCESS_CODE,
)
from globesms.providers.huawei.wire import BatchSendDiffSmsBody, StatusReport
from local.emulators import common
from local.emulators.common import EmulatorState, Knobs, knobs_from_json, register_admin_routes
from local.settings import LOCAL_ENV_DEFAULTS

OPERATION = "batchSendDiffSms"
SEND_PATH = "/sms/batchSendDiffSms/v1"
MAX_BODY_BYTES = 64 * 1024
MAX_NUMBERS = 500
MAX_NUMBER_LENGTH = 21
WSSE_WINDOW = timedelta(hours=24)  # seed: nonce time vs. send time may differ by at most 24 hours
AKSK_WINDOW = timedelta(minutes=15)  # seed: X-Sdk-Date may differ by at most 15 minutes
RECEIPT_BATCH_SIZE = 50
ReceiptFormat = Literal["form", "batch"]

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
    known = RESULT_CODES.get(code)
    description = known.description if known else "Emulated failure."
    if code.startswith("APIG."):
        if code == GATEWAY_THROTTLED_CODE:
            description += ",limit:configured,time:1 second"
        payload = {"error_code": code, "error_msg": description, "request_id": uuid.uuid4().hex}
        return _json(payload, known.http_status if known else 429)
    status = known.http_status if known and known.http_status != 200 else 400
    return _json({"code": code, "description": description}, status)


def _is_number_status(code: str) -> bool:
    """Per-number statuses (E200xxx) come back inside `result`, not as the call's own answer."""
    known = RESULT_CODES.get(code)
    return known.http_status == 200 if known else code.startswith("E2")


def _country_id(number: str) -> str:
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
    numbers = [number for entry in body.sms_content for number in entry.to]
    if len(numbers) > MAX_NUMBERS or any(not 1 <= len(number) <= MAX_NUMBER_LENGTH for number in numbers):
        raise _Refused("E000503")
    if body.from_ not in (application.international_sender, application.mainland_sender):
        raise _Refused("E000503")  # not a channel number of this application
    if body.from_ == application.mainland_sender and any(not entry.signature for entry in body.sms_content):
        raise _Refused("E000503")  # a mainland channel sends under an approved signature
    return body


def _number_status(number: str, mainland_channel: bool, seen: set[str], injected: str | None) -> str:
    if injected is not None:
        return injected
    if number in seen:
        return "E200041"
    if number.startswith("+86") != mainland_channel:
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
        reports.append(report)
        if state.faults.duplicate_receipt():
            reports.append(report)
    wire = [report.model_dump(by_alias=True, exclude_none=True) for report in reports]

    def push_form(form: dict[str, str]) -> None:
        state.pusher.schedule(lambda client: state.pusher.post(client, url, data=form))

    def push_batch(items: list[dict[str, str]]) -> None:
        state.pusher.schedule(lambda client: state.pusher.post(client, url, json={"statusReportList": items}))

    if receipt_format == "batch":
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
            description = RESULT_CODES[ALL_NUMBERS_FAILED_CODE].description
            return _json({"code": ALL_NUMBERS_FAILED_CODE, "description": description, "result": results}, 400)
        return _json({"code": SUCCESS_CODE, "description": "Success", "result": results}, 200)

    register_admin_routes(app, state)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = common.emulator_arguments("huawei", "Huawei Cloud Message & SMS emulator")
    parser.add_argument("--receipt-format", choices=["form", "batch"], default="form")
    args = parser.parse_args(argv)
    app = create_app(knobs_from_json(args.knobs), dict(os.environ), receipt_format=args.receipt_format)
    common.serve(app, args, "huawei")


if __name__ == "__main__":
    main()
