"""Huawei Message & SMS wire shapes (pydantic v2): the batchSendDiffSms request and response, the gateway's error
body, and the status reports Huawei pushes to `statusCallback`.

The client builds its request body as plain dicts on the hot path (see `client.py`); the request models here are
what the emulator validates incoming calls with, so a client body that drifts from the documented shape fails
there.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from globesms.models.base import Model

#: Numbers in one batchSendDiffSms call: more fails the whole call.
MAX_NUMBERS_PER_CALL = 500
#: `extend`: 1-128 characters, "Spaces and braces {} are not allowed" (any whitespace is refused here).
EXTEND_PATTERN = r"^[^\s{}]{1,128}$"


class _Wire(Model):
    model_config = ConfigDict(populate_by_name=True, frozen=True)


# ------------------------------------------------------------------------------------------------------ request


class SmsContent(_Wire):
    model_config = ConfigDict(extra="forbid")

    to: list[str] = Field(min_length=1)
    template_id: str = Field(alias="templateId", min_length=1, max_length=32)
    template_paras: list[str] | None = Field(default=None, alias="templateParas")
    signature: str | None = Field(default=None, max_length=32)


class BatchSendDiffSmsBody(_Wire):
    model_config = ConfigDict(extra="forbid")

    from_: str = Field(alias="from", min_length=1, max_length=21)
    status_callback: str | None = Field(default=None, alias="statusCallback", min_length=1, max_length=1024)
    extend: str | None = Field(default=None, pattern=EXTEND_PATTERN)
    sms_content: list[SmsContent] = Field(alias="smsContent", min_length=1)


# ----------------------------------------------------------------------------------------------------- response


class SmsId(_Wire):
    """One number's result. `smsMsgId` is the key receipts come back with."""

    origin_to: str = Field(alias="originTo")
    status: str
    sms_msg_id: str | None = Field(default=None, alias="smsMsgId")  # mandatory per docs; checked where used
    from_: str | None = Field(default=None, alias="from")
    create_time: str | None = Field(default=None, alias="createTime")
    country_id: str | None = Field(default=None, alias="countryId")
    total: int | None = Field(default=None, ge=0)  # parts billed: a negative count is no answer to keep


class BatchSendDiffSmsResponse(_Wire):
    code: str = Field(min_length=1)
    description: str = ""
    result: list[SmsId] | None = None


class GatewayError(_Wire):
    """The API gateway's own error body (e.g. throttling, APIG.0308), which has none of the SMS fields."""

    error_code: str = Field(min_length=1)
    error_msg: str = ""
    request_id: str | None = None


# ----------------------------------------------------------------------------------------------- status reports


class StatusReport(_Wire):
    """One status report, as Huawei posts it form-urlencoded to `statusCallback` (one report per request), or as an
    item of `statusReportList` in the batch variant. Every field is a string on the wire."""

    sms_msg_id: str = Field(alias="smsMsgId", min_length=1)
    status: str = Field(min_length=1)  # DELIVRD, UNDELIV, EXPIRED, REJECTD, ACCEPTD, UNKNOWN, DELETED, E2000xx, ...
    total: str | None = None
    sequence: str | None = None  # part number of a long message
    status_desc: str | None = Field(default=None, alias="statusDesc")
    source: str | None = None  # "1" the SMS platform, "2" the carrier's SMSC
    update_time: str | None = Field(default=None, alias="updateTime")  # UTC, yyyy-MM-dd'T'HH:mm:ss'Z'
    extend: str | None = None
    to: str | None = None
    org_code: str | None = Field(default=None, alias="orgCode")


class BatchStatusReports(_Wire):
    status_report_list: list[StatusReport] = Field(alias="statusReportList", min_length=1, max_length=50)
