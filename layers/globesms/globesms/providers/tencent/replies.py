"""Tencent Cloud SMS replies (the console's "SMS reply" callback).

One JSON *object* per push: `{"extend": "", "mobile": "13800138000", "nationcode": "86", "sign": "<signature>",
"text": "TD", "time": 1544408200}` (`time`: Unix seconds). Answer `{"result": 0, "errmsg": "OK"}` (`REPLY_ACK`).
Tencent gives a reply no id of its own: the number, the time and the text together identify it (a push repeated by
Tencent is recognised; the same text from the same number in the same second is one reply).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from globesms.domain.clock import iso
from globesms.models.base import Model
from globesms.models.outbound import ProviderName
from globesms.replies.models import (
    InboundReply,
    ParsedReplies,
    ReplyBodyInvalid,
    bounded_text,
    field_keys,
    one_value_each,
    read_items,
    read_json,
    reply_number,
)

REPLY_ACK: Final = {"result": 0, "errmsg": "OK"}


class TencentReply(Model):
    model_config = ConfigDict(extra="ignore", frozen=True)

    nationcode: str = Field(pattern=r"^\+?[0-9]{1,4}$")
    mobile: str = Field(pattern=r"^[0-9]{4,15}$")
    text: str = Field(max_length=10_000)
    time: int = Field(ge=0, le=32_503_680_000)  # Unix seconds, before the year 3000
    extend: str | None = Field(default=None, max_length=64)
    sign: str | None = Field(default=None, max_length=64)

    @field_validator("nationcode", "mobile", mode="before")
    @classmethod
    def _digits_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("mobile", mode="after")
    @classmethod
    def _a_valid_number(cls, value: str, info: ValidationInfo) -> str:
        nationcode = info.data.get("nationcode")
        if nationcode is not None:
            reply_number(nationcode.lstrip("+") + value)  # raises ValueError naming the rule
        return value

    @field_validator("text", mode="before")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        return bounded_text(value)

    def reply(self) -> InboundReply:
        number = reply_number(self.nationcode.lstrip("+") + self.mobile)
        return InboundReply(
            provider=ProviderName.TENCENT,
            from_number=number,
            to=self.extend or self.sign or None,
            text=self.text,
            sent_at=iso(datetime.fromtimestamp(self.time, UTC)),
            provider_ref=f"{number}|{self.time}|{self.text}",
        )


_one_value_each: Final = one_value_each(field_keys(TencentReply))


def parse_replies(body: bytes, content_type: str = "") -> ParsedReplies:
    payload = read_json(body, object_pairs_hook=_one_value_each)
    if not isinstance(payload, dict):
        raise ReplyBodyInvalid("the body is not a JSON object (Tencent pushes one reply per request)")
    return read_items([payload], lambda item: TencentReply.model_validate(item).reply())
