"""Alibaba Cloud SMS emulator: SendMessageToGlobe and BatchSendMessageToGlobe (dysmsapi 2018-05-01).

It checks the ACS3-HMAC-SHA256 signature with its own implementation (stdlib `quote` and `hmac`, not the client's
signer, so a signing bug cannot pass on both sides), the time stamp window and nonce reuse, then the rate gate,
injected faults, the documented field rules and caps, and answers in Alibaba's shapes:

- gateway errors: HTTP 4xx/5xx `{"RequestId","HostId","Code","Message","Recommend"}` (flow control is HTTP 400
  `Throttling.User`, as Alibaba's gateway answers it);
- business results: HTTP 200 with `ResponseCode` (`OK` or e.g. `MOBILE_NUMBER_ILLEGAL`); the batch answer carries
  `SuccessCount`, `MessageIdList` and `FailedList` as JSON-array *strings*.

Parameters are read from the query string and from an `application/x-www-form-urlencoded` body (the body is
covered by x-acs-content-sha256), like the real RPC gateway. Accepted sends are recorded in the ledger under the
echo field: `TaskId` for a single send, `<TaskId>/<number>` for each number of a batch call (one TaskId covers the
whole call), the number when there is no TaskId. Receipts are pushed as JSON arrays (up to 100 reports each) in
Alibaba's global receipt format (`To`, `Status`, `MessageId`, `TaskId`, `SmsSize`, `SendDate`, ...).

The field rules and caps below are this module's own, written from Alibaba's public API pages ("Short Message
Service: SendMessageToGlobe" and "BatchSendMessageToGlobe", https://www.alibabacloud.com/help/en/sms/), not
imported from the client: a rule the client gets wrong then shows up as a refusal in the emulator tests (the
import test in tests/integration/emulators/test_emulators_are_independent.py keeps it that way).

Run: `python -m local.emulators.aliyun --port 9101 --knobs '{"rate_limits": {"BatchSendMessageToGlobe": 1}}'`.
The documented rates are in `DOCUMENTED_RATE_LIMITS`; like every emulator it applies only the limits given in knobs.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import os
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx
import phonenumbers
from flask import Flask, Response, request

from local.emulators import common
from local.emulators.common import EmulatorState, Knobs, knobs_from_json, register_admin_routes
from local.settings import LOCAL_ENV_DEFAULTS

STATE_KEY = "globesms_emulator"  # app.extensions[STATE_KEY] is the EmulatorState

API_VERSION = "2018-05-01"
SEND_ONE = "SendMessageToGlobe"
SEND_BATCH = "BatchSendMessageToGlobe"
QUERY_MESSAGE = "QueryMessage"  # one MessageId per call, 300 calls/s per account (its API page)
# SendMessageToGlobe: the newer page (Dec 2025) says 2,000 calls/s per account (the older one 30, a Chinese page
# 1,000); we follow the newest. BatchSendMessageToGlobe: "only once per second".
DOCUMENTED_RATE_LIMITS = {SEND_ONE: 2000.0, SEND_BATCH: 1.0}
MAX_BATCH_NUMBERS = 1000  # batch page: "you can send messages to up to 1,000 mobile phone numbers" per request
SINGLE_TYPES = frozenset({"OTP", "NOTIFY", "MKT"})  # newer SendMessageToGlobe page; `Type` optional there
BATCH_TYPES = frozenset({"NOTIFY", "MKT"})  # the batch page lists only these two, and `Type` is required
TASK_ID_MAX_LENGTH = 255  # "It must be 1 to 255 characters in length"
# `From`: "can contain only letters and digits"; "a maximum of 11 characters" with letters, "a maximum of 15" when it
# is digits only. The pages word the letter case three ways ("digits and letters", "contains letters",
# "alphanumeric"); all agree on this reading.
_SENDER_ID = re.compile(r"[0-9]{1,15}|(?=[0-9]*[A-Za-z])[A-Za-z0-9]{1,11}")
MAINLAND_COUNTRY_CODE = 86  # "This API does not support sending text messages to the Chinese mainland."
SIGNATURE_WINDOW_SECONDS = 15 * 60  # Alibaba's window for x-acs-date and for remembering nonces
RECEIPTS_PER_PUSH = 100  # a batch call's receipts come in several pushes, as Tencent's emulator pushes them

# Gateway error codes: HTTP status and Alibaba's message.
GATEWAY_ERRORS: dict[str, tuple[int, str]] = {
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "SignatureDoesNotMatch": (400, "Specified signature is not matched with our calculation."),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "InvalidAccessKeyId.Inactive": (400, "Specified access key is disabled."),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "Forbidden.RAM": (
        403,
        "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
    ),
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and method."),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "Throttling": (400, "Request was denied due to request throttling."),
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "Throttling.Api": (400, "Request was denied due to api flow control."),
    "InternalError": (500, "The request processing has failed due to some unknown error, exception or failure."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
}

BUSINESS_DESCRIPTIONS: dict[str, str] = {
    "OK": "The SMS Send Request was accepted",
    "INVALID_SENDERID": "The sender ID is invalid or unapproved.",
    "FORBIDDEN_ACTION": "The API access of the account has been downgraded.",
    "OUT_OF_SERVICE": "The SMS service is suspended.",
    "ACCOUNT_NOT_EXISTS": "The account does not exist.",
    "MOBILE_NUMBER_ILLEGAL": "The mobile phone number format is invalid.",
    "MOBILE_COUNT_OVER_LIMIT": "The number of mobile phone numbers exceeds 1000.",
    "INVALID_PARAMETERS": "The input parameters are invalid.",
    "INVALID_JSON_PARAM": "The parameter is empty or its JSON string could not be parsed.",
    "AMOUNT_NOT_ENOUGH": "The balance or resource package is insufficient.",
    "SYSTEM_ERROR": "An internal system error occurred.",
    "QPS_LIMIT_CONTROL": "The QPS limit of the account has been reached.",
    "NOT_SUPPORTED_COUNTRY": "Messages to this country or region are not supported.",
    "SMS_CONTENT_ILLEGAL": "The message content is not allowed.",
}

# Receipt outcomes (Faults.receipt_outcome) as Alibaba reports them: Status, ErrorCode, ErrorDescription.
RECEIPT_OUTCOMES: dict[str, tuple[str, str, str]] = {
    "DELIVERED": ("1", "success", "success"),
    "UNDELIVERED": ("2", "UNDELIV", "The message could not be delivered to the handset."),
    "EXPIRED": ("6", "EXPIRED", "The message expired before it could be delivered."),
}

_BEIJING = timezone(timedelta(hours=8))  # Alibaba writes receipt dates in UTC+8
_AUTHORIZATION = re.compile(
    r"ACS3-HMAC-SHA256 Credential=(?P<key>[^,\s]+),"
    r"SignedHeaders=(?P<signed>[a-z0-9\-;]+),"
    r"Signature=(?P<sig>[0-9a-f]{64})"
)
_REQUIRED_SIGNED = frozenset(
    {"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"}
)


class GatewayRejection(Exception):
    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message


class BusinessRejection(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# ---------------------------------------------------------------------------------------------------------------
# Signature verification (independent of globesms.providers.aliyun.signer on purpose)


class SignatureVerifier:
    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._secrets = dict(secrets)
        self._lock = threading.Lock()
        self._nonces: set[str] = set()
        self._nonce_expiry: deque[tuple[float, str]] = deque()

    def verify(self, method: str, path: str, raw_query: str, headers: Mapping[str, str], body: bytes) -> None:
        """Raise GatewayRejection unless the request is signed with a known key, in time, with a fresh nonce."""
        match = _AUTHORIZATION.fullmatch(headers.get("authorization", "").strip())
        if match is None:
            raise GatewayRejection("IncompleteSignature")
        secret = self._secrets.get(match["key"])
        if secret is None:
            raise GatewayRejection("InvalidAccessKeyId.NotFound")
        signed = match["signed"].split(";")
        present_acs = {name for name in headers if name.startswith("x-acs-")}
        if body:
            present_acs.add("content-type")
        if not (_REQUIRED_SIGNED | present_acs) <= set(signed) or signed != sorted(signed):
            raise GatewayRejection("IncompleteSignature")

        self._check_date(headers.get("x-acs-date", ""))
        if headers.get("x-acs-content-sha256") != hashlib.sha256(body).hexdigest():
            raise GatewayRejection("SignatureDoesNotMatch", "The x-acs-content-sha256 header does not match the body.")

        header_lines = ""
        for name in signed:
            if name not in headers:
                raise GatewayRejection("IncompleteSignature")
            header_lines += f"{name}:{headers[name].strip()}\n"
        pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
        query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)
        canonical = "\n".join([method, path, query, header_lines, ";".join(signed), headers["x-acs-content-sha256"]])
        to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        expected = hmac.new(secret.encode("utf-8"), to_sign.encode("utf-8"), "sha256").hexdigest()
        if not hmac.compare_digest(expected, match["sig"]):
            raise GatewayRejection(
                "SignatureDoesNotMatch",
                f"Specified signature is not matched with our calculation. server string to sign is:{to_sign}",
            )
        self._use_nonce(headers.get("x-acs-signature-nonce", ""))

    @staticmethod
    def _check_date(value: str) -> None:
        try:
            sent = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise GatewayRejection("InvalidTimeStamp.Format") from None
        if abs(time.time() - sent.timestamp()) > SIGNATURE_WINDOW_SECONDS:
            raise GatewayRejection("InvalidTimeStamp.Expired")

    def _use_nonce(self, nonce: str) -> None:
        if not nonce:
            raise GatewayRejection("IncompleteSignature")
        now = time.monotonic()
        with self._lock:
            while self._nonce_expiry and self._nonce_expiry[0][0] < now:
                self._nonces.discard(self._nonce_expiry.popleft()[1])
            if nonce in self._nonces:
                raise GatewayRejection("SignatureNonceUsed")
            self._nonces.add(nonce)
            self._nonce_expiry.append((now + SIGNATURE_WINDOW_SECONDS, nonce))


# ---------------------------------------------------------------------------------------------------------------
# The app


def create_app(knobs: Knobs | None = None, env: Mapping[str, str] | None = None) -> Flask:
    settings = {**LOCAL_ENV_DEFAULTS, **(env or {})}
    state = EmulatorState(knobs or Knobs())
    verifier = SignatureVerifier(
        {settings["GLOBESMS_ALIYUN_ACCESS_KEY_ID"]: settings["GLOBESMS_ALIYUN_ACCESS_KEY_SECRET"]}
    )
    ids = _MessageIds(state.knobs.seed)
    app = Flask("aliyun-emulator")
    app.extensions[STATE_KEY] = state

    @app.route("/", methods=["POST", "GET"])
    def rpc() -> Response:
        request_id = str(uuid.uuid4()).upper()
        headers = {name.lower(): value for name, value in request.headers.items()}
        body = request.get_data(cache=True)
        try:
            verifier.verify(request.method, request.path, request.query_string.decode("latin-1"), headers, body)
        except GatewayRejection as rejection:
            state.ledger.record_rejected_signature()
            return _gateway_error(rejection, request_id, headers.get("host", ""))

        operation = headers.get("x-acs-action", "")
        try:
            if operation not in (SEND_ONE, SEND_BATCH, QUERY_MESSAGE):
                raise GatewayRejection("InvalidAction.NotFound")
            if headers.get("x-acs-version") != API_VERSION:
                raise GatewayRejection("InvalidVersion")
            state.faults.delay()
            if not state.gate.admit(operation):
                raise GatewayRejection("Throttling.User")
            injected = state.faults.injected_error()
            bare = common.bare_status(injected)
            if bare is not None and bare in common.BARE_STATUSES_BEFORE:
                return common.bare_response(bare)
            if injected and bare is None:
                if injected in GATEWAY_ERRORS:
                    raise GatewayRejection(injected)
                raise BusinessRejection(injected)
            params = _params(request.query_string, body, headers.get("content-type", ""))
            if operation == QUERY_MESSAGE:
                return _json({"RequestId": request_id, **_query_message(state, params)})
            send = _send_one if operation == SEND_ONE else _send_batch
            answer = send(state, ids, params)
        except GatewayRejection as rejection:
            return _gateway_error(rejection, request_id, headers.get("host", ""))
        except BusinessRejection as rejection:
            description = BUSINESS_DESCRIPTIONS.get(rejection.code, rejection.code)
            return _json({"RequestId": request_id, "ResponseCode": rejection.code, "ResponseDescription": description})
        state.faults.hold_after_accept()
        if bare is not None:
            return common.bare_response(bare)  # sent, but the answer is lost
        return _json({"RequestId": request_id, **answer})

    register_admin_routes(app, state)
    common.register_reply_route(app, state, _sms_up_push)
    return app


class _MessageIds:
    """Alibaba-looking message ids: 16+ digits, unique within the run."""

    def __init__(self, seed: int | None) -> None:
        self._counter = itertools.count(random.Random(seed).randrange(10**15, 9 * 10**15) * 10)

    def next(self) -> str:
        return str(next(self._counter))


def _params(raw_query: bytes, body: bytes, content_type: str) -> dict[str, str]:
    params = dict(parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True))
    if body and content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    return params


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise GatewayRejection(f"Missing{name}", f"{name} is mandatory for this action.")
    return value


def _common_checks(params: Mapping[str, str]) -> None:
    sender = params.get("From")
    if sender is not None and not _SENDER_ID.fullmatch(sender):
        raise BusinessRejection("INVALID_SENDERID")
    task_id = params.get("TaskId")
    if task_id is not None and not 1 <= len(task_id) <= TASK_ID_MAX_LENGTH:
        raise BusinessRejection("INVALID_PARAMETERS")
    validity = params.get("ValidityPeriod")
    if validity is not None and not (validity.isdigit() and int(validity) > 0):
        raise BusinessRejection("INVALID_PARAMETERS")


def _number_code(number: str) -> str | None:
    """The business code Alibaba gives a number it will not send to, or None.

    `To` is "Dialing code+Phone number", digits only (the pages' example: 8521245567****). A number is judged as a
    carrier would, by the numbering plan of its country (libphonenumber's possible lengths), not by a fixed digit
    range. The global API refuses the Chinese mainland; we answer that as an unsupported country."""
    if not (number.isascii() and number.isdigit()):
        return "MOBILE_NUMBER_ILLEGAL"
    try:
        parsed = phonenumbers.parse("+" + number, None)
    except phonenumbers.NumberParseException:
        return "MOBILE_NUMBER_ILLEGAL"
    if parsed.country_code == MAINLAND_COUNTRY_CODE:
        return "NOT_SUPPORTED_COUNTRY"
    return None if phonenumbers.is_possible_number(parsed) else "MOBILE_NUMBER_ILLEGAL"


def _send_one(state: EmulatorState, ids: _MessageIds, params: Mapping[str, str]) -> dict[str, Any]:
    number = _required(params, "To")
    text = _required(params, "Message")
    if params.get("Type", "NOTIFY") not in SINGLE_TYPES:
        raise BusinessRejection("INVALID_PARAMETERS")
    _common_checks(params)
    number_code = _number_code(number)
    if number_code:
        raise BusinessRejection(number_code)
    message_id = ids.next()
    task_id = params.get("TaskId")
    state.ledger.record_sent(task_id or number, SEND_ONE)
    _schedule_receipts(state, [(number, message_id, text)], task_id)
    answer: dict[str, Any] = {
        "ResponseCode": "OK",
        "ResponseDescription": BUSINESS_DESCRIPTIONS["OK"],
        "MessageId": message_id,
        "Segments": str(billed_segments(text)),
        "To": number,
        "NumberDetail": _number_detail(number),
    }
    if "From" in params:
        answer["From"] = params["From"]
    return answer


def _send_batch(state: EmulatorState, ids: _MessageIds, params: Mapping[str, str]) -> dict[str, Any]:
    numbers = _json_string_list(_required(params, "To"))
    texts = _json_string_list(_required(params, "Message"))
    if _required(params, "Type") not in BATCH_TYPES:
        raise BusinessRejection("INVALID_PARAMETERS")
    if len(numbers) > MAX_BATCH_NUMBERS:
        raise BusinessRejection("MOBILE_COUNT_OVER_LIMIT")
    if not numbers or len(numbers) != len(texts):
        raise BusinessRejection("INVALID_PARAMETERS")
    _common_checks(params)
    task_id = params.get("TaskId")
    accepted: list[tuple[str, str, str]] = []
    failed: list[str] = []
    for number, text in zip(numbers, texts, strict=True):
        if _number_code(number) or not text:
            failed.append(number)
            continue
        message_id = ids.next()
        accepted.append((number, message_id, text))
        state.ledger.record_sent(f"{task_id}/{number}" if task_id else number, SEND_BATCH)
    _schedule_receipts(state, accepted, task_id)
    answer: dict[str, Any] = {
        "ResponseCode": "OK",
        "ResponseDescription": BUSINESS_DESCRIPTIONS["OK"],
        "SuccessCount": str(len(accepted)),
        "MessageIdList": json.dumps([message_id for _, message_id, _ in accepted]),
        "FailedList": json.dumps(failed),
    }
    if "From" in params:
        answer["From"] = params["From"]
    return answer


def _json_string_list(raw: str) -> list[str]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise BusinessRejection("INVALID_JSON_PARAM") from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BusinessRejection("INVALID_JSON_PARAM")
    return value


_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


def billed_segments(text: str) -> int:
    """The billed parts (`Segments`, `SmsSize`) by the GSM rule carriers bill by (3GPP TS 23.038/23.040): 160 GSM-7
    characters in one message, 153 per part of a longer one (the rest is the concatenation header); with any other
    character UCS-2, 70 and 67. Written out here rather than taken from the client's segment counter, which it is
    meant to check."""
    septets = 0
    for char in text:
        if char in _GSM7_BASIC:
            septets += 1
        elif char in _GSM7_EXTENSION:
            septets += 2  # the escape character and the character
        else:
            units = len(text.encode("utf-16-le")) // 2
            return 1 if units <= 70 else -(-units // 67)
    return 1 if septets <= 160 else -(-septets // 153)


def _number_detail(number: str) -> dict[str, str]:
    # Imported at the first detail: phonenumbers' carrier and geocoder data are half of this emulator's start-up CPU
    # (~0.45 s), spent by every local stack while moto and the function hosts start on the same cores.
    from phonenumbers import carrier, geocoder

    try:
        parsed = phonenumbers.parse("+" + number, None)
    except phonenumbers.NumberParseException:
        return {}
    return {
        "Carrier": carrier.name_for_number(parsed, "en") or "",
        "Region": phonenumbers.region_code_for_number(parsed) or "",
        "Country": geocoder.country_name_for_number(parsed, "en") or "",
    }


# ---------------------------------------------------------------------------------------------------------------
# Receipts


def _schedule_receipts(state: EmulatorState, accepted: list[tuple[str, str, str]], task_id: str | None) -> None:
    url = state.knobs.receipt_callback_url
    if not accepted:
        return
    sent_at = datetime.now(_BEIJING)
    received_at = sent_at + timedelta(seconds=state.knobs.receipt_delay_seconds)
    reports = []
    for number, message_id, text in accepted:
        report = _receipt(number, message_id, text, task_id, state.faults.receipt_outcome(), sent_at, received_at)
        if state.knobs.undelivered_code and report["Status"] == "2":
            report["ErrorCode"] = state.knobs.undelivered_code
        withheld = state.faults.withhold_receipt()
        state.remember_status(message_id, report, withheld=withheld)  # what QueryMessage answers
        if not withheld:
            reports.append(report)
    if not url or not reports:
        return

    if state.knobs.receipts_across_calls:
        for report in reports:
            for _ in range(2 if state.faults.duplicate_receipt() else 1):
                state.pusher.schedule_report(url, report, per_push=RECEIPTS_PER_PUSH)
        return
    for start in range(0, len(reports), RECEIPTS_PER_PUSH):
        push = _push(state, url, reports[start : start + RECEIPTS_PER_PUSH])
        state.pusher.schedule(push)
        if state.faults.duplicate_receipt():
            state.pusher.schedule(push)


def _push(state: EmulatorState, url: str, reports: list[dict[str, str]]) -> Callable[[httpx.Client], None]:
    def push(client: httpx.Client) -> None:
        state.pusher.post(client, url, json=reports)

    return push


def _receipt(
    number: str,
    message_id: str,
    text: str,
    task_id: str | None,
    outcome: str,
    sent_at: datetime,
    received_at: datetime,
) -> dict[str, str]:
    status, error_code, description = RECEIPT_OUTCOMES.get(outcome, RECEIPT_OUTCOMES["UNDELIVERED"])
    report = {
        "To": number,
        "Status": status,
        "MessageId": message_id,
        "SmsSize": str(billed_segments(text)),
        "SendDate": sent_at.strftime("%a, %d %b %Y %H:%M:%S +0800"),
        "ReceiveDate": received_at.strftime("%a, %d %b %Y %H:%M:%S +0800"),
        "ErrorCode": error_code,
        "ErrorDescription": description,
    }
    if task_id:
        report["TaskId"] = task_id
    return report


def _query_message(state: EmulatorState, params: Mapping[str, str]) -> dict[str, Any]:
    """QueryMessage: the message's delivery report. `ErrorCode` is `DELIVERED` on delivery (the API page's example),
    `Status` 1 delivered, 2 failed, 3 still delivering (one of Alibaba's two readings; the client decides by
    ErrorCode). A withheld receipt answers "still delivering" when the knob `status_query_answers` is "pending"."""
    message_id = _required(params, "MessageId")
    known = state.status_of(message_id)
    if known is None:
        raise BusinessRejection("INVALID_PARAMETERS")
    report, withheld = known
    answer: dict[str, Any] = {
        "ResponseCode": "OK",
        "ResponseDescription": BUSINESS_DESCRIPTIONS["OK"],
        "MessageId": message_id,
        "To": report["To"],
        "SendDate": report["SendDate"],
        "NumberDetail": _number_detail(report["To"]),
    }
    if withheld and state.knobs.status_query_answers == "pending":
        return {**answer, "Status": "3", "ErrorCode": "", "ErrorDescription": ""}
    delivered = report["Status"] == "1"
    return {
        **answer,
        "Status": "1" if delivered else "2",
        "ErrorCode": "DELIVERED" if delivered else report["ErrorCode"],
        "ErrorDescription": "success" if delivered else report["ErrorDescription"],
        "ReceiveDate": report["ReceiveDate"],
    }


# ---------------------------------------------------------------------------------------------------------------
# Answers


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json;charset=utf-8")


def _gateway_error(rejection: GatewayRejection, request_id: str, host: str) -> Response:
    status, message = GATEWAY_ERRORS.get(rejection.code, (400, ""))
    return _json(
        {
            "RequestId": request_id,
            "HostId": host,
            "Code": rejection.code,
            "Message": rejection.message or message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={rejection.code}&product=Dysmsapi&requestId={request_id}",
        },
        status,
    )


def main(argv: list[str] | None = None) -> None:
    args = common.emulator_arguments("aliyun", "Alibaba Cloud SMS (dysmsapi) emulator").parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    common.serve(create_app(knobs_from_json(args.knobs), dict(os.environ)), args, "aliyun")


_reply_sequence = itertools.count(1)


def _sms_up_push(sender: str, text: str, to: str) -> tuple[bytes, str]:
    """A reply as Alibaba's SmsUp batch push carries it: a JSON array; the number without "+", the time in Beijing
    time, `sequence_id` a number."""
    item = {
        "phone_number": sender.lstrip("+"),
        "send_time": datetime.now(_BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
        "content": text,
        "sign_name": "Acme",
        "dest_code": to or "1234",
        "sequence_id": next(_reply_sequence),
    }
    return json.dumps([item], ensure_ascii=False).encode(), "application/json"


if __name__ == "__main__":
    main()
