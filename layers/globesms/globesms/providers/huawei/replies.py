"""Huawei Cloud SMS replies (上行短信), pushed to the reply URL of a **mainland** SMS application.

Huawei documents the reply URL only for mainland applications; international applications get no replies (say so
to operators: README, docs/consent.md). One reply per request, `application/x-www-form-urlencoded` (as Huawei's
status reports) or a JSON object: `smsMsgId`, `from` (the replying number), `to` (our number), `body` (1-160
characters), `createTime` (ISO 8601, UTC when it names no offset). `smsMsgId` identifies the reply. Huawei reads
only the HTTP status of the answer: `REPLY_ACK` is a plain JSON acknowledgement.

`createTime` is optional (是否必选: 否): Huawei sends it only once the application is set to "接收上行短信回复时间"
in the console. Without it the reply is taken as sent when it first arrived (`replies.record`: a repeat keeps that
time, so it is still a repeat, and its keyword keeps its place in the person's order). Until 2026-12-07 it was
required, and every reply of an application without that setting, a STOP ("R", "TD") among them, was refused and
acknowledged: lost.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl

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

REPLY_ACK: Final = {"result": "OK"}
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"


class HuaweiReply(Model):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    sms_msg_id: str = Field(alias="smsMsgId", min_length=1, max_length=128)
    from_number: str = Field(alias="from")
    to: str | None = Field(default=None, max_length=64)
    body: str = Field(min_length=1, max_length=10_000)
    create_time: datetime | None = Field(default=None, alias="createTime")

    @field_validator("from_number", mode="before")
    @classmethod
    def _a_valid_number(cls, value: Any) -> Any:
        return reply_number(value)

    @field_validator("body", mode="before")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        return bounded_text(value)

    @field_validator("create_time", mode="after")
    @classmethod
    def _utc_when_unsaid(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return in_utc(value if value.tzinfo is not None else value.replace(tzinfo=UTC))

    def reply(self) -> InboundReply:
        return InboundReply(
            provider=ProviderName.HUAWEI,
            from_number=self.from_number,
            to=self.to,
            text=self.body,
            sent_at=None if self.create_time is None else iso(self.create_time),  # none: its first arrival's
            provider_ref=self.sms_msg_id,
        )


#: Each key a reply's field is read from (its name in Huawei's push, and the model's own: `populate_by_name`), with
#: that field. A field given twice, under either, is refused: which value is the reply's is anyone's guess (until
#: 2026-12-06 the last won, so `from=<number>&...&from=<another>` put the other number on the opt-out list).
_one_value_each: Final = one_value_each(field_keys(HuaweiReply))
_MAX_FORM_FIELDS: Final = 50  # a reply has five; parse_qsl stops counting there


def parse_replies(body: bytes, content_type: str = "") -> ParsedReplies:
    if content_type.split(";")[0].strip().lower() == FORM_CONTENT_TYPE:
        payload: Any = _form(body)
    else:
        payload = read_json(body, object_pairs_hook=_one_value_each)
    if not isinstance(payload, dict):
        raise ReplyBodyInvalid("the body is not one reply (a form or a JSON object)")
    return read_items([payload], lambda item: HuaweiReply.model_validate(item).reply())


def _form(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=_MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise ReplyBodyInvalid("the body is not a form (or has more than 50 fields)") from None
    return _one_value_each(pairs)
