"""Huawei Cloud Message & SMS client: `POST /sms/batchSendDiffSms/v1`, template messages only.

How one `send` becomes calls
* `from` is per call and a Chinese mainland number (+86) must go out on the mainland channel number (`csms...`)
  with the approved signature, everything else on the international channel (`isms...`); so recipients are split
  by channel, and a channel's recipients that share template id + parameters (+ signature) become one
  `smsContent` entry.
* A number appears at most once per call: Huawei refuses duplicates (E200041), and the per-number results are
  matched back to our recipients by `originTo`. A repeated number goes into a later call.
* A call whose body would pass 64 KB is split in two until each part fits.
Outcomes always come back one per input, in input order, whatever the split.

Carrying our id (`extend`)
`extend` is one value per *call*, echoed in every status report of that call together with `to`. We send the
`message_id` of the call's first recipient (its "anchor"): for a one-recipient call that is exactly the message's
id; for a larger call `(extend, to)` still names exactly one recipient, because a number is never repeated within
a call. Every outcome carries the anchor in `extra["extend"]` so it can be stored next to the message. The primary
correlation key stays the per-number `smsMsgId` (`provider_message_id`); the anchor matters when no `smsMsgId`
came back (read timeout: unknown outcome). One call per recipient would make `extend` our id for every report,
but would spend up to 500 calls (and 500x the account's rate limit) where one suffices, so we do not split for it.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from json.encoder import encode_basestring_ascii as _json_string
from typing import NamedTuple
from urllib.parse import urlsplit

import httpx
from pydantic import ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from globesms.cookieless import CookielessClient
from globesms.domain.clock import utc_now
from globesms.errors import ErrorCategory, InvalidProviderRequest, ProviderCallCode, ProviderError
from globesms.models.base import Model
from globesms.models.outbound import OutboundSms, ProviderName, SendOutcome
from globesms.ports import PlannedCall
from globesms.providers.bulk_numbers import all_plus_digits, joined_numbers, lengths_within
from globesms.providers.http_client import HttpClientOwner
from globesms.providers.huawei import signer
from globesms.providers.huawei.errors import ALL_NUMBERS_FAILED_CODE, SUCCESS_CODE, provider_error
from globesms.providers.huawei.wire import MAX_NUMBERS_PER_CALL, BatchSendDiffSmsResponse, GatewayError, SmsId
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
from globesms.providers.transport import transport_error
from globesms.tls import verifying_context

log = logging.getLogger("globesms.providers.huawei")

DEFAULT_ENDPOINT = "https://smsapi.ap-southeast-1.myhuaweicloud.com:443"
SEND_PATH = "/sms/batchSendDiffSms/v1"
OPERATION = "batchSendDiffSms"  # what Huawei's flow control (and our rate limiter) counts calls under
MAX_NUMBER_LENGTH = 21
MAX_BODY_BYTES = 64 * 1024
MAX_TEMPLATE_ID_LENGTH = 32
MAX_EXTEND_LENGTH = 128
MAINLAND_PREFIX = "+86"
INTERNATIONAL_CHANNEL_PREFIX = "isms"
MAINLAND_CHANNEL_PREFIX = "csms"
_CONTENT_TYPE = "application/json"
_MAX_ESCAPED_CHAR_BYTES = 12  # the most `_json_string` writes for one character: an astral one as two \uXXXX
# A channel number as Huawei's docs show them: the kind ("isms" international, allocated to the application;
# "csms" Chinese mainland, allocated to a signature) then digits, 21 characters at most (the limit of `from`).
_CHANNEL_NUMBER_DIGITS = re.compile(rf"[0-9]{{1,{MAX_NUMBER_LENGTH - len(INTERNATIONAL_CHANNEL_PREFIX)}}}")


def is_channel_number(sender_id: str, kind: str) -> bool:
    """Whether a message's `sender_id` is a Huawei channel number of `kind` (`isms` or `csms`), to be sent as
    `from`.

    The API's `sender_id` is a sender *name* in Alibaba's sense ("Acme", or a numeric id up to 15 digits); Huawei's
    `from` must be a channel number the platform allocated, so an arbitrary sender id would be refused, or worse
    sent from the wrong channel. Only the documented shape counts (`isms100000001`, `csms100000001`): the prefix
    is unambiguous, while a bare number (the docs' older mainland example, `1069...`) could just as well be a
    numeric Alibaba sender id, so such a channel is configured (GLOBESMS_HUAWEI_MAINLAND_SENDER) instead.
    The kind must match the recipient: a `csms` number cannot send abroad nor an `isms` one to the mainland."""
    return sender_id.startswith(kind) and _CHANNEL_NUMBER_DIGITS.fullmatch(sender_id, len(kind)) is not None


class AuthMode(StrEnum):
    WSSE = "wsse"
    AKSK = "aksk"


def _check_http_url(value: str, name: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http(s) URL")
    return value


class HuaweiSettings(Model):
    """What the client needs; `from_environment` reads it from GLOBESMS_HUAWEI_* variables."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    endpoint: str = Field(
        DEFAULT_ENDPOINT, description="the application's access address, scheme://host[:port] (local: its emulator)"
    )
    app_key: str = Field(min_length=1, description="Huawei Cloud application key")
    app_secret: SecretStr = Field(description="Huawei Cloud application secret")
    sender: str = Field(
        min_length=1, max_length=MAX_NUMBER_LENGTH, description="the international channel number (`isms…`)"
    )
    mainland_sender: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NUMBER_LENGTH,
        description="optional: the mainland channel number (`csms…`), with the signature (both or neither); "
        "without them +86 sends fail as `request` errors",
    )
    signature: str | None = Field(
        default=None, min_length=1, max_length=32, description="optional: the approved mainland signature name"
    )
    status_callback: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="the receipt URL every send carries as `statusCallback` (one report per push); unset, Huawei "
        "pushes batches to the application's batch status report address (recommended, docs/deploy.md)",
    )
    auth: AuthMode = Field(AuthMode.WSSE, description="`wsse` or `aksk` (SDK-HMAC-SHA256)")
    connect_timeout: float = Field(
        default=DEFAULT_CONNECT_TIMEOUT, gt=0, le=MAX_CONNECT_TIMEOUT, description=CONNECT_TIMEOUT_MEANING
    )
    read_timeout: float = Field(
        default=DEFAULT_READ_TIMEOUT, gt=0, le=MAX_READ_TIMEOUT, description=READ_TIMEOUT_MEANING
    )

    @field_validator("auth", mode="before")
    @classmethod
    def _auth_any_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_url(cls, value: str) -> str:
        parts = urlsplit(_check_http_url(value, "endpoint"))
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("endpoint is scheme://host[:port][/path], without credentials, query or fragment")
        return value.rstrip("/")

    @field_validator("status_callback")
    @classmethod
    def _callback_is_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value, "status_callback")

    @field_validator("app_secret")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("app_secret must not be empty")
        return value

    @model_validator(mode="after")
    def _mainland_is_all_or_nothing(self) -> HuaweiSettings:
        if (self.mainland_sender is None) != (self.signature is None):
            raise ValueError("mainland sending needs both the mainland channel number and the signature, or neither")
        return self

    @property
    def host(self) -> str:
        """The Host header exactly as written in the endpoint (with `:443` when given): the value we sign is the
        value we send, because httpx would otherwise drop a default port that we had signed."""
        return urlsplit(self.endpoint).netloc


