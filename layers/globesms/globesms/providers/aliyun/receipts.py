"""Alibaba's delivery receipts for the global API (HTTP push configured in the console).

The push is a JSON *array* of reports; each report carries `To`, `Status` ("1" delivered, "2" failed, "6" expired),
`MessageId`, `TaskId`, `SmsSize`, `SendDate`, `ReceiveDate` (`Thu, 25 Nov 2021 10:27:00 +0800`), `ErrorCode`,
`ErrorDescription`. Answer HTTP 200 with `{"code":0,"msg":...}` (`ACK`) or Alibaba pushes again; pushes can
repeat, so whoever stores them must deduplicate. (The lower-case `phone_number`/`biz_id`/`out_id` shape belongs to
the mainland API, not this one.)

Correlation: `MessageId` is the provider message id the send returned (for a batch, the recipient's entry of
`MessageIdList`); `TaskId` is our message id for a single send, or `<first message id>+<count>` for a batch call
(see `client.batch_task_id`), which with `To` also names one recipient because a batch call never repeats a number.

`parse_push` turns one push body into `DeliveryReport`s. Only `MessageId` and `Status` are required of a report:
a receipt whose other fields are missing or odd is still worth storing (correlation needs only the id). A report
that breaks a rule is refused on its own, with a reason naming its index and field (never the number); the others
still count. A body that is not a JSON array raises `ReceiptBodyInvalid`.

Status mapping: Alibaba already normalises the carrier's outcome into its own `Status`, so that alone decides:
"1" DELIVERED, "2" UNDELIVERED (the carrier's code stays in `error_code`), "6" EXPIRED; any other value is kept as
`raw_status` with no status (Alibaba documents none).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from globesms.models.outbound import ProviderName
from globesms.models.receipts import DeliveryReport, EchoRange, ParsedPush, ReceiptBodyInvalid
from globesms.providers.aliyun.rules import MAX_BATCH_RECIPIENTS
from globesms.status import Status

RECEIPT_STATUS: dict[str, Status] = {"1": Status.DELIVERED, "2": Status.UNDELIVERED, "6": Status.EXPIRED}
ACK: Final = {"code": 0, "msg": "success"}
RECEIPT_ACK: Final = ACK  # the name the emulator tests use
MAX_DESCRIPTION_CHARS: Final = 512  # a description is free text kept in every event: bounded, never refused


class AliyunReceipt(BaseModel):
    model_config = ConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, coerce_numbers_to_str=True, str_strip_whitespace=True
    )

    to: str | None = Field(default=None, alias="To", max_length=32)
    status: str = Field(alias="Status", min_length=1, max_length=32)
    message_id: str = Field(alias="MessageId", min_length=1, max_length=128)
    task_id: str | None = Field(default=None, alias="TaskId")  # an echo: anything unreadable is just no echo
    sms_size: int | None = Field(default=None, alias="SmsSize", ge=0, le=1000)
    send_date: str | None = Field(default=None, alias="SendDate", max_length=64)
    receive_date: str | None = Field(default=None, alias="ReceiveDate", max_length=64)
    error_code: str | None = Field(default=None, alias="ErrorCode", max_length=128)
    error_description: str | None = Field(default=None, alias="ErrorDescription")

    @field_validator("to", "sms_size", "send_date", "receive_date", "error_code", "error_description", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("task_id", mode="before")
    @classmethod
    def _echo_text(cls, value: Any) -> Any:
        # Only a string (or a number) can be our id; any other shape means "no echo", never a refused receipt.
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return None
        return value

    @property
    def outcome(self) -> Status | None:
        """DELIVERED / UNDELIVERED / EXPIRED, or None for a status value Alibaba has not documented."""
        return RECEIPT_STATUS.get(self.status)

    def report(self) -> DeliveryReport:
        return DeliveryReport(
            provider=ProviderName.ALIYUN,
            provider_message_id=self.message_id,
            status=self.outcome,
            raw_status=self.status,
            error_code=self.error_code,
            description=self.error_description[:MAX_DESCRIPTION_CHARS] if self.error_description else None,
            to=normalised_number(self.to),
            echo=echo_of(self.task_id),
            provider_time=self.receive_date,
        )


RECEIPTS = TypeAdapter(list[AliyunReceipt])


def parse_receipts(body: bytes | str) -> list[AliyunReceipt]:
    """Validate one push body as a whole (raises pydantic.ValidationError when any report is broken); `parse_push`
    is the forgiving reader the callback uses."""
    return RECEIPTS.validate_json(body)


def parse_push(body: bytes, content_type: str = "") -> ParsedPush:
    """One push body -> its reports, and a reason for every item that is refused. The content type is not
    needed: Alibaba always posts a JSON array."""
    items = _json_array(body)
    reports: list[DeliveryReport] = []
    refused: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            refused.append(f"item {index}: not a JSON object")
            continue
        try:
            receipt = AliyunReceipt.model_validate(item)
        except ValidationError as exc:
            refused.append(_refusal(index, exc))
            continue
        reports.append(receipt.report())
    return ParsedPush(reports=reports, refused_items=refused)


# ------------------------------------------------------------------------------------------------------- echo


_SEQ = re.compile(r"[0-9]{5,}")  # message_id() pads to 5 digits
_BATCH = re.compile(r"[^\s+]{1,128}")
_COUNT = re.compile(r"[1-9][0-9]{0,3}")


def our_message_id(text: str) -> tuple[str, int] | None:
    """(batch_id, seq) when `text` has the shape of our message id (`<batch_id>.<seq:05d>`), else None."""
    batch_id, dot, seq = text.rpartition(".")
    if not dot or not _BATCH.fullmatch(batch_id) or not _SEQ.fullmatch(seq):
        return None
    return batch_id, int(seq)


def echo_of(task_id: str | None) -> EchoRange | None:
    """Our message id(s) from TaskId: `<id>` is one message; `<first id>+<count>` a batch call of `count` messages,
    read as the range first..first+count-1 of the batch (`client.batch_task_id`); anything else is no echo
    (a receipt for a message another system sent on the same account)."""
    if not task_id:
        return None
    first, plus, count_text = task_id.rpartition("+")
    if not plus:
        parts = our_message_id(task_id)
        return None if parts is None else EchoRange(parts[0], parts[1], parts[1])
    if not _COUNT.fullmatch(count_text) or int(count_text) > MAX_BATCH_RECIPIENTS:
        return None
    parts = our_message_id(first)
    if parts is None:
        return None
    batch_id, seq = parts
    return EchoRange(batch_id, seq, seq + int(count_text) - 1)


# ---------------------------------------------------------------------------------------------------- helpers


_DIALLABLE = re.compile(r"\+?[0-9][0-9 \-]{3,30}")


def normalised_number(raw: str | None) -> str | None:
    """`To` in E.164: Alibaba writes it as digits without the "+" (`85251230001`). A value phonenumbers cannot
    read as a possible number is kept as sent."""
    if not raw:
        return None
    if not _DIALLABLE.fullmatch(raw):
        return raw
    try:
        number = phonenumbers.parse(raw if raw.startswith("+") else "+" + raw, None)
    except phonenumbers.NumberParseException:
        return raw
    if not phonenumbers.is_possible_number(number):
        return raw
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _json_array(body: bytes) -> list[Any]:
    try:
        payload = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ReceiptBodyInvalid("the body is not JSON") from None
    if not isinstance(payload, list):
        raise ReceiptBodyInvalid("the body is not a JSON array of reports")
    return payload


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _refusal(index: int, error: ValidationError) -> str:
    """`item <i>: <field>: <rule>` for each broken rule; pydantic's messages never quote the input."""
    rules = []
    for detail in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in detail["loc"]) or "(item)"
        rules.append(f"{field}: {detail['msg']}")
    return f"item {index}: " + "; ".join(rules)
