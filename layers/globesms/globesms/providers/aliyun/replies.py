"""Alibaba Cloud SMS replies ("SmsUp", the HTTP batch push enabled in the console with a receiving URL).

A JSON *array* of `{"phone_number": "8613800138000", "send_time": "2017-09-01 00:00:00", "content": "TD",
"sign_name": "<signature>", "dest_code": "1234", "sequence_id": 1234}`; `sign_name` is missing in the newer page,
and `sequence_id` is a number in one page and a string in another: both are read. `send_time` is Beijing time
(UTC+8), as in Alibaba's receipts. Answer HTTP 200 `{"code": 0, "msg": "OK"}` (`REPLY_ACK`).

Alibaba pushes again after 1, 5 and 10 minutes (a newer page: up to 10 times) when not acknowledged, so duplicates
are normal: `sequence_id`, the number and the time identify a reply, and the reply store keeps it once.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Final

from pydantic import ConfigDict, Field, field_validator

from globesms.domain.clock import iso
from globesms.models.base import Model
from globesms.models.outbound import ProviderName
from globesms.replies.models import (
    InboundReply,
    ParsedReplies,
    ReplyBodyInvalid,
    bounded_text,
    field_keys,
    in_utc,
    one_value_each,
    read_items,
    read_json,
    reply_number,
)

REPLY_ACK: Final = {"code": 0, "msg": "OK"}
_BEIJING = timezone(timedelta(hours=8))


class AliyunReply(Model):
    model_config = ConfigDict(extra="ignore", frozen=True)

    phone_number: str
    send_time: datetime
    content: str = Field(max_length=10_000)
    sequence_id: str = Field(min_length=1, max_length=64)
    sign_name: str | None = Field(default=None, max_length=64)
    dest_code: str | None = Field(default=None, max_length=64)

    @field_validator("phone_number", mode="before")
    @classmethod
    def _a_valid_number(cls, value: Any) -> Any:
        return reply_number(value)

    @field_validator("sequence_id", "dest_code", mode="before")
    @classmethod
    def _number_or_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("send_time", mode="before")
    @classmethod
    def _beijing_time(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("must be a time written yyyy-MM-dd HH:mm:ss")
        try:
            beijing = datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=_BEIJING)
        except ValueError:
            raise ValueError("must be a time written yyyy-MM-dd HH:mm:ss") from None
        return in_utc(beijing)

    @field_validator("content", mode="before")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        return bounded_text(value)

    def reply(self) -> InboundReply:
        return InboundReply(
            provider=ProviderName.ALIYUN,
            from_number=self.phone_number,
            to=self.dest_code or self.sign_name,
            text=self.content,
            sent_at=iso(self.send_time),
            # The time as sent (Beijing), as before it was kept in UTC: a stored reply's id does not change.
            provider_ref=f"{self.sequence_id}|{self.phone_number}|{self.send_time.astimezone(_BEIJING).isoformat()}",
        )


_one_value_each: Final = one_value_each(field_keys(AliyunReply))


def parse_replies(body: bytes, content_type: str = "") -> ParsedReplies:
    payload = read_json(body, object_pairs_hook=_one_value_each)
    if not isinstance(payload, list):
        raise ReplyBodyInvalid("the body is not a JSON array of replies")
    return read_items(payload, lambda item: AliyunReply.model_validate(item).reply())
