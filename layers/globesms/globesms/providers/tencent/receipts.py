"""Tencent Cloud SMS delivery receipts ("SMS Sending Status Notification", pushed to the console's callback URL).

The push is a JSON *array* of up to 100 reports, each:
`{"user_receive_time": "2015-10-17 08:03:04", "nationcode": "86", "mobile": "13xxxxxxxxx", "report_status":
"SUCCESS", "errmsg": "DELIVRD", "description": "...", "sid": "<SerialNo>", "ext": "<SessionContext>"}` (`ext` only
when the application enables the SessionContext echo). Answer `{"result":0,"errmsg":"OK"}` (`ACK`). Pushes are
unsigned, and may repeat.

Correlation: `sid` is the `SerialNo` the send returned (the provider message id); `ext` echoes our message id,
which the client sends as `SessionContext`, one per recipient.

Only `sid` and `report_status` are required of a report; a report that breaks a rule is refused on its own, with a
reason naming its index and field (never the number), and the others still count. A body that is not a JSON array
raises `ReceiptBodyInvalid`.

Status mapping: `report_status` SUCCESS -> DELIVERED; FAIL -> UNDELIVERED, refined by the carrier's code in `errmsg`
(kept as `error_code`). Tencent has no expired or rejected report_status of its own, so an expired message comes as
FAIL with the SMPP stat `EXPIRED` in `errmsg` (or a description saying it expired): EXPIRED, because the other two
providers report that outcome as EXPIRED and a customer should see one meaning across providers. For the same
reason FAIL with the SMPP stat `REJECTD` is REJECTED. Any other report_status is kept as `raw_status` with no
status.
"""

from __future__ import annotations

import re
from typing import Final

from pydantic import ConfigDict, Field, field_validator

from globesms.domain.status import Status
from globesms.models.base import Model
from globesms.models.outbound import ProviderName
from globesms.models.receipts import DeliveryReport, EchoRange, ParsedPush
from globesms.providers import receipt_parsing as parsing

ACK: Final = {"result": 0, "errmsg": "OK"}

_EXPIRED_DESCRIPTION = re.compile(r"expire|过期", re.IGNORECASE)


def outcome(report_status: str, errmsg: str | None, description: str | None) -> Status | None:
    verdict = report_status.upper()
    if verdict == "SUCCESS":
        return Status.DELIVERED
    if verdict != "FAIL":
        return None
    code = (errmsg or "").upper()
    if code == "EXPIRED" or (description and _EXPIRED_DESCRIPTION.search(description)):
        return Status.EXPIRED
    if code == "REJECTD":
        return Status.REJECTED
    return Status.UNDELIVERED


class TencentReceipt(Model):
    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True, str_strip_whitespace=True)

    user_receive_time: str | None = Field(default=None, max_length=64)
    nationcode: str | None = Field(default=None, max_length=8)
    mobile: str | None = Field(default=None, max_length=32)
    report_status: str = Field(min_length=1, max_length=32)
    errmsg: str | None = Field(default=None, max_length=128)
    description: str | None = None
    sid: str = Field(min_length=1, max_length=128)
    ext: str | None = None  # an echo: anything unreadable is just no echo
    # From 2026-12-01 (rolled out gradually): Tencent's finer error code and its text; kept in history and error.
    sub_error: str | None = Field(default=None, max_length=128)
    sub_error_desc: str | None = None

    _blank_is_absent = field_validator(
        "user_receive_time",
        "nationcode",
        "mobile",
        "errmsg",
        "description",
        "sub_error",
        "sub_error_desc",
        mode="before",
    )(parsing.blank_is_absent)
    _echo_text = field_validator("ext", mode="before")(parsing.echo_text)

    def report(self) -> DeliveryReport:
        return DeliveryReport(
            provider=ProviderName.TENCENT,
            provider_message_id=self.sid,
            status=outcome(self.report_status, self.errmsg, self.description),
            raw_status=self.report_status,
            error_code=self.errmsg,
            description=parsing.bounded_description(self.description),
            to=normalised_number(self.nationcode, self.mobile),
            echo=echo_of(self.ext),
            provider_time=self.user_receive_time,
            sub_error=self.sub_error,
            sub_error_desc=parsing.bounded_description(self.sub_error_desc),
        )


def parse_push(body: bytes, content_type: str = "", at_most: int | None = None) -> ParsedPush:
    """One push body -> its reports, and a reason for every item that is refused (more than `at_most`: raises
    TooManyReports). Tencent always posts JSON."""
    return parsing.read_reports(parsing.read_json_array(body), TencentReceipt.model_validate, at_most)


# ------------------------------------------------------------------------------------------------------- echo


_BATCH = re.compile(r"[^\s]{1,128}")


def echo_of(ext: str | None) -> EchoRange | None:
    """`ext` is the SessionContext we sent: one recipient's message id. Anything else (another system's context,
    or none) is no echo."""
    parts = parsing.our_message_id(ext, _BATCH)
    return None if parts is None else EchoRange(parts[0], parts[1], parts[1])


# ---------------------------------------------------------------------------------------------------- numbers


_DIGITS = re.compile(r"\+?[0-9]{1,4}")


def normalised_number(nationcode: str | None, mobile: str | None) -> str | None:
    """`+<nationcode><mobile>` in E.164, or `+<mobile>` when the mobile number already carries its country code:
    the first reading phonenumbers finds valid, else the first it finds possible; else the mobile number as sent."""
    if not mobile:
        return None
    if not parsing.is_diallable(mobile):
        return mobile
    candidates = []
    if mobile.startswith("+"):
        candidates.append(mobile)
    else:
        if nationcode and _DIGITS.fullmatch(nationcode):
            candidates.append("+" + nationcode.lstrip("+") + mobile)
        candidates.append("+" + mobile)
    import phonenumbers  # on use, as in receipt_parsing: the dispatcher imports this module and reads no number

    numbers = [number for number in map(parsing.parsed_number, candidates) if number is not None]
    chosen = next((n for n in numbers if phonenumbers.is_valid_number(n)), None) or next(
        (n for n in numbers if phonenumbers.is_possible_number(n)), None
    )
    if chosen is None:
        return mobile
    return parsing.e164(chosen)