#: Settings field -> the variable it is read from (docs/configuration.md).
ENVIRONMENT_VARIABLES: Mapping[str, str] = {
    "endpoint": "GLOBESMS_HUAWEI_ENDPOINT",
    "app_key": "GLOBESMS_HUAWEI_APP_KEY",
    "app_secret": "GLOBESMS_HUAWEI_APP_SECRET",
    "sender": "GLOBESMS_HUAWEI_SENDER",
    "mainland_sender": "GLOBESMS_HUAWEI_MAINLAND_SENDER",
    "signature": "GLOBESMS_HUAWEI_SIGNATURE",
    "status_callback": "GLOBESMS_HUAWEI_STATUS_CALLBACK",
    "auth": "GLOBESMS_HUAWEI_AUTH",
    **HTTP_TIMEOUT_VARIABLES,
}


def settings_from_environment(env: Mapping[str, str]) -> HuaweiSettings:
    """Raises ValueError naming each variable that is missing or invalid (never showing a value)."""
    return load_settings(HuaweiSettings, env, ENVIRONMENT_VARIABLES)


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """One prepared HTTP call: which inputs it carries (by index), its echo value and its finished body."""

    indices: tuple[int, ...]
    extend: str
    body: bytes


class _Channel(NamedTuple):  # a tuple: hashed in C, once per recipient
    sender: str
    signature: str | None  # set on the mainland channel only


