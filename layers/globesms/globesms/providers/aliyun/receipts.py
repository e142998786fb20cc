"""Alibaba's delivery receipts for the global API (HTTP push configured in the console).

The push is a JSON *array* of reports; each report carries `To`, `Status` ("1" delivered, "2" failed, "6" expired),
`MessageId`, `TaskId`, `SmsSize`, `SendDate`, `ReceiveDate` (`Thu, 25 Nov 2021 10:27:00 +0800`), `ErrorCode`,
`ErrorDescription`. Answer HTTP 200 with `{"code":0,"msg":...}` (`RECEIPT_ACK`) or Alibaba pushes again; pushes can
repeat, so whoever stores them must deduplicate. (The lower-case `phone_number`/`biz_id`/`out_id` shape belongs to
the mainland API, not this one.)

Correlation: `MessageId` is the provider message id the send returned (for a batch, the recipient's entry of
`MessageIdList`); `TaskId` is our message id for a single send, or `<first message id>+<count>` for a batch call
(see `client.batch_task_id`), which with `To` also names one recipient because a batch call never repeats a number.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from globesms.status import Status

RECEIPT_STATUS: dict[str, Status] = {"1": Status.DELIVERED, "2": Status.UNDELIVERED, "6": Status.EXPIRED}
RECEIPT_ACK = {"code": 0, "msg": "success"}


class AliyunReceipt(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, coerce_numbers_to_str=True)

    to: str = Field(alias="To")
    status: str = Field(alias="Status")
    message_id: str = Field(alias="MessageId", min_length=1)
    task_id: str | None = Field(default=None, alias="TaskId")
    sms_size: int | None = Field(default=None, alias="SmsSize")
    send_date: str | None = Field(default=None, alias="SendDate")
    receive_date: str | None = Field(default=None, alias="ReceiveDate")
    error_code: str | None = Field(default=None, alias="ErrorCode")
    error_description: str | None = Field(default=None, alias="ErrorDescription")

    @property
    def outcome(self) -> Status | None:
        """DELIVERED / UNDELIVERED / EXPIRED, or None for a status value Alibaba has not documented."""
        return RECEIPT_STATUS.get(self.status)


RECEIPTS = TypeAdapter(list[AliyunReceipt])


def parse_receipts(body: bytes | str) -> list[AliyunReceipt]:
    """Validate one push body (raises pydantic.ValidationError when it is not a JSON array of reports)."""
    return RECEIPTS.validate_json(body)
