"""The public HTTP/SQS contract: what clients send (`MessageSpec`, `MessageBatchSpec`, `SqsIntakeEnvelope`), and
how the OpenAPI document describes the answers. What they get back is `models.views` (and `models.errors`; a quote,
`models.guardrails`), which functions that never accept a request read without loading these request models, their
validators and what those import."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    StrictStr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from globesms.consent.quiet_window import CLOCK_PATTERN, Window, parse_clock
from globesms.domain.callback_urls import check_callback_url
from globesms.domain.clock import utc_now
from globesms.errors import RefusalCode
from globesms.models.base import Model
from globesms.models.errors import ErrorResponse
from globesms.models.limits import (
    MAX_BODY_BYTES,
    MAX_RECIPIENTS_PER_REQUEST,
    MAX_TEXT_CHARS,
    character_name,
    text_character_problem,
    text_parts_problem,
)
from globesms.models.outbound import MessageType, ProviderName
from globesms.scheduling.timing import SEND_AT_RULE, send_at_problem

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

BATCH_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
BATCH_ID_RULE = "1 to 64 letters, digits, '_' or '-', nothing around them"
_BATCH_ID = re.compile(BATCH_ID_PATTERN)


def is_batch_id(value: object) -> bool:
    """Whether `value` is a batch id as written, nothing around it (`$` alone would let a final newline through)."""
    return isinstance(value, str) and _BATCH_ID.fullmatch(value) is not None


_SENDER_ALNUM = re.compile(r"^[A-Za-z0-9]+$")


def _written_as_a_date(value: Any) -> Any:
    """Only text (or a datetime, built in code) is a send_at: pydantic's lax datetime also reads a number, or a text
    of digits, as Unix seconds (or milliseconds, past a size), so `20261209` became 1970-08-23 and was refused as in
    the past, and 1796643382 was taken for a date the docs say is refused (found by a review)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _a_number(value):
        raise ValueError(f"{SEND_AT_RULE}: write it as text, e.g. 2026-12-04T09:00:00+08:00 (a number is no date here)")
    return value


def _a_number(text: str) -> bool:
    """Whether pydantic would read `text` as a number of seconds: "1796643382", "1.7966e9" (a review) too."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_send_at(value: AwareDatetime) -> AwareDatetime:
    # Not "in the future": a retry made after send_at has passed must get its first answer, so accept checks that
    # for new work only (after the idempotency and batch id checks). Time only brings send_at nearer: the 30 days hold.
    problem = send_at_problem(value, utc_now(), passed=False)
    if problem:
        raise ValueError(problem)
    return value


SendAt = Annotated[
    AwareDatetime,
    BeforeValidator(_written_as_a_date),
    AfterValidator(_check_send_at),
    Field(
        description="When to send (ISO 8601 with a UTC offset, e.g. 2026-12-04T09:00:00+08:00), at most 30 days "
        "ahead: recipients wait as SCHEDULED until then and can be canceled (DELETE) meanwhile"
    ),
]


# Room for an E.164 number written with spaces, dashes and brackets; anything longer is not a number.
PhoneText = Annotated[str, Field(max_length=32)]


class _Strict(Model):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TemplateRef(_Strict):
    id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="A logical template id from the registry, or else a provider's own (Tencent numeric, Huawei)",
    )
    # Strict: `true` or `5.0` would otherwise be read as 1 and 5, and a code sent as "1" (a clear 422 instead).
    params: dict[
        # A value of nothing but spaces is stripped to "", which no provider takes (Huawei refuses it at dispatch).
        Annotated[str, Field(min_length=1, max_length=64)],
        Annotated[StrictStr, Field(min_length=1, max_length=500)] | StrictInt,
    ] = Field(
        default_factory=dict,
        max_length=20,
        description="Template parameters by name: a registered template puts them in each provider's order "
        "(and into Alibaba's text); a provider's own template id gets them in the order given",
    )

    @field_validator("params")
    @classmethod
    def _params_rules(cls, params: dict[str, str | int]) -> dict[str, str | int]:
        # Reported under `template.params` with the parameter's position, never its name: the name is what is bad.
        for position, (name, value) in enumerate(params.items(), start=1):
            problem = identifier_character_problem(name)
            if problem:
                raise ValueError(f"parameter name {position} {problem}")
            problem = text_character_problem(value) if isinstance(value, str) else None
            if problem:
                raise ValueError(f"the value of parameter {position} {problem}")
        return params


class QuietHours(_Strict):
    """The recipient's local hours in which an MKT message is not delivered (docs/consent.md)."""

    start: str = Field(pattern=CLOCK_PATTERN, description="HH:MM, local time of the recipient, e.g. 21:00")
    end: str = Field(
        pattern=CLOCK_PATTERN,
        description="HH:MM, local time of the recipient, e.g. 08:00 (before start: crosses midnight)",
    )

    @model_validator(mode="after")
    def _window_rules(self) -> QuietHours:
        self.window()  # a ValueError naming the rule
        return self

    def window(self) -> Window:
        return Window(parse_clock(self.start), parse_clock(self.end))


