"""One error taxonomy for every provider.

A provider's own code is never thrown away: `ProviderError` carries the normalised `category` *and* the raw
`code`/`message` the provider sent, so the record shows both and a new provider code is one line in that
provider's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorCategory(StrEnum):
    RETRYABLE = "retryable"  # transient: provider 5xx, connection refused before anything was sent
    THROTTLED = "throttled"  # the provider's rate limit; retry later
    RECIPIENT = "recipient"  # this number will not work: invalid, opted out, country not allowed
    REQUEST = "request"  # our request is wrong: template, params, content, sender id
    CONFIG = "config"  # credentials, signature, allowlist, balance, suspended account
    UNKNOWN_OUTCOME = "unknown_outcome"  # the request may have reached the provider (e.g. read timeout)


#: Categories after which the same request must not be sent again as it is.
FINAL_CATEGORIES = frozenset({ErrorCategory.RECIPIENT, ErrorCategory.REQUEST})


@dataclass(frozen=True, slots=True)
class ProviderError:
    category: ErrorCategory
    code: str  # the provider's raw code, e.g. "MOBILE_NUMBER_ILLEGAL", "FailedOperation.TemplateIncorrectOrUnapproved"
    message: str = ""  # the provider's raw message (never contains our secrets)
    http_status: int | None = None

    @property
    def is_final(self) -> bool:
        return self.category in FINAL_CATEGORIES


class InvalidProviderRequest(ValueError):
    """Raised by a provider client *before* anything is sent: a field breaks the provider's documented rules."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


# ---- globesms's own codes: one vocabulary, by where a client meets them ----
# A code's string value is part of the public contract (clients match on it): never change one. Each member
# carries its one-line meaning, which the OpenAPI document and docs/errors are written from;
# tests/unit/test_error_codes.py checks that no module spells a code as a bare string and that README.md and
# docs/ name every member.


class _Code(StrEnum):
    """A code with its meaning: `NAME = "NAME", "meaning"`. The value stays the bare string clients see."""

    meaning: str

    def __new__(cls, value: str, meaning: str) -> _Code:
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member


class RefusalCode(_Code):
    """Why a whole request (an API call, an SQS intake body, a receipt push) was refused: nothing was written.
    `NAME = "NAME", <HTTP status>, "meaning"`."""

    status: int

    def __new__(cls, value: str, status: int, meaning: str) -> RefusalCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        member.meaning = meaning
        return member

    MALFORMED_JSON = (
        "MALFORMED_JSON",
        400,
        "the body is not JSON globesms reads (syntax, nesting, number size, UTF-8, a key given twice in one object)",
    )
    VALIDATION_ERROR = "VALIDATION_ERROR", 422, "fields break the schema; `fields` names each one and its rule"
    BODY_TOO_LARGE = "BODY_TOO_LARGE", 413, "the body is larger than the documented cap in bytes"
    TOO_MANY_RECIPIENTS = "TOO_MANY_RECIPIENTS", 413, "more recipients than one request may carry"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE", 415, "the body is not sent as JSON (Content-Type)"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED", 409, "the idempotency key was used with another body"
    IDEMPOTENCY_KEY_IN_PROGRESS = (
        "IDEMPOTENCY_KEY_IN_PROGRESS",
        409,
        "the first request with this idempotency key is still running: retry after Retry-After seconds",
    )
    BATCH_ID_CONFLICT = "BATCH_ID_CONFLICT", 409, "an SQS intake body names a batch_id that holds another body"
    BATCH_STILL_ACCEPTING = (
        "BATCH_STILL_ACCEPTING",
        409,
        "a cancel of a batch still being accepted (not all its recipients written): retry after Retry-After seconds",
    )
    GUARDRAILS_UNAVAILABLE = (
        "GUARDRAILS_UNAVAILABLE",
        503,
        "the guardrail settings (SSM) could not be read yet: nothing sent; retry after Retry-After seconds",
    )
    NOT_FOUND = (
        "NOT_FOUND",
        404,
        "no message, batch, opt-out entry or receipts endpoint by that id, or a path API Gateway hands over that no "
        "route's pattern matches (an id holding a `\"`)",
    )
    FORBIDDEN = (
        "FORBIDDEN",
        403,
        "a receipt or reply push with a wrong token (or to an unknown provider), or a template change with an API key "
        "that may not make it",
    )
    UNAUTHORIZED = "UNAUTHORIZED", 401, "a receipt push without a valid signature, where one is required"
    UNREADABLE_RECEIPTS = "UNREADABLE_RECEIPTS", 400, "a receipt push body not in the provider's format"
    UNREADABLE_REPLIES = "UNREADABLE_REPLIES", 400, "a reply push body not in the provider's reply format"
    API_KEY_REQUIRED = "API_KEY_REQUIRED", 403, "the API documentation asked for without x-api-key, where it needs one"
    TEMPLATES_NOT_MANAGED = (
        "TEMPLATES_NOT_MANAGED",
        501,
        "this deployment has no template table: the shipped templates.json is the registry",
    )
    CONSENT_NOT_MANAGED = (
        "CONSENT_NOT_MANAGED",
        501,
        "this deployment has no consent table: there is no opt-out list to read or change",
    )