def _random_nonce() -> str:
    return uuid.uuid4().hex


def _number_key(number: str) -> str:
    # Matching `originTo` back to our numbers must not depend on whether the "+" is echoed.
    return number.lstrip("+")


class HuaweiClient(HttpClientOwner[HuaweiSettings]):
    """The `Provider` for Huawei Cloud Message & SMS. One reused httpx.Client per instance, closed by `close()`
    even when it was handed in; never resends."""

    name = ProviderName.HUAWEI
    max_recipients_per_call = MAX_NUMBERS_PER_CALL

    def __init__(
        self,
        settings: HuaweiSettings,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], datetime] = utc_now,
        nonce: Callable[[], str] = _random_nonce,
    ) -> None:
        self.settings = settings
        self._http = http or CookielessClient(
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout), verify=verifying_context()
        )
        self._clock = clock
        self._nonce = nonce
        self._url = settings.endpoint + SEND_PATH
        self._path = urlsplit(self._url).path  # the path actually requested, base path of the endpoint included
        self._host = settings.host
        self._app_key = settings.app_key
        self._secret = settings.app_secret.get_secret_value()
        self._secret_bytes = self._secret.encode("utf-8")
        self._callback_member = (
            "" if settings.status_callback is None else ',"statusCallback":' + _json_string(settings.status_callback)
        )
        self._international = _Channel(settings.sender, None)
        self._mainland = (
            _Channel(settings.mainland_sender, settings.signature) if settings.mainland_sender is not None else None
        )
        # The most a one-recipient body can hold besides its template parameters, for a message that passed
        # `_message_violation`: the JSON frame (under 128 bytes), the callback, and at their longest the channel
        # number, the signature, the number, the echo value and the template id, escaped at most 12 bytes a
        # character by `_json_string` (an astral character is two \uXXXX escapes).
        self._fixed_body_bound = (
            len(self._callback_member)
            + _MAX_ESCAPED_CHAR_BYTES * (2 * MAX_NUMBER_LENGTH + len(settings.signature or ""))
            + _MAX_ESCAPED_CHAR_BYTES * (MAX_EXTEND_LENGTH + MAX_TEMPLATE_ID_LENGTH)
            + 128
        )

    def __repr__(self) -> str:
        return (
            f"HuaweiClient(endpoint={self.settings.endpoint!r}, app_key={self._app_key!r}, auth={self.settings.auth})"
        )

    # ------------------------------------------------------------------------------------------------- sending

    def send(self, messages: Sequence[OutboundSms], *, plan: Sequence[PlannedCall] | None = None) -> list[SendOutcome]:
        """One outcome per input, in input order. Raises InvalidProviderRequest before sending anything, for the
        first input that breaks a rule or for a `plan` other than `plan(messages)` (the calls are Huawei's to cut:
        by channel, repeated numbers and body size, with no alternative)."""
        calls = self.prepare(messages)  # every input is checked before anything is sent
        if plan is not None and [(c.operation, c.indexes) for c in plan] != [(OPERATION, c.indices) for c in calls]:
            raise InvalidProviderRequest("plan", "must be the calls `plan` gives for these messages")
        outcomes: list[SendOutcome | None] = [None] * len(messages)
        for call in calls:
            for index, outcome in zip(call.indices, self._send_call(call, messages), strict=True):
                outcomes[index] = outcome
        done = [outcome for outcome in outcomes if outcome is not None]
        assert len(done) == len(messages), "every input belongs to exactly one planned call"
        return done

    def plan(self, messages: Sequence[OutboundSms]) -> list[PlannedCall]:
        """The calls `send` would make, as operation and inputs; raises InvalidProviderRequest on the first bad
        input."""
        return [PlannedCall(OPERATION, call.indices) for call in self.prepare(messages)]

    def prepare(self, messages: Sequence[OutboundSms]) -> list[PreparedCall]:
        """The calls `send` would make, bodies included; raises InvalidProviderRequest on the first bad input."""
        if len(messages) > MAX_NUMBERS_PER_CALL:
            raise InvalidProviderRequest(
                "messages", f"at most {MAX_NUMBERS_PER_CALL} recipients per call (more fails the whole call)"
            )
        if len(messages) > _FEW:
            alike = self._prepare_alike(messages)
            if alike is not None:
                return alike
        # channel -> calls, each call a list of input indices with distinct numbers
        waves: dict[_Channel, list[tuple[list[int], set[str]]]] = {}
        checked_channel = self._checked_channel
        for index, message in enumerate(messages):
            channel = checked_channel(message)
            if isinstance(channel, InvalidProviderRequest):
                raise channel
            to = message.to  # validated "+digits": compared as is
            channel_waves = waves.get(channel)
            if channel_waves is None:
                waves[channel] = [([index], {to})]
                continue
            for indices, numbers in channel_waves:
                if to not in numbers:
                    indices.append(index)
                    numbers.add(to)
                    break
            else:
                channel_waves.append(([index], {to}))
        return [
            call
            for channel, channel_waves in waves.items()
            for indices, _ in channel_waves
            for call in self._build_calls(channel, indices, messages)
        ]

    def _prepare_alike(self, messages: Sequence[OutboundSms]) -> list[PreparedCall] | None:
        """`prepare` for the common batch, checked field by field over the whole send (C-speed string operations
        on each field's values, rather than `_checked_channel` once per message): every message valid, on the
        international channel with no sender id of its own, each number once, and even the longest template
        parameters far enough under the size limit. None for any other send, which `prepare` then takes message
        by message (finding the rule a message breaks, the channel of each, the calls repeated numbers need).
        `tests/unit/providers/test_huawei_client.py` holds the two paths equal."""
        count = len(messages)
        tos = [m.to for m in messages]
        joined = joined_numbers(tos)
        if not (
            [m.text for m in messages].count(None) == count
            and [m.sender_id for m in messages].count(None) == count
            and all_plus_digits(tos, joined, 2, MAX_NUMBER_LENGTH)
            and "\n" + MAINLAND_PREFIX not in joined
            and len(set(tos)) == count
        ):
            return None
        ids = [m.message_id for m in messages]
        if not lengths_within(ids, 1, MAX_EXTEND_LENGTH) or _SPACE_OR_BRACE.search("".join(ids)):
            return None
        template_ids = {m.template_id for m in messages}
        if not all(template_id and len(template_id) <= MAX_TEMPLATE_ID_LENGTH for template_id in template_ids):
            return None
        params = [m.template_params for m in messages]
        if any(["" in p for p in params]):
            return None
        longest = max(len("".join(p)) for p in set(params))
        most = max(map(len, params))
        if self._fixed_body_bound + _MAX_ESCAPED_CHAR_BYTES * longest + 3 * most > MAX_BODY_BYTES:
            return None  # one of them may be too long alone: `_checked_channel` works it out
        return self._build_calls(self._international, list(range(count)), messages)

    def check(self, message: OutboundSms) -> InvalidProviderRequest | None:
        """The rule this message breaks, if any: the same rules `send` refuses a call for."""
        checked = self._checked_channel(message)
        return checked if isinstance(checked, InvalidProviderRequest) else None

    def _checked_channel(self, message: OutboundSms) -> _Channel | InvalidProviderRequest:
        """The one rule set behind `check` and `send`: the message's own fields, then its channel (a mainland
        number needs the mainland channel configured), then the size of a call carrying it alone. Returns the
        channel it goes out on, or the rule it breaks (returned, not raised: `check` runs for every message)."""
        problem = _message_violation(message)
        if problem is not None:
            return problem
        if message.sender_id is None and not message.to.startswith(MAINLAND_PREFIX):
            channel = self._international  # the common case, decided without a call
        else:
            routed = self._channel_for(message)
            if isinstance(routed, InvalidProviderRequest):
                return routed
            channel = routed
        # A cheap bound first, so the exact size (encoding the body) is only worked out near the limit.
        params = message.template_params  # each: its characters escaped, its quotes and comma
        if self._fixed_body_bound + _MAX_ESCAPED_CHAR_BYTES * sum(map(len, params)) + 3 * len(params) > MAX_BODY_BYTES:
            size = len(self._encode(channel, message.message_id, [message]))
            if size > MAX_BODY_BYTES:
                return InvalidProviderRequest(
                    "template_params",
                    f"the request for this one recipient is {size} bytes; Huawei accepts at most {MAX_BODY_BYTES}",
                )
        return channel

    def _channel_for(self, message: OutboundSms) -> _Channel | InvalidProviderRequest:
        if message.to.startswith(MAINLAND_PREFIX):
            if self._mainland is None:
                return InvalidProviderRequest(
                    "to",
                    "a Chinese mainland number (+86) needs the mainland channel number and signature "
                    "(GLOBESMS_HUAWEI_MAINLAND_SENDER and GLOBESMS_HUAWEI_SIGNATURE), which are not configured",
                )
            channel, kind = self._mainland, MAINLAND_CHANNEL_PREFIX
        else:
            channel, kind = self._international, INTERNATIONAL_CHANNEL_PREFIX
        sender_id = message.sender_id
        if sender_id is None or sender_id == channel.sender or not is_channel_number(sender_id, kind):
            # Not one of Huawei's channel numbers (an Alibaba-style sender name such as "Acme", which the API
            # accepts for every provider): Huawei has no use for it, so the configured channel sends.
            return channel
        # Another channel number of the same application, of the kind this number needs.
        return _Channel(sender_id, channel.signature)

    def _build_calls(
        self, channel: _Channel, indices: list[int], messages: Sequence[OutboundSms]
    ) -> list[PreparedCall]:
        extend = messages[indices[0]].message_id
        body = self._encode(channel, extend, [messages[i] for i in indices])
        if len(body) <= MAX_BODY_BYTES:
            return [PreparedCall(tuple(indices), extend, body)]
        if len(indices) == 1:  # `_checked_channel` refuses such a message first; a guard, not a path
            raise InvalidProviderRequest(
                "template_params",
                f"the request for this one recipient is {len(body)} bytes; Huawei accepts at most {MAX_BODY_BYTES}",
            )
        half = len(indices) // 2
        return self._build_calls(channel, indices[:half], messages) + self._build_calls(
            channel, indices[half:], messages
        )

    def _encode(self, channel: _Channel, extend: str, messages: Sequence[OutboundSms]) -> bytes:
        groups: dict[tuple[str | None, tuple[str, ...]], list[str]] = {}
        for message in messages:
            key = (message.template_id, message.template_params)
            numbers = groups.get(key)
            if numbers is None:
                groups[key] = [message.to]
            else:
                numbers.append(message.to)
        # The JSON is assembled from escaped pieces rather than json.dumps of nested dicts: this is the hot path
        # (up to 500 entries per call) and it is ~3x cheaper. `_json_string` is the stdlib's own C escaper that
        # json.dumps uses; numbers are validated "+digits" and need none. ASCII escapes, like the official SDK,
        # so the body survives any charset handling. The emulator and the SDK test parse what this produces.
        signature = "" if channel.signature is None else ',"signature":' + _json_string(channel.signature)
        entries = []
        for (template_id, params), numbers in groups.items():
            paras = ',"templateParas":[' + ",".join(map(_json_string, params)) + "]" if params else ""
            entries.append(
                '{"to":["'
                + '","'.join(numbers)
                + '"],"templateId":'
                + _json_string(template_id or "")
                + paras
                + signature
                + "}"
            )
        return (
            '{"from":'
            + _json_string(channel.sender)
            + self._callback_member
            + ',"extend":'
            + _json_string(extend)
            + ',"smsContent":['
            + ",".join(entries)
            + "]}"
        ).encode("ascii")

    def auth_headers(self, body: bytes) -> dict[str, str]:
        """The headers of one call: content type, the Host we sign, and the configured authentication."""
        now = self._clock()
        if self.settings.auth is AuthMode.WSSE:
            # WSSE does not cover the body or the host; they are sent as they are.
            headers = {"Content-Type": _CONTENT_TYPE, "Host": self._host}
            headers.update(signer.wsse_headers(self._app_key, self._secret, now, self._nonce()))
            return headers
        headers = {"Content-Type": _CONTENT_TYPE, "Host": self._host, signer.SDK_DATE_HEADER: signer.sdk_date(now)}
        headers["Authorization"] = signer.aksk_authorization(
            app_key=self._app_key,
            app_secret=self._secret_bytes,
            method="POST",
            path=self._path,
            query=(),
            headers=headers,
            body=body,
        )
        return headers

    def _send_call(self, call: PreparedCall, messages: Sequence[OutboundSms]) -> list[SendOutcome]:
        try:
            response = self._http.post(self._url, content=call.body, headers=self.auth_headers(call.body))
        except httpx.HTTPError as exc:
            error = transport_error(exc)
            log.warning("huawei call of %d recipients failed: %s", len(call.indices), error.code)
            return _fail_all(call, messages, error)
        return _outcomes(call, messages, response)


