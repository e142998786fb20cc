"""Tencent's status pulls: PullSmsSendStatus (the account's next statuses, each given once) and
PullSmsSendStatusByPhoneNumber (one number's statuses in a time range), API 3.0 version 2021-01-11, TC3-signed like
the send (`TencentSmsClient.pull_status`, `.pull_status_by_phone_number`). They return statuses only when the SMS
application's **pull mode** is switched on in the console; with it off every pull is empty, and a message past its
deadline ends EXPIRED / NO_RECEIPT after its last try.

Each status: `UserReceiveTime` (Unix seconds), `CountryCode`, `SubscriberNumber`, `PhoneNumber`, `SerialNo` (the
send's provider message id), `ReportStatus` (`SUCCESS` / `FAIL`), `Description`, `SessionContext`, and from
2026-12-01 `SubError` / `SubErrorDesc` (Tencent's finer error code). Every field but `SerialNo` and `ReportStatus`
may be missing, and fields we do not know are ignored: a new field never breaks the parser. `SubError` is kept in
the message's history and its error.
"""

from __future__ import annotations

from typing import Final

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_pascal

from globesms.errors import ProviderCallCode
from globesms.models.base import Model
from globesms.models.outbound import ProviderName
from globesms.models.receipts import DeliveryReport, StatusAnswer, StatusQueryFailed
from globesms.providers import receipt_parsing as parsing
from globesms.providers.tencent.receipts import echo_of, outcome
from globesms.providers.tencent.wire import ApiError
from globesms.validation import describe

PULL: Final = "PullSmsSendStatus"
PULL_BY_PHONE_NUMBER: Final = "PullSmsSendStatusByPhoneNumber"
#: "Limit: the maximum number of pulled entries; max: 100", and Offset is "fixed to 0": a pull cannot be paged. A
#: number with more than 100 statuses between just before the send and now (an alerting or shared test number) may
#: not show the message's among them; the query then reads pending, and the message ends EXPIRED / NO_RECEIPT after
#: its extension. Paging by moving BeginTime would need to know whether Tencent filters the window on the send time
#: or the receipt time, which its page does not say; left as it is (a review, 2026-12-07).
MAX_PULL_LIMIT: Final = 100
MAX_LOOKBACK_SECONDS: Final = 7 * 86_400  # "BeginTime: at most 7 days before now"


class PulledStatus(Model):
    model_config = ConfigDict(
        alias_generator=to_pascal, frozen=True, extra="ignore", coerce_numbers_to_str=True, str_strip_whitespace=True
    )

    user_receive_time: str | None = Field(default=None, max_length=32)
    country_code: str | None = Field(default=None, max_length=8)
    subscriber_number: str | None = Field(default=None, max_length=32)
    phone_number: str | None = Field(default=None, max_length=32)
    serial_no: str = Field(min_length=1, max_length=128)
    report_status: str = Field(min_length=1, max_length=32)
    description: str | None = None
    session_context: str | None = None
    sub_error: str | None = Field(default=None, max_length=128)
    sub_error_desc: str | None = None

    _blank_is_absent = field_validator(
        "user_receive_time", "country_code", "subscriber_number", "phone_number", "description", "sub_error",
        "sub_error_desc", mode="before",
    )(parsing.blank_is_absent)  # fmt: skip
    _echo_text = field_validator("session_context", mode="before")(parsing.echo_text)

    def report(self) -> DeliveryReport:
        # A pulled status has no `errmsg`: the finer SubError stands in for it when Tencent sends one.
        return DeliveryReport(
            provider=ProviderName.TENCENT,
            provider_message_id=self.serial_no,
            status=outcome(self.report_status, self.sub_error, self.description),
            raw_status=self.report_status,
            error_code=self.sub_error,
            description=parsing.bounded_description(self.description),
            to=parsing.normalised_number(self.phone_number),
            echo=echo_of(self.session_context),
            provider_time=self.user_receive_time,
            sub_error=self.sub_error,
            sub_error_desc=parsing.bounded_description(self.sub_error_desc),
            kind="pulled",
        )


class _PullResult(Model):
    model_config = ConfigDict(alias_generator=to_pascal, frozen=True, extra="ignore")

    request_id: str = ""
    error: ApiError | None = None
    pull_sms_send_status_set: list[PulledStatus] | None = None

    @model_validator(mode="after")
    def _error_or_statuses(self) -> _PullResult:
        if self.error is None and self.pull_sms_send_status_set is None:
            raise ValueError("neither Error nor PullSmsSendStatusSet")
        return self


class _Envelope(Model):
    model_config = ConfigDict(alias_generator=to_pascal, frozen=True, extra="ignore")

    response: _PullResult


def pulled_statuses(http_status: int, body: bytes) -> list[PulledStatus]:
    """The statuses of one pull's answer; raises StatusQueryFailed for an error answer or one that cannot be read."""
    try:
        result = _Envelope.model_validate_json(body).response
    except ValidationError as exc:
        raise StatusQueryFailed(
            ProviderCallCode.MALFORMED_RESPONSE, f"HTTP {http_status}: {describe(exc, most=1)}"
        ) from None
    if result.error is not None:
        raise StatusQueryFailed(result.error.code, result.error.message)
    return list(result.pull_sms_send_status_set or [])


def answer_for(statuses: list[PulledStatus], serial_no: str) -> StatusAnswer:
    """What a number's pulled statuses say about one message (by its SerialNo): the final one, if any; else pending."""
    for status in statuses:
        if status.serial_no == serial_no:
            report = status.report()
            if report.status is not None:
                return StatusAnswer(report=report)
    return StatusAnswer(pending=True)
