"""The Tencent Cloud SMS client: SendMultiGlobalSms (API 3.0, version 2021-01-11) over a signed httpx POST.

One call carries up to 200 recipients, each with its own template, parameters, sender id and SessionContext (our
message id, echoed in the results and in delivery receipts as `ext`). Results come per recipient in
SendMultiStatusSet; a top-level `Response.Error` (with HTTP 200) fails every recipient of the call.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import httpx
from pydantic import ConfigDict, Field, SecretStr, ValidationError, field_validator

from globesms.cookieless import CookielessClient
from globesms.errors import ErrorCategory, InvalidProviderRequest, ProviderCallCode, ProviderError
from globesms.models.base import Model
from globesms.models.outbound import OutboundSms, ProviderName, SendOutcome
from globesms.models.receipts import StatusAnswer, StatusQueryFailed
from globesms.models.records import MessageRecord
from globesms.ports import PlannedCall
from globesms.providers.http_client import HttpClientOwner, call_timeout
from globesms.providers.settings import (
    CONNECT_TIMEOUT_MEANING,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    HTTP_TIMEOUT_VARIABLES,
    MAX_CONNECT_TIMEOUT,
    MAX_READ_TIMEOUT,
    READ_TIMEOUT_MEANING,
    load_settings,
)
from globesms.providers.tencent import queries, wire
from globesms.providers.tencent.errors import OK_CODE, category_for_unreadable_response, classify
from globesms.providers.tencent.signer import JSON_CONTENT_TYPE, Tc3Signer
from globesms.providers.transport import transport_error
from globesms.tls import verifying_context

DEFAULT_ENDPOINT = "https://sms.intl.tencentcloudapi.com"
DEFAULT_REGION = "ap-singapore"

#: X-TC-Language picks the language of error messages; English reads best in our records.
MESSAGE_LANGUAGE = "en-US"


class TencentSettings(Model):
    # hide_input_in_errors: a "missing field" error would otherwise print every other value, the secret included.
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    endpoint: str = Field(DEFAULT_ENDPOINT, description="Tencent Cloud SMS base URL (the local stack: its emulator)")
    secret_id: str = Field(min_length=1, description="Tencent Cloud SecretId")
    secret_key: SecretStr = Field(min_length=1, description="Tencent Cloud SecretKey")
    sdk_app_id: str = Field(pattern=r"^[0-9]+$", description="the SMS application's SdkAppId (digits)")
    region: str = Field(DEFAULT_REGION, description="the region SendMultiGlobalSms is called in")
    connect_timeout: float = Field(
        default=DEFAULT_CONNECT_TIMEOUT, gt=0, le=MAX_CONNECT_TIMEOUT, description=CONNECT_TIMEOUT_MEANING
    )
    read_timeout: float = Field(
        default=DEFAULT_READ_TIMEOUT, gt=0, le=MAX_READ_TIMEOUT, description=READ_TIMEOUT_MEANING
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_a_base_url(cls, value: str) -> str:
        url = httpx.URL(value)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an http(s) URL with a host")
        if url.path not in ("", "/") or url.query:
            raise ValueError("must be a base URL: API 3.0 always posts to '/'")
        return value

    @field_validator("secret_id", "secret_key")
    @classmethod
    def _no_surrounding_whitespace(cls, value: str | SecretStr) -> str | SecretStr:
        # A pasted key with a stray space or newline would sign "correctly" and be refused as a bad signature.
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text.strip() != text:
            raise ValueError("must not start or end with whitespace")
        return value

    @field_validator("region")
    @classmethod
    def _region_is_served(cls, value: str) -> str:
        if value not in wire.REGIONS:
            raise ValueError(f"SendMultiGlobalSms is served in {sorted(wire.REGIONS)} only")
        return value

    @property
    def host(self) -> str:
        """The Host header and the signed host: the endpoint's host, with its port only when it is not the
        scheme's default (httpx drops a default port, so `https://h:443` signs as `h`, as the SDK does)."""
        url = httpx.URL(self.endpoint)
        host = f"[{url.host}]" if ":" in url.host else url.host  # an IPv6 literal keeps its brackets
        return host if url.port is None else f"{host}:{url.port}"

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> TencentSettings:
        """Unset or blank variables fall back to the defaults; raises ValueError naming each variable that is
        missing or invalid (never showing a value)."""
        return load_settings(cls, env, ENVIRONMENT_VARIABLES)


#: Settings field -> the environment variable it is read from.
ENVIRONMENT_VARIABLES: Mapping[str, str] = {
    "endpoint": "GLOBESMS_TENCENT_ENDPOINT",
    "secret_id": "GLOBESMS_TENCENT_SECRET_ID",
    "secret_key": "GLOBESMS_TENCENT_SECRET_KEY",
    "sdk_app_id": "GLOBESMS_TENCENT_SDK_APP_ID",
    "region": "GLOBESMS_TENCENT_REGION",
    **HTTP_TIMEOUT_VARIABLES,
}


