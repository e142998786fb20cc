"""Alibaba's status query, QueryMessage (dysmsapi 2018-05-01, one `MessageId` per call, 300 calls/s per account):
what its answer means for a message past its receipt deadline (pure; the call itself is `AliyunClient.query_message`).

Answer fields: `ResponseCode` (`OK`), `Status`, `ErrorCode` (`DELIVERED` on delivery, else the carrier's code),
`ErrorDescription`, `To`, `SendDate`, `ReceiveDate`, `MessageId`, `NumberDetail`, `RequestId`. Every field but
`ResponseCode` may be missing, and fields we do not know are ignored (never a reason to refuse an answer).

Alibaba's own pages contradict each other on `Status`: one says 1 delivered, 2 failed, 3 delivering; the SDK's
sample pages say 1 submitted, 2 failed, 3 delivered. So `ErrorCode` decides first: `DELIVERED` is delivered.
Only where both readings agree does `Status` decide alone: 2 is a failure (UNDELIVERED, or EXPIRED when the code
says so; 6 is EXPIRED as in the pushed receipts). A 1 or 3 without `ErrorCode DELIVERED` is read as "still on its
way" (pending): under one of the two readings it is.

An answer that is not JSON, fails validation, or is the gateway's error (`Code`: signature, throttling, keys) is
`StatusQueryFailed`, asked again later. A readable business answer other than `OK` (say, an id Alibaba does not
know) is no status at all: pending, so after the last try the message ends EXPIRED / NO_RECEIPT.
"""

from __future__ import annotations

import json
from typing import Any, Final

from pydantic import ConfigDict, Field, ValidationError

from globesms.domain.status import Status
from globesms.errors import ProviderCallCode
from globesms.models.base import Model
from globesms.models.outbound import ProviderName
from globesms.models.receipts import DeliveryReport, StatusAnswer, StatusQueryFailed
from globesms.providers import receipt_parsing as parsing
from globesms.providers.aliyun.errors import OK
from globesms.validation import describe

QUERY_MESSAGE: Final = "QueryMessage"
DELIVERED_CODE: Final = "DELIVERED"


class QueryMessageResponse(Model):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, coerce_numbers_to_str=True)

    response_code: str = Field(alias="ResponseCode", min_length=1, max_length=128)
    response_description: str | None = Field(default=None, alias="ResponseDescription")
    message_id: str | None = Field(default=None, alias="MessageId", max_length=128)
    status: str | None = Field(default=None, alias="Status", max_length=32)
    error_code: str | None = Field(default=None, alias="ErrorCode", max_length=128)
    error_description: str | None = Field(default=None, alias="ErrorDescription")
    to: str | None = Field(default=None, alias="To", max_length=32)
    receive_date: str | None = Field(default=None, alias="ReceiveDate", max_length=64)
    request_id: str | None = Field(default=None, alias="RequestId")


def outcome(status: str | None, error_code: str | None) -> Status | None:
    """DELIVERED / UNDELIVERED / EXPIRED, or None for "still on its way" (see the module's note on `Status`)."""
    code = (error_code or "").strip().upper()
    if code == DELIVERED_CODE:
        return Status.DELIVERED
    if status == "6" or (status == "2" and "EXPIRED" in code):
        return Status.EXPIRED
    if status == "2":
        return Status.UNDELIVERED
    return None


def answer(http_status: int, body: bytes, provider_message_id: str) -> StatusAnswer:
    """The meaning of one QueryMessage answer; raises StatusQueryFailed for one that cannot be read."""
    try:
        payload: Any = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise StatusQueryFailed(ProviderCallCode.MALFORMED_RESPONSE, f"HTTP {http_status}: not JSON") from None
    if not isinstance(payload, dict) or "ResponseCode" not in payload:
        code = payload.get("Code") if isinstance(payload, dict) else None
        raise StatusQueryFailed(str(code or f"HTTP_{http_status}"), "no ResponseCode in the answer")
    try:
        parsed = QueryMessageResponse.model_validate(payload)
    except ValidationError as exc:
        raise StatusQueryFailed(ProviderCallCode.MALFORMED_RESPONSE, describe(exc, default="answer", most=1)) from None
    if parsed.response_code != OK:
        return StatusAnswer(pending=True)
    if parsed.message_id and parsed.message_id != provider_message_id:
        # Not this message's status (applied, it would end it with another's): asked again later.
        raise StatusQueryFailed(ProviderCallCode.ANOTHER_MESSAGE, "the answer names another MessageId")
    status = outcome(parsed.status, parsed.error_code)
    if status is None:
        return StatusAnswer(pending=True)
    report = DeliveryReport(
        provider=ProviderName.ALIYUN,
        provider_message_id=parsed.message_id or provider_message_id,
        status=status,
        raw_status=parsed.status or "",
        error_code=parsed.error_code,
        description=parsing.bounded_description(parsed.error_description),
        to=parsing.normalised_number(parsed.to),
        provider_time=parsed.receive_date,
        kind="pulled",
    )
    return StatusAnswer(report=report)
