"""The public HTTP/SQS contract: what clients send (`SendRequest`) and what they get back."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from globesms.config import CallbackSettings, settings
from globesms.domain.status import Status
from globesms.models.outbound import MessageType, ProviderName

MAX_RECIPIENTS_PER_REQUEST = 10_000
MAX_TEXT_CHARS = 1_600  # ten concatenated UCS-2 parts; longer texts are refused, not silently cut
BATCH_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

_SENDER_ALNUM = re.compile(r"^[A-Za-z0-9]+$")


# Room for an E.164 number written with spaces, dashes and brackets; anything longer is not a number.
PhoneText = Annotated[str, Field(max_length=32)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TemplateRef(_Strict):
    id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="A logical template id from the registry, or else a provider's own (Tencent numeric, Huawei)",
    )
    params: dict[Annotated[str, Field(min_length=1, max_length=64)], Annotated[str, Field(max_length=500)] | int] = (
        Field(
            default_factory=dict,
            max_length=20,
            description="Template parameters by name: a registered template puts them in each provider's order "
            "(and into Alibaba's text); a provider's own template id gets them in the order given",
        )
    )


class MessageSpec(_Strict):
    """One content sent to one or more recipients."""

    to: PhoneText | Annotated[list[PhoneText], Field(min_length=1, max_length=MAX_RECIPIENTS_PER_REQUEST)] = Field(
        description="E.164 number(s), e.g. +85212345678"
    )
    text: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT_CHARS)
    template: TemplateRef | None = None
    type: MessageType = MessageType.NOTIFY
    sender_id: str | None = Field(default=None, min_length=1, max_length=15)
    provider: ProviderName | None = Field(default=None, description="Pin a provider instead of routing")
    validity_seconds: int | None = Field(default=None, ge=60, le=259_200)
    client_ref: str | None = Field(default=None, min_length=1, max_length=128)
    status_callback: str | None = Field(
        default=None, max_length=2048, description="https URL that receives a signed event on each final status"
    )
    status_callback_on_submitted: bool = Field(default=False, description="also send an event on SUBMITTED")

    @field_validator("status_callback")
    @classmethod
    def _callback_rules(cls, value: str | None) -> str | None:
        return None if value is None else check_callback_url(value)

    @model_validator(mode="after")
    def _text_or_template(self) -> MessageSpec:
        if (self.text is None) == (self.template is None):
            raise ValueError("exactly one of 'text' or 'template' is required")
        return self

    @field_validator("sender_id")
    @classmethod
    def _sender_rules(cls, value: str | None) -> str | None:
        # Alibaba's documented rule, the strictest of the three providers: letters and digits only; at most 11
        # characters when it contains a letter, at most 15 when it is all digits.
        if value is None:
            return value
        if not _SENDER_ALNUM.match(value):
            raise ValueError("sender_id may contain only letters and digits")
        if not value.isdigit() and len(value) > 11:
            raise ValueError("an alphanumeric sender_id is at most 11 characters")
        return value

    @property
    def recipients(self) -> list[str]:
        return [self.to] if isinstance(self.to, str) else self.to


def check_callback_url(value: str) -> str:
    """Only https, so events (message content, numbers) never travel in clear; plain http to a loopback host is
    allowed when GLOBESMS_ALLOW_LOOPBACK_CALLBACKS is true (the local stack sets it)."""
    url = urlsplit(value)
    if url.scheme == "https" and url.hostname:
        return value
    loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
    if url.scheme == "http" and loopback and _loopback_callbacks_allowed():
        return value
    raise ValueError("status_callback must be an https URL")


def _loopback_callbacks_allowed() -> bool:
    try:
        return settings(CallbackSettings).allow_loopback_callbacks
    except ValueError as exc:  # our configuration's fault, not the caller's: not a 422 about their URL
        raise RuntimeError(str(exc)) from None


class MessageBatchSpec(_Strict):
    """Different content per recipient group."""

    messages: list[MessageSpec] = Field(min_length=1, max_length=MAX_RECIPIENTS_PER_REQUEST)


def _body_shape(value: Any) -> str:
    if isinstance(value, dict):
        return "batch" if "messages" in value else "single"
    return "batch" if hasattr(value, "messages") else "single"


SendBody = Annotated[
    Annotated[MessageSpec, Tag("single")] | Annotated[MessageBatchSpec, Tag("batch")],
    Discriminator(_body_shape),
]


# An idempotency key (the API's `Idempotency-Key` header, an SQS intake body's `idempotency_key`): 1 to 128
# printable ASCII characters, spaces allowed only inside (an HTTP header value loses its outer spaces anyway).
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?$"
IDEMPOTENCY_KEY_RULE = "1 to 128 printable ASCII characters (spaces only inside)"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


class SqsIntakeEnvelope(_Strict):
    """Extra fields an SQS intake body may carry beside the spec(s)."""

    batch_id: str | None = Field(default=None, pattern=BATCH_ID_PATTERN)
    idempotency_key: str | None = Field(
        default=None, description="The same key within 24 h is accepted once: " + IDEMPOTENCY_KEY_RULE
    )

    @field_validator("idempotency_key", mode="before")
    @classmethod
    def _idempotency_key_rules(cls, value: Any) -> Any:
        # Checked before stripping: " key" and "key" must not silently become one key.
        if value is not None and not (isinstance(value, str) and _IDEMPOTENCY_KEY.fullmatch(value)):
            raise ValueError(f"idempotency_key must be {IDEMPOTENCY_KEY_RULE}")
        return value


def specs_of(body: MessageSpec | MessageBatchSpec) -> list[MessageSpec]:
    return body.messages if isinstance(body, MessageBatchSpec) else [body]


# ---- responses ----


class AcceptedMessage(BaseModel):
    id: str
    to: str
    status: Status
    provider: ProviderName


class RecipientError(BaseModel):
    index: int = Field(description="Position of the recipient in the request, counting across all specs")
    to: str
    code: str
    message: str


class AcceptResponse(BaseModel):
    batch_id: str
    accepted: int
    rejected: int
    messages: list[AcceptedMessage]
    errors: list[RecipientError]


class ErrorDetail(BaseModel):
    field: str
    rule: str


class ErrorBody(BaseModel):
    code: str
    message: str
    fields: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody


class MessageError(BaseModel):
    category: str | None = None
    code: str
    message: str = ""


class MessageEvent(BaseModel):
    type: Literal["status", "receipt"]
    at: str = Field(description="when globesms recorded it")
    status: Status | None = None
    raw_status: str | None = Field(default=None, description="the provider's own status value")
    error_code: str | None = None
    description: str | None = None
    provider_time: str | None = Field(default=None, description="the provider's timestamp, as sent")
    part: int | None = None
    parts: int | None = None


class MessageView(BaseModel):
    id: str
    batch_id: str
    to: str
    status: Status
    type: MessageType
    provider: ProviderName
    provider_message_id: str | None = None
    segments: int | None = None
    client_ref: str | None = None
    error: MessageError | None = None
    created_at: str
    updated_at: str
    submitted_at: str | None = None
    events: list[MessageEvent] = Field(default_factory=list, description="history, oldest first")


class BatchView(BaseModel):
    batch_id: str
    state: Literal["ACCEPTING", "QUEUED", "REJECTED"]
    source: str
    created_at: str
    accepted: int
    rejected: int
    counts: dict[str, int]
    errors: list[RecipientError]
    refusal: ErrorBody | None = None
    messages: list[MessageView]
    next: str | None = Field(default=None, description="Cursor for the next page of messages (?after=)")