def _trace_id() -> str:
    return str(uuid.uuid4())


class TencentSmsClient(HttpClientOwner[TencentSettings]):
    """`Provider` for Tencent Cloud. `clock` gives unix seconds for X-TC-Timestamp; `nonce` gives the per-call
    X-TC-TraceId (TC3 signs no nonce; the trace id only helps Tencent support find a call)."""

    name = ProviderName.TENCENT
    max_recipients_per_call = wire.MAX_RECIPIENTS_PER_CALL

    def __init__(
        self,
        settings: TencentSettings,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = _trace_id,
    ) -> None:
        self.settings = settings
        self._owns_http = http is None
        self._http = http if http is not None else CookielessClient(verify=verifying_context())
        self._clock = clock
        self._nonce = nonce
        self._url = httpx.URL(settings.endpoint).join("/")
        self._signer = Tc3Signer(
            secret_id=settings.secret_id, secret_key=settings.secret_key, service=wire.SERVICE, host=settings.host
        )
        # Explicit on every request, so an injected client's own defaults never leave a call without timeouts.
        self._timeout = call_timeout(settings.connect_timeout, settings.read_timeout).as_dict()
        self._static_headers = {
            "Content-Type": JSON_CONTENT_TYPE,
            "Host": settings.host,
            "X-TC-Action": wire.ACTION,
            "X-TC-Version": wire.API_VERSION,
            "X-TC-Region": settings.region,
            "X-TC-Language": MESSAGE_LANGUAGE,
        }

    def __repr__(self) -> str:
        return f"TencentSmsClient(endpoint={self.settings.endpoint!r}, region={self.settings.region!r})"

    def check(self, message: OutboundSms) -> InvalidProviderRequest | None:
        """The rule this message breaks, if any: the same rules `send` refuses a call for."""
        return wire.message_violation(message)

    def build_request(self, messages: Sequence[OutboundSms]) -> httpx.Request:
        """Validate, serialise and sign one call; raises InvalidProviderRequest before anything is sent."""
        wire.check_batch(messages)
        body = wire.request_body(self.settings.sdk_app_id, messages)
        timestamp = int(self._clock())
        headers = dict(self._static_headers)
        headers["X-TC-Timestamp"] = str(timestamp)
        headers["X-TC-TraceId"] = self._nonce()
        headers["Authorization"] = self._signer.authorization(body, timestamp)
        return httpx.Request("POST", self._url, headers=headers, content=body, extensions={"timeout": self._timeout})

    def _signed_call(self, action: str, body: bytes) -> httpx.Response:
        """A signed call of another action than the send (the status pulls): the same signer and headers."""
        timestamp = int(self._clock())
        headers = dict(self._static_headers)
        headers["X-TC-Action"] = action
        headers["X-TC-Timestamp"] = str(timestamp)
        headers["X-TC-TraceId"] = self._nonce()
        headers["Authorization"] = self._signer.authorization(body, timestamp)
        request = httpx.Request("POST", self._url, headers=headers, content=body, extensions={"timeout": self._timeout})
        try:
            return self._http.send(request)
        except httpx.HTTPError as exc:
            raise StatusQueryFailed(transport_error(exc).code) from None

    def pull_status(self, limit: int = queries.MAX_PULL_LIMIT) -> list[queries.PulledStatus]:
        """PullSmsSendStatus: the account's next statuses (each is given once). Raises StatusQueryFailed."""
        body = json.dumps({"Limit": limit, "SmsSdkAppId": self.settings.sdk_app_id}).encode()
        response = self._signed_call(queries.PULL, body)
        return queries.pulled_statuses(response.status_code, response.content)

    def pull_status_by_phone_number(
        self, phone_number: str, begin: int, end: int, *, offset: int = 0, limit: int = queries.MAX_PULL_LIMIT
    ) -> list[queries.PulledStatus]:
        """PullSmsSendStatusByPhoneNumber: one number's statuses from `begin` to `end` (Unix seconds). Raises
        StatusQueryFailed."""
        fields = {
            "BeginTime": begin,
            "Offset": offset,
            "Limit": limit,
            "PhoneNumber": phone_number,
            "SmsSdkAppId": self.settings.sdk_app_id,
            "EndTime": end,
        }
        response = self._signed_call(queries.PULL_BY_PHONE_NUMBER, json.dumps(fields).encode())
        return queries.pulled_statuses(response.status_code, response.content)

    status_query_operation = queries.PULL_BY_PHONE_NUMBER

    def query_status(self, record: MessageRecord, *, now: datetime) -> StatusAnswer:
        """`ports.StatusQuery`: the number's statuses since just before the send, matched by SerialNo."""
        if not record.provider_message_id:
            raise StatusQueryFailed("NO_PROVIDER_MESSAGE_ID")
        end = int(now.timestamp())
        submitted = datetime.fromisoformat(record.submitted_at or record.created_at).timestamp()
        begin = max(int(submitted) - 60, end - queries.MAX_LOOKBACK_SECONDS)
        statuses = self.pull_status_by_phone_number(record.to, begin, end)
        return queries.answer_for(statuses, record.provider_message_id)

    def plan(self, messages: Sequence[OutboundSms]) -> list[PlannedCall]:
        """`send` makes one SendMultiGlobalSms call for all its messages (none for none); raises
        InvalidProviderRequest as `send` does."""
        if not messages:
            return []
        wire.check_batch(messages)
        return [PlannedCall(wire.ACTION, tuple(range(len(messages))))]

    def send(self, messages: Sequence[OutboundSms], *, plan: Sequence[PlannedCall] | None = None) -> list[SendOutcome]:
        """One outcome per message, in input order. Raises InvalidProviderRequest before sending anything: for more
        than 200 messages, a message id used twice, the first message that `check` refuses, or a `plan` that is
        not `plan(messages)` (the one call there is)."""
        if not messages:
            return []
        if plan is not None and list(plan) != [PlannedCall(wire.ACTION, tuple(range(len(messages))))]:
            raise InvalidProviderRequest("plan", f"one {wire.ACTION} call carries all the messages of a send")
        request = self.build_request(messages)
        try:
            response = self._http.send(request)
        except httpx.HTTPError as exc:
            return _fail_all(messages, transport_error(exc))
        return outcomes_from_response(messages, response.status_code, response.content)


