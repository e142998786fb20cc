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

import re
from typing import Final

from pydantic import ConfigDict, Field, TypeAdapter, field_validator

from globesms.domain.status import Status
from globesms.models.base import Model
from globesms.models.outbound import ProviderName
from globesms.models.receipts import DeliveryReport, EchoRange, ParsedPush
from globesms.providers import receipt_parsing as parsing
from globesms.providers.aliyun.rules import MAX_BATCH_RECIPIENTS
from globesms.providers.receipt_parsing import normalised_number as normalised_number

RECEIPT_STATUS: dict[str, Status] = {"1": Status.DELIVERED, "2": Status.UNDELIVERED, "6": Status.EXPIRED}
ACK: Final = {"code": 0, "msg": "success"}


class AliyunReceipt(Model):
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

    _blank_is_absent = field_validator(
        "to", "sms_size", "send_date", "receive_date", "error_code", "error_description", mode="before"
    )(parsing.blank_is_absent)
    _echo_text = field_validator("task_id", mode="before")(parsing.echo_text)

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
            description=parsing.bounded_description(self.error_description),
            to=normalised_number(self.to),  # Alibaba writes it as digits without the "+" (`85251230001`)
            echo=echo_of(self.task_id),
            provider_time=self.receive_date,
        )


RECEIPTS = TypeAdapter(list[AliyunReceipt])


def parse_receipts(body: bytes | str) -> list[AliyunReceipt]:
    """Validate one push body as a whole (raises pydantic.ValidationError when any report is broken); `parse_push`
    is the forgiving reader the callback uses."""
    return RECEIPTS.validate_json(body)


def parse_push(body: bytes, content_type: str = "", at_most: int | None = None) -> ParsedPush:
    """One push body -> its reports, and a reason for every item that is refused (more than `at_most`: raises
    TooManyReports). The content type is not needed: Alibaba always posts a JSON array."""
    return parsing.read_reports(parsing.read_json_array(body), AliyunReceipt.model_validate, at_most)


# ------------------------------------------------------------------------------------------------------- echo


_BATCH = re.compile(r"[^\s+]{1,128}")
_COUNT = re.compile(r"[1-9][0-9]{0,3}")


def our_message_id(text: str) -> tuple[str, int] | None:
    """(batch_id, seq) when `text` has the shape of our message id (`<batch_id>.<seq:05d>`), else None."""
    return parsing.our_message_id(text, _BATCH)


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