# --------------------------------------------------------------------------------------------------- validation


_EXTEND_VALUE = re.compile(rf"[^\s{{}}]{{1,{MAX_EXTEND_LENGTH}}}")
_SPACE_OR_BRACE = re.compile(r"[\s{}]")  # what `_EXTEND_VALUE` refuses, searched for in all the ids at once
# Up to this many messages, checking each one costs less than `_prepare_alike`'s passes over all of them.
_FEW = 4
_NUMBER = re.compile(rf"\+[0-9]{{1,{MAX_NUMBER_LENGTH - 1}}}")


def _message_violation(message: OutboundSms) -> InvalidProviderRequest | None:
    # Compiled patterns, not per-character loops: this runs for every recipient of every batch.
    if _EXTEND_VALUE.fullmatch(message.message_id) is None:
        return InvalidProviderRequest(
            "message_id",
            f"travels in Huawei's `extend`: 1-{MAX_EXTEND_LENGTH} characters, no spaces or braces",
        )
    if message.text is not None:
        return InvalidProviderRequest("text", "Huawei batchSendDiffSms sends templates only: set template_id instead")
    if not message.template_id or len(message.template_id) > MAX_TEMPLATE_ID_LENGTH:
        return InvalidProviderRequest(
            "template_id", f"Huawei sends templates only: template_id is 1-{MAX_TEMPLATE_ID_LENGTH} characters"
        )
    if _NUMBER.fullmatch(message.to) is None:
        return InvalidProviderRequest(
            "to", f"a Huawei recipient is +<country code><number>, at most {MAX_NUMBER_LENGTH} characters"
        )
    if "" in message.template_params:
        return InvalidProviderRequest("template_params", "every template variable must have a non-empty value")
    return None


