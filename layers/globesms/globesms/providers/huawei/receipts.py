"""Huawei Message & SMS status reports, pushed to the `statusCallback` of the send.

Two shapes (`parse_push` decides by content type, and sniffs the body when the type is neither):
* the Status Report Receiving API: ONE report per request, `application/x-www-form-urlencoded`, e.g.
  `sequence=1&total=1&orgCode=000&updateTime=2018-04-13T06%3A31%3A46Z&source=2&smsMsgId=b9d9..._6&status=DELIVRD`
  (plus `statusDesc`, and `extend` with `to` when the send had an `extend`);
* the Batch Status Reports Receiving API: JSON `{"statusReportList": [<report>, ...]}` (up to 50), configured on the
  application instead.
Huawei needs only an HTTP 200; it ignores the body, so `ACK` is a small JSON for the logs.

Correlation: `smsMsgId` is the provider message id. `extend` is one value per *call*: the message id of the call's
first recipient (see `client.py`); the call's other recipients are later messages of the same batch, at most 500 per
call, each number once, so (`extend`, `to`) names one recipient: `echo` is the range first..first+499.

Only `smsMsgId` and `status` are required of a report. A form without `smsMsgId` (or a body that is neither shape)
raises `ReceiptBodyInvalid`; a report that breaks another rule is refused with a reason (index, field, rule; never
the number), and in a batch the other reports still count.

Status mapping (the "SMS Status Error Codes" page; the seed's result-code table for the E200xxx codes):
* DELIVRD -> DELIVERED; UNDELIV -> UNDELIVERED; EXPIRED -> EXPIRED; REJECTD -> REJECTED.
* DELETED -> UNDELIVERED: the supplier's SMSC deleted the message, so it never reached the handset. It was not
  refused as a request and did not run out its validity: a plain delivery failure, final.
* E200xxx -> REJECTED: codes the Huawei platform itself reports (source "1"); the seed lists them as per-number
  refusals of the request (E200015 too many messages waiting, E200028-E200033 template/protocol checks failed,
  E200041 duplicate number), i.e. the message was never handed to a carrier.
* MILIMIT / LIMIT -> REJECTED: the platform's or the carrier's sending limits (per-number frequency, account
  volume) refused the message before delivery was attempted; in the seed the equivalent API codes (E000623,
  E000630: "reached the limit") refuse the request. Retrying later may succeed, which is what REJECTED tells the
  customer, unlike UNDELIVERED (the handset could not be reached).
* ACCEPTD ("temporary SMS status"), UNKNOWN and anything undocumented -> no status: kept as `raw_status`, the message
  keeps waiting for its final report.
`error_code` is `orgCode` (the supplier's own code; "000" for a delivery) when sent, else `status`.

Push authentication (`verify_push_signature`): when configured on the application, Huawei signs the push with the
same AK/SK "SDK-HMAC-SHA256" header scheme as API calls; the receipt handler can check it with the app key/secret.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import parse_qsl

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from globesms.domain.status import Status
from globesms.models.outbound import ProviderName
from globesms.models.receipts import DeliveryReport, EchoRange, ParsedPush, ReceiptBodyInvalid
from globesms.providers import receipt_parsing as parsing
from globesms.providers.huawei import signer
from globesms.providers.huawei.wire import MAX_NUMBERS_PER_CALL, StatusReport

ACK: Final = {"result": "ok"}  # Huawei needs an HTTP 200 and ignores the body
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
MAX_RECIPIENTS_PER_CALL: Final = MAX_NUMBERS_PER_CALL  # more fails the whole call
MAX_FORM_FIELDS: Final = 64
PUSH_SIGNATURE_WINDOW: Final = timedelta(minutes=15)  # the seed's AK/SK window for X-Sdk-Date

RECEIPT_STATUS: dict[str, Status] = {
    "DELIVRD": Status.DELIVERED,
    "UNDELIV": Status.UNDELIVERED,
    "EXPIRED": Status.EXPIRED,
    "REJECTD": Status.REJECTED,
    "DELETED": Status.UNDELIVERED,
    "MILIMIT": Status.REJECTED,
    "LIMIT": Status.REJECTED,
}
_PLATFORM_CODE = re.compile(r"E2[0-9]{5}")


def outcome(status: str) -> Status | None:
    """The normalised status of a Huawei `status` value, or None for an intermediate or unknown one."""
    code = status.upper()
    if _PLATFORM_CODE.fullmatch(code):
        return Status.REJECTED
    return RECEIPT_STATUS.get(code)


class HuaweiReceipt(StatusReport):
    """`wire.StatusReport`, read forgivingly: numbers where strings are documented (the JSON variant), blanks as
    absent, bounded lengths, and `total`/`sequence` as small positive counts."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, str_strip_whitespace=True)

    sms_msg_id: str = Field(alias="smsMsgId", min_length=1, max_length=128)
    status: str = Field(min_length=1, max_length=32)
    total: str | None = Field(default=None, pattern=r"^[1-9][0-9]{0,2}$")
    sequence: str | None = Field(default=None, pattern=r"^[1-9][0-9]{0,2}$")
    status_desc: str | None = Field(default=None, alias="statusDesc")
    source: str | None = Field(default=None, max_length=8)
    update_time: str | None = Field(default=None, alias="updateTime", max_length=64)
    extend: str | None = None  # an echo: anything unreadable is just no echo
    to: str | None = Field(default=None, max_length=32)
    org_code: str | None = Field(default=None, alias="orgCode", max_length=128)

    _blank_is_absent = field_validator(
        "total", "sequence", "status_desc", "source", "update_time", "to", "org_code", mode="before"
    )(parsing.blank_is_absent)
    _echo_text = field_validator("extend", mode="before")(parsing.echo_text)

    @field_validator("sequence")
    @classmethod
    def _part_within_total(cls, value: str | None, info: ValidationInfo) -> str | None:
        total = info.data.get("total")  # validated before `sequence` (field order)
        if value is not None and total is not None and int(value) > int(total):
            raise ValueError("the part number is greater than total")
        return value

    def report(self) -> DeliveryReport:
        return DeliveryReport(
            provider=ProviderName.HUAWEI,
            provider_message_id=self.sms_msg_id,
            status=outcome(self.status),
            raw_status=self.status,
            error_code=self.org_code or self.status,
            description=parsing.bounded_description(self.status_desc),
            to=parsing.normalised_number(self.to),  # Huawei sends `+<country code><number>` already
            echo=echo_of(self.extend),
            provider_time=self.update_time,
            part=int(self.sequence) if self.sequence is not None else None,
            parts=int(self.total) if self.total is not None else None,
        )