class RecipientCode(_Code):
    """Why one recipient of an accepted request was rejected (`errors[].code`); the others proceed."""

    INVALID_NUMBER = (
        "INVALID_NUMBER",
        "not an E.164 number valid for its country, or written with an extension or invisible characters",
    )
    NOT_MOBILE = "NOT_MOBILE", "a valid number that is not a mobile: it would never receive an SMS"
    DUPLICATE_RECIPIENT = (
        "DUPLICATE_RECIPIENT",
        ("the same number twice in one spec (OTP: twice anywhere in the request): sent once, the repeat refused"),
    )
    NO_ROUTE = "NO_ROUTE", "no provider carries this kind of message to this destination"
    PROVIDER_CANNOT_CARRY = "PROVIDER_CANNOT_CARRY", "the pinned provider cannot carry this message"
    TEMPLATE_UNKNOWN_FOR_PROVIDER = (
        "TEMPLATE_UNKNOWN_FOR_PROVIDER",
        "a registered template that no provider in the route has a version of",
    )
    TEMPLATE_PARAMS = "TEMPLATE_PARAMS", "template parameters missing, or the rendered text too long"
    OPTED_OUT = (
        "OPTED_OUT",
        "the number is on the opt-out list: MKT and NOTIFY are refused (OTP too when the deployment says so); a "
        "message accepted before the number was listed is not sent either, and ends FAILED with this code",
    )
    QUIET_HOURS_VALIDITY = (
        "QUIET_HOURS_VALIDITY",
        "MKT inside the number's quiet hours, and its validity lapses before they end (or with them: not a whole "
        "second left to send it): never sent",
    )
    # Guardrails (docs/guardrails.md)
    COUNTRY_NOT_ALLOWED = (
        "COUNTRY_NOT_ALLOWED",
        "the country permissions do not allow this message type to this country (the message names it); a "
        "message accepted before its country was denied is not sent either, and ends FAILED with this code",
    )
    PRICE_UNKNOWN = "PRICE_UNKNOWN", "no price for this provider and country, and a spend limit needs one to count it"
    SPEND_LIMIT_REACHED = (
        "SPEND_LIMIT_REACHED",
        "its estimated cost would cross this month's spend limit (the deployment's or the API key's), or the "
        "month's spend counters stayed busy with concurrent requests (the message says which; busy: try again)",
    )
    VELOCITY_LIMIT = (
        "VELOCITY_LIMIT",
        "OTP to this number reached its limit per rolling hour or day, or its counters stayed busy with concurrent "
        "requests (the message says which; busy: try again)",
    )
    FRAUD_SUSPECTED = (
        "FRAUD_SUSPECTED",
        "OTP to this country is held: its recent volume looks like SMS pumping (the message names the country)",
    )