# ------------------------------------------------------------------------------------------------------ answers


def _fail_all(call: PreparedCall, messages: Sequence[OutboundSms], error: ProviderError) -> list[SendOutcome]:
    extra = {"extend": call.extend}
    return [SendOutcome(messages[i].message_id, error=error, extra=extra) for i in call.indices]


def _malformed(http_status: int) -> ProviderError:
    if 200 <= http_status < 300:
        # Huawei answered "OK" but we cannot read which numbers were accepted: they may have been.
        return ProviderError(
            ErrorCategory.UNKNOWN_OUTCOME, ProviderCallCode.MALFORMED_RESPONSE, "unreadable answer", http_status
        )
    return provider_error(f"HTTP_{http_status}", "unreadable error answer", http_status)


def _outcomes(call: PreparedCall, messages: Sequence[OutboundSms], response: httpx.Response) -> list[SendOutcome]:
    status = response.status_code
    try:
        answer = BatchSendDiffSmsResponse.model_validate_json(response.content)
    except ValidationError:
        try:
            gateway = GatewayError.model_validate_json(response.content)
        except ValidationError:
            return _fail_all(call, messages, _malformed(status))
        return _fail_all(call, messages, provider_error(gateway.error_code, gateway.error_msg, status))

    per_number = (answer.code == SUCCESS_CODE and 200 <= status < 300) or answer.code == ALL_NUMBERS_FAILED_CODE
    if per_number and answer.result is not None:
        return _per_number_outcomes(call, messages, answer, status)
    if answer.code == SUCCESS_CODE and 200 <= status < 300:
        # Accepted, but without the per-number ids we would correlate receipts with.
        error = ProviderError(
            ErrorCategory.UNKNOWN_OUTCOME, ProviderCallCode.MISSING_RESULT, answer.description, status
        )
        return _fail_all(call, messages, error)
    return _fail_all(call, messages, provider_error(answer.code, answer.description, status))


