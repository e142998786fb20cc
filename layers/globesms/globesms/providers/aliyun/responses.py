"""What Alibaba answers, as pydantic models: every answer is validated before the client believes it."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from globesms.models.base import Model
from globesms.providers.aliyun.errors import OK


def _json_array_string(value: Any) -> Any:
    # The batch answer carries MessageIdList / FailedList as JSON arrays inside *strings* ("[\"1\",\"2\"]").
    # Take a real array as well: it says the same thing, and refusing it would only turn a sent message into an
    # unknown outcome.
    if isinstance(value, str):
        return json.loads(value) if value.strip() else []
    return value


JsonStringList = Annotated[list[str], BeforeValidator(_json_array_string)]


class _AliyunModel(Model):
    # Ids stripped as receipts and queries give them back: " m1" was stored as sent, and a receipt for "m1" matched
    # nothing; a MessageId of spaces alone is then no id (a review).
    model_config = ConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, coerce_numbers_to_str=True, str_strip_whitespace=True
    )


class NumberDetail(_AliyunModel):
    carrier: str | None = Field(default=None, alias="Carrier")
    region: str | None = Field(default=None, alias="Region")
    country: str | None = Field(default=None, alias="Country")


class SendMessageToGlobeResponse(_AliyunModel):
    response_code: str = Field(alias="ResponseCode", min_length=1)
    response_description: str = Field(default="", alias="ResponseDescription")
    request_id: str | None = Field(default=None, alias="RequestId")
    message_id: str | None = Field(default=None, alias="MessageId")
    segments: int | None = Field(default=None, alias="Segments", ge=0)  # sent as a string ("1")
    to: str | None = Field(default=None, alias="To")
    sender: str | None = Field(default=None, alias="From")
    number_detail: NumberDetail | None = Field(default=None, alias="NumberDetail")

    @model_validator(mode="after")
    def _accepted_has_an_id(self) -> SendMessageToGlobeResponse:
        if self.response_code == OK and not self.message_id:
            raise ValueError("ResponseCode OK without a MessageId")
        return self


class BatchSendMessageToGlobeResponse(_AliyunModel):
    response_code: str = Field(alias="ResponseCode", min_length=1)
    response_description: str = Field(default="", alias="ResponseDescription")
    request_id: str | None = Field(default=None, alias="RequestId")
    sender: str | None = Field(default=None, alias="From")
    success_count: int | None = Field(default=None, alias="SuccessCount", ge=0)  # a string on the wire
    message_ids: JsonStringList = Field(default_factory=list, alias="MessageIdList")
    failed_numbers: JsonStringList = Field(default_factory=list, alias="FailedList")


class GatewayError(_AliyunModel):
    """The gateway's error body (signature, keys, flow control): HTTP 4xx/5xx with Code/Message/RequestId."""

    code: str = Field(alias="Code", min_length=1)
    message: str = Field(default="", alias="Message")
    request_id: str | None = Field(default=None, alias="RequestId")