class DispatchCode(_Code):
    """A message's `error.code` when globesms itself, not the provider, settled or held its send."""

    INVALID_REQUEST = "INVALID_REQUEST", "refused before sending: a field breaks the provider's documented rules"
    CIRCUIT_OPEN = "CIRCUIT_OPEN", "moved to another provider: this one's circuit breaker was open"
    DISPATCH_INTERRUPTED = (
        "DISPATCH_INTERRUPTED",
        "an earlier dispatch attempt stopped mid-send: the outcome is unknown until a receipt comes",
    )
    UNKNOWN_OUTCOME_EXPIRED = (
        "UNKNOWN_OUTCOME_EXPIRED",
        "no receipt settled an unknown outcome within its window: settled by the policy",
    )
    NO_RECEIPT = (
        "NO_RECEIPT",
        "EXPIRED: no final receipt by the receipt deadline, and the provider's status query (if any) said none",
    )
    VALIDITY_LAPSED = (
        "VALIDITY_LAPSED",
        "EXPIRED, never sent: its validity ran out before it was handed to a provider (queued, deferred, retried)",
    )
    DISPATCH_FAILED = (
        "DISPATCH_FAILED",
        "never sent: its dispatcher failed before any provider call on the pack's last delivery (the rate limiter, "
        "DynamoDB); the pack is in the dead-letter queue",
    )
    CREDENTIALS_RENEWED = (
        "CREDENTIALS_RENEWED",
        "refused for the provider key, which was renewed since (read again from its secret): sent again with the new "
        "key, under a rate-limit permit of its own (recorded only where that could not happen: it is retryable)",
    )


class ProviderCallCode(_Code):
    """A message's `error.code` when its provider call ended without a code of the provider's own: the exchange
    broke (`providers/transport.py`: the first thirteen) or the answer could not be read. Its
    `error.category` says what that means for the message (retryable, unknown outcome, ...)."""

    CONNECT_TIMEOUT = "CONNECT_TIMEOUT", "no connection within the connect timeout"
    CONNECT_ERROR = "CONNECT_ERROR", "could not connect to the provider"
    POOL_TIMEOUT = "POOL_TIMEOUT", "no free connection in the pool"
    UNSUPPORTED_PROTOCOL = "UNSUPPORTED_PROTOCOL", "the endpoint URL cannot be used"
    LOCAL_PROTOCOL_ERROR = "LOCAL_PROTOCOL_ERROR", "httpx refused to write the request"
    WRITE_TIMEOUT = "WRITE_TIMEOUT", "the request could not be written in time"
    WRITE_ERROR = "WRITE_ERROR", "the connection broke while the request was written"
    READ_TIMEOUT = "READ_TIMEOUT", "no answer within the read timeout"
    READ_ERROR = "READ_ERROR", "the connection broke while the answer was read"
    REMOTE_PROTOCOL_ERROR = "REMOTE_PROTOCOL_ERROR", "the provider's side broke off the exchange"
    DECODING_ERROR = "DECODING_ERROR", "the answer could not be decoded"
    PROXY_ERROR = (
        "PROXY_ERROR",
        "a proxy failed: before the request when it refused the tunnel (retryable), else at an unknown moment",
    )
    TRANSPORT_ERROR = "TRANSPORT_ERROR", "any other failure of the exchange (e.g. closing the connection)"
    MALFORMED_RESPONSE = (
        "MALFORMED_RESPONSE",
        "the provider's answer is not in its documented shape (not JSON, fields missing or of the wrong type)",
    )
    MISSING_RESULT = "MISSING_RESULT", "the provider's answer has no result for this recipient"
    CONFLICTING_RESULTS = (
        "CONFLICTING_RESULTS",
        "the provider's answer has more than one result for this recipient: which one holds is unknown",
    )
    ANOTHER_MESSAGE = (
        "ANOTHER_MESSAGE",
        "a status query's answer is about another message id or number than the one asked about: not its status",
    )
    MISSING_SERIAL_NO = "MISSING_SERIAL_NO", "Tencent answered Ok without a SerialNo, the id its receipts carry"
    MISSING_SMS_MSG_ID = (
        "MISSING_SMS_MSG_ID",
        "Huawei accepted the number without an smsMsgId, the id its receipts carry",
    )
    MESSAGE_ID_LIST_MISMATCH = (
        "MESSAGE_ID_LIST_MISMATCH",
        "Alibaba's batch answer has not one distinct, non-blank MessageId for each number it accepted: ids and "
        "numbers cannot be paired",
    )


#: Every code globesms itself answers with or records (providers' raw codes are theirs, kept as sent).
ErrorCode = RefusalCode | RecipientCode | DispatchCode | ProviderCallCode
ERROR_CODES: tuple[ErrorCode, ...] = (*RefusalCode, *RecipientCode, *DispatchCode, *ProviderCallCode)