def outcomes_from_response(messages: Sequence[OutboundSms], http_status: int, body: bytes) -> list[SendOutcome]:
    try:
        result = wire.ResponseEnvelope.model_validate_json(body).response
    except ValidationError:
        error = ProviderError(
            category_for_unreadable_response(http_status),
            ProviderCallCode.MALFORMED_RESPONSE,
            f"HTTP {http_status}: not a SendMultiGlobalSms response",
            http_status,
        )
        return _fail_all(messages, error)
    if result.error is not None:
        error = ProviderError(
            classify(result.error.code, http_status), result.error.code, result.error.message, http_status
        )
        return _fail_all(messages, error)
    return outcomes_from_statuses(messages, result.send_multi_status_set or [], result.request_id, http_status)


def outcomes_from_statuses(
    messages: Sequence[OutboundSms], statuses: Sequence[wire.SendMultiStatus], request_id: str, http_status: int
) -> list[SendOutcome]:
    """Match each recipient to its status by the echoed SessionContext (our message id) and its number; a status
    without one is taken by position if it names the same number. A recipient left without a status may have been
    sent; one given two statuses, or a status naming another number, has no outcome we can read either (taken as a
    refusal it would be sent again, taken as a success it could be lost): unknown, for its receipt to settle."""
    by_context: dict[str, wire.SendMultiStatus | None] = {}
    for s in statuses:
        if s.session_context:
            by_context[s.session_context] = None if s.session_context in by_context else s
    outcomes = []
    for index, message in enumerate(messages):
        if message.message_id in by_context:
            status = by_context[message.message_id]
            if status is None or status.phone_number != message.to:
                code = ProviderCallCode.CONFLICTING_RESULTS if status is None else ProviderCallCode.MISSING_RESULT
                outcomes.append(_unknown(message, code, "no status of its own for this recipient", http_status))
                continue
        else:
            status = None
            if index < len(statuses):
                positional = statuses[index]
                if not positional.session_context and positional.phone_number == message.to:
                    status = positional
        if status is None:
            missing = ProviderCallCode.MISSING_RESULT
            outcomes.append(_unknown(message, missing, "no status for this recipient", http_status))
        else:
            outcomes.append(_outcome(message, status, request_id, http_status))
    return outcomes


def _unknown(message: OutboundSms, code: ProviderCallCode, text: str, http_status: int) -> SendOutcome:
    return SendOutcome(message.message_id, error=ProviderError(ErrorCategory.UNKNOWN_OUTCOME, code, text, http_status))


def _outcome(message: OutboundSms, status: wire.SendMultiStatus, request_id: str, http_status: int) -> SendOutcome:
    extra = {"request_id": request_id, "fee": str(status.fee), "iso_code": status.iso_code}
    if status.code != OK_CODE:
        error = ProviderError(classify(status.code, http_status), status.code, status.message, http_status)
        return SendOutcome(message.message_id, error=error, extra=extra)
    if not status.serial_no:
        # Sent, but without the id receipts are keyed on: record it as unknown rather than pretend either way.
        error = ProviderError(
            ErrorCategory.UNKNOWN_OUTCOME, ProviderCallCode.MISSING_SERIAL_NO, "Ok without a SerialNo", http_status
        )
        return SendOutcome(message.message_id, error=error, extra=extra)
    return SendOutcome(
        message.message_id, provider_message_id=status.serial_no, segments=status.fee or None, extra=extra
    )


def _fail_all(messages: Sequence[OutboundSms], error: ProviderError) -> list[SendOutcome]:
    return [SendOutcome(m.message_id, error=error) for m in messages]