def _quiet_hours_branch(value: Any) -> str:
    return "literal[False]" if value is False else "model[QuietHours]"


#: A window or `false`, told apart before either is tried: as a plain union a bad window was refused twice, once as
#: itself and once with "Input should be False", which pointed the client at a waiver it may not have (a review).
#: The tags are spelled as pydantic spells its own (`validation.field_path` leaves them out of the field's path).
_WindowOrOff = Annotated[
    Annotated[QuietHours, Tag("model[QuietHours]")] | Annotated[Literal[False], Tag("literal[False]")],
    Discriminator(_quiet_hours_branch),
]

QuietHoursField = Annotated[
    _WindowOrOff | None,
    # Left out of dumps while unset: a body without it hashes as it did before the field existed.
    Field(
        exclude_if=lambda value: value is None,
        description="MKT: quiet hours in the recipient's local time instead of the deployment's (21:00-08:00 by "
        "default): on a new MKT request, covering them (wider, never narrower) unless the deployment allows waiving "
        "them; or false to waive them where the deployment allows it",
    ),
]


#: Why an OTP takes no send_at. A code is wanted when it is asked for, and the OTP guard's per-number limits count a
#: send when it is accepted: scheduled, five an hour for days could all go out in one minute (docs/guardrails.md).
OTP_NOT_SCHEDULED = "an OTP cannot be scheduled: it is sent when requested (its per-number limits count it then)"


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
    # Left out of dumps while false: a body without it hashes as it did before the field existed (body hashes name
    # batches and idempotency payloads, so a retry across a deploy stays the same request).
    failover_on_undelivered: bool = Field(
        default=False,
        exclude_if=lambda value: not value,
        description="NOTIFY: when a receipt says UNDELIVERED for a route failure, send once more through the next "
        "provider of the route (OTP messages always are; docs/final-status.md)",
    )
    # Not part of what is sent (left out of dumps, so of body hashes and idempotency payloads): docs/guardrails.md.
    dry_run: bool = Field(
        default=False,
        exclude=True,
        description="answer 200 with a quote: every check a send runs, nothing written, reserved or sent",
    )
    send_at: SendAt | None = None
    quiet_hours: QuietHoursField = None

    @field_validator("client_ref")
    @classmethod
    def _client_ref_rules(cls, value: str | None) -> str | None:
        problem = None if value is None else identifier_character_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("status_callback")
    @classmethod
    def _callback_rules(cls, value: str | None) -> str | None:
        return None if value is None else check_callback_url(value)

    @field_validator("text")
    @classmethod
    def _text_rules(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value)

    @model_validator(mode="after")
    def _text_or_template(self) -> MessageSpec:
        if (self.text is None) == (self.template is None):
            raise ValueError("exactly one of 'text' or 'template' is required")
        return self

    @field_validator("send_at")
    @classmethod
    def _otp_is_not_scheduled(cls, value: AwareDatetime | None, info: ValidationInfo) -> AwareDatetime | None:
        # A field's validator, so the refusal names the field (`send_at`, `messages.<i>.send_at`); `type` is
        # declared before `send_at`, so it is read (when it was valid).
        if value is not None and info.data.get("type") == MessageType.OTP:
            raise ValueError(OTP_NOT_SCHEDULED)
        return value

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


# ---- characters: refused where they can only deceive or break something (docs/security.md) ----
# In a text: `models.limits.text_character_problem` (the template registry's Alibaba texts are checked the same way).
# In an identifier (client_ref, a template parameter's name): printable characters and the space only. Every
# control, format (zero-width, bidirectional), surrogate, private-use, unassigned or line/paragraph separator
# character is refused: none belongs in a name, and each can make two names look alike.
_NOT_PRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_IDENTIFIER_RULE = "only printable characters: control, invisible and bidirectional formatting characters are refused"


def identifier_character_problem(value: str) -> str | None:
    for position, char in enumerate(value):
        if unicodedata.category(char) in _NOT_PRINTABLE:
            return f"must not contain {character_name(char)} at position {position}: {_IDENTIFIER_RULE}"
    return None