# ------------------------------------------------------------------------------------------------------ parsing


def parse_push(body: bytes, content_type: str = "", at_most: int | None = None) -> ParsedPush:
    """One push body -> its reports, and a reason for every item that is refused; a batch of more than `at_most`
    raises TooManyReports (a form carries one report)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == FORM_CONTENT_TYPE:
        return _parse_form(body)
    if media_type == "application/json" or media_type.endswith("+json"):
        return _parse_batch(body, at_most)
    # No (or another) content type: a JSON object starts with "{", a form never does.
    return _parse_batch(body, at_most) if body.lstrip()[:1] == b"{" else _parse_form(body)


_FORM_FIELDS = frozenset(field.alias or name for name, field in HuaweiReceipt.model_fields.items())


def _parse_form(body: bytes) -> ParsedPush:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # not UTF-8, a %-escape that is not UTF-8, or too many fields
        raise ReceiptBodyInvalid("the body is not a form-urlencoded status report") from None
    fields: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in pairs:
        if name in fields and name in _FORM_FIELDS:  # an unknown field is ignored, repeated or not
            repeated.add(name)
        fields[name] = value
    if not fields.get("smsMsgId", "").strip():
        raise ReceiptBodyInvalid("the body is not a status report: no smsMsgId")
    if repeated:
        # Which value would be the report's is anyone's guess: refused, naming only documented fields.
        return ParsedPush(reports=[], refused_items=[f"item 0: {', '.join(sorted(repeated))}: field repeated"])
    try:
        receipt = HuaweiReceipt.model_validate(fields)
    except ValidationError as exc:
        return ParsedPush(reports=[], refused_items=[parsing.refusal(0, exc)])
    return ParsedPush(reports=[receipt.report()], refused_items=[])


def _parse_batch(body: bytes, at_most: int | None) -> ParsedPush:
    payload = parsing.read_json(body)
    items = payload.get("statusReportList") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise ReceiptBodyInvalid('the body is not {"statusReportList": [...]}')
    return parsing.read_reports(items, HuaweiReceipt.model_validate, at_most)


# ------------------------------------------------------------------------------------------------------- echo


_BATCH = re.compile(r"[^\s{}]{1,128}")


def echo_of(extend: str | None) -> EchoRange | None:
    """`extend` is the message id of the call's first recipient: the call covers that message and later ones of the
    same batch, at most MAX_RECIPIENTS_PER_CALL of them. Anything else is no echo."""
    parts = parsing.our_message_id(extend, _BATCH)
    if parts is None:
        return None
    batch_id, first = parts
    return EchoRange(batch_id, first, first + MAX_RECIPIENTS_PER_CALL - 1)


# ------------------------------------------------------------------------------------------ push authentication


_AUTHORIZATION = re.compile(
    r'SDK-HMAC-SHA256\s+Access="?(?P<access>[^",\s]+)"?,\s*SignedHeaders="?(?P<signed>[a-z0-9\-;]+)"?,'
    r'\s*Signature="?(?P<signature>[0-9a-fA-F]{64})"?'
)


def verify_push_signature(
    method: str,
    path: str,
    query: Mapping[str, str] | Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    app_key: str,
    app_secret: str | bytes,
    now: datetime,
) -> bool:
    """True when the push carries a valid SDK-HMAC-SHA256 `Authorization` by `app_key` over exactly this request,
    dated (`X-Sdk-Date`) within 15 minutes of `now`. Never raises: anything malformed is False.

    `path` and `query` are the request's as the pusher addressed it (the statusCallback URL's path, e.g. with the
    API stage); `headers` as they arrived (names in any case); `now` timezone-aware. Every header the signature
    names must be present, and `X-Sdk-Date` must be among them (it is what bounds a replay); the key and the
    signature are compared in constant time."""
    by_name = {name.lower(): value for name, value in headers.items()}
    match = _AUTHORIZATION.fullmatch(by_name.get("authorization", "").strip())
    if match is None:
        return False
    signed_names = match["signed"].split(";")
    if "x-sdk-date" not in signed_names or any(name not in by_name for name in signed_names):
        return False
    date_text = by_name["x-sdk-date"].strip()
    try:
        signed_at = datetime.strptime(date_text, signer.SDK_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return False
    if abs(now.astimezone(UTC) - signed_at) > PUSH_SIGNATURE_WINDOW:
        return False
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    header_block, signed = signer.canonical_headers({name: by_name[name] for name in signed_names})
    canonical = signer.canonical_request(
        method,
        signer.canonical_uri(path),
        signer.canonical_query(pairs),
        header_block,
        signed,
        signer.payload_hash(body),
    )
    secret = app_secret.encode("utf-8") if isinstance(app_secret, str) else app_secret
    expected = signer.signature(secret, signer.string_to_sign(date_text, canonical))
    key_ok = hmac.compare_digest(match["access"].encode("utf-8"), app_key.encode("utf-8"))
    signature_ok = hmac.compare_digest(match["signature"].lower().encode("ascii"), expected.encode("ascii"))
    return key_ok and signature_ok