def _per_number_outcomes(
    call: PreparedCall, messages: Sequence[OutboundSms], answer: BatchSendDiffSmsResponse, http_status: int
) -> list[SendOutcome]:
    # A number the answer gives twice (a call never sends one twice) has contradictory results: None, unknown.
    by_number: dict[str, SmsId | None] = {}
    for item in answer.result or ():
        key = _number_key(item.origin_to)
        by_number[key] = None if key in by_number else item
    if answer.code == SUCCESS_CODE:
        # The call was accepted, so a number it does not mention may or may not be on its way.
        missing = ProviderError(
            ErrorCategory.UNKNOWN_OUTCOME, ProviderCallCode.MISSING_RESULT, "number not in result", http_status
        )
    else:
        missing = provider_error(answer.code, answer.description, http_status)
    conflicting = ProviderError(
        ErrorCategory.UNKNOWN_OUTCOME, ProviderCallCode.CONFLICTING_RESULTS, "number in result twice", http_status
    )
    outcomes = []
    for index in call.indices:
        message = messages[index]
        key = _number_key(message.to)
        found = by_number.get(key)
        error = conflicting if key in by_number and found is None else missing
        outcomes.append(_number_outcome(message, found, call.extend, error, http_status))
    return outcomes


def _number_outcome(
    message: OutboundSms, item: SmsId | None, extend: str, missing: ProviderError, http_status: int
) -> SendOutcome:
    extra = {"extend": extend}
    if item is None:
        return SendOutcome(message.message_id, error=missing, extra=extra)
    if item.country_id:
        extra["countryId"] = item.country_id
    if item.status != SUCCESS_CODE:
        error = provider_error(item.status, "", http_status)
        return SendOutcome(message.message_id, error=error, extra=extra)
    if not item.sms_msg_id:
        error = ProviderError(
            ErrorCategory.UNKNOWN_OUTCOME, ProviderCallCode.MISSING_SMS_MSG_ID, "accepted without smsMsgId"
        )
        return SendOutcome(message.message_id, error=error, extra=extra)
    return SendOutcome(message.message_id, provider_message_id=item.sms_msg_id, segments=item.total, extra=extra)