def check_text(value: str) -> str:
    problem = text_character_problem(value) or text_parts_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class MessageBatchSpec(_Strict):
    """Different content per recipient group."""

    messages: list[MessageSpec] = Field(min_length=1, max_length=MAX_RECIPIENTS_PER_REQUEST)
    dry_run: bool = Field(default=False, exclude=True, description="as in a single message: a quote, nothing sent")
    send_at: SendAt | None = None  # for every spec that names none of its own
    quiet_hours: QuietHoursField = None  # likewise

    @model_validator(mode="after")
    def _dry_run_on_top(self) -> MessageBatchSpec:
        for index, spec in enumerate(self.messages):
            if spec.dry_run:
                raise ValueError(f"messages.{index}.dry_run: dry_run belongs at the top of the body, for all of it")
        return self

    @field_validator("send_at")
    @classmethod
    def _otp_is_not_scheduled(cls, value: AwareDatetime | None, info: ValidationInfo) -> AwareDatetime | None:
        # As MessageSpec's: names the request's `send_at`. `messages` is declared before it (absent: refused).
        if value is not None:
            for index, spec in enumerate(info.data.get("messages") or ()):
                if spec.type == MessageType.OTP and spec.send_at is None:
                    raise ValueError(f"it would reach messages.{index}, an OTP: {OTP_NOT_SCHEDULED}")
        return value


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
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"  # "true" on an answer given again for a repeated Idempotency-Key
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?$"
IDEMPOTENCY_KEY_RULE = "1 to 128 printable ASCII characters (spaces only inside)"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def is_idempotency_key(value: object) -> bool:
    """Whether `value` is an idempotency key as written (`IDEMPOTENCY_KEY_RULE`)."""
    return isinstance(value, str) and _IDEMPOTENCY_KEY.fullmatch(value) is not None


class SqsIntakeEnvelope(_Strict):
    """Extra fields an SQS intake body may carry beside the spec(s)."""

    batch_id: str | None = Field(default=None, pattern=BATCH_ID_PATTERN)
    idempotency_key: str | None = Field(
        default=None, description="The same key within 24 h is accepted once: " + IDEMPOTENCY_KEY_RULE
    )

    @field_validator("batch_id", mode="before")
    @classmethod
    def _batch_id_rules(cls, value: Any) -> Any:
        # Checked before stripping, as a whole (`$` alone would let a final newline through): "order-1 " must be
        # refused, not validated as "order-1" and then used as written.
        if isinstance(value, str) and not is_batch_id(value):
            raise ValueError(f"batch_id must be {BATCH_ID_RULE}")
        return value

    @field_validator("idempotency_key", mode="before")
    @classmethod
    def _idempotency_key_rules(cls, value: Any) -> Any:
        # Checked before stripping: " key" and "key" must not silently become one key.
        if value is not None and not is_idempotency_key(value):
            raise ValueError(f"idempotency_key must be {IDEMPOTENCY_KEY_RULE}")
        return value


def specs_of(body: MessageSpec | MessageBatchSpec) -> list[MessageSpec]:
    if not isinstance(body, MessageBatchSpec):
        return [body]
    specs = body.messages
    if body.send_at is not None:
        specs = [s if s.send_at else s.model_copy(update={"send_at": body.send_at}) for s in specs]
    if body.quiet_hours is not None:
        specs = [
            s if s.quiet_hours is not None else s.model_copy(update={"quiet_hours": body.quiet_hours}) for s in specs
        ]
    return specs


# ---- the answers, as the OpenAPI document describes them: from the models and the codes, never from a handler ----

_LIMITS: dict[RefusalCode, str] = {
    RefusalCode.BODY_TOO_LARGE: f"more than {MAX_BODY_BYTES:,} bytes",
    RefusalCode.TOO_MANY_RECIPIENTS: f"more than {MAX_RECIPIENTS_PER_REQUEST:,} recipients",
}


def success_answer(model: type[BaseModel], headers: dict[str, Any] | None = None) -> OpenAPIResponse:
    """A 2xx answer: the model, described by its docstring."""
    answer: OpenAPIResponse = {
        "description": (model.__doc__ or model.__name__).strip(),
        "content": {"application/json": {"model": model}},
    }
    if headers:
        answer["headers"] = headers
    return answer


def refusal_answers(*codes: RefusalCode) -> dict[int, OpenAPIResponse]:
    """The refusals a route gives, grouped by HTTP status, each code with its meaning (and its limit)."""
    answers: dict[int, OpenAPIResponse] = {}
    for code in codes:
        meaning = f"{code.meaning} ({_LIMITS[code]})" if code in _LIMITS else code.meaning
        answer = answers.setdefault(
            code.status, {"description": "", "content": {"application/json": {"model": ErrorResponse}}}
        )
        answer["description"] = "; ".join(filter(None, (answer["description"], f"{code}: {meaning}")))
        if code in (RefusalCode.IDEMPOTENCY_KEY_IN_PROGRESS, RefusalCode.BATCH_STILL_ACCEPTING):
            answer["headers"] = {"Retry-After": {"description": "seconds", "schema": {"type": "string"}}}
    return answers
