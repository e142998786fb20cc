"""Which refusal each exception of the accept stage is: one table, read by the API handler and the SQS intake.

The API answers a refusal with `code.status` and `{"error": …}`; the intake records the same `ErrorBody` on a
REJECTED batch. A new refusal is one exception and one row here (and its code in `globesms.errors.RefusalCode`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from globesms.accept.bodies import BodyTooLarge, MalformedJson
from globesms.accept.idempotency_outcomes import KeyInProgress, KeyReused
from globesms.accept.planning import TooManyRecipients
from globesms.accept.service import BatchIdConflict, NewWorkFieldRefused
from globesms.errors import RefusalCode
from globesms.guardrails.documents import DocumentUnavailable
from globesms.models.errors import ErrorBody, ErrorDetail, schema_error
from globesms.models.limits import MAX_RECIPIENTS_PER_REQUEST

REFUSALS: dict[type[Exception], RefusalCode] = {
    MalformedJson: RefusalCode.MALFORMED_JSON,
    BodyTooLarge: RefusalCode.BODY_TOO_LARGE,
    TooManyRecipients: RefusalCode.TOO_MANY_RECIPIENTS,
    KeyReused: RefusalCode.IDEMPOTENCY_KEY_REUSED,
    KeyInProgress: RefusalCode.IDEMPOTENCY_KEY_IN_PROGRESS,
    BatchIdConflict: RefusalCode.BATCH_ID_CONFLICT,
    NewWorkFieldRefused: RefusalCode.VALIDATION_ERROR,
    DocumentUnavailable: RefusalCode.GUARDRAILS_UNAVAILABLE,
}
#: Refusals of a request that may succeed as it is a moment later: the API answers them with Retry-After, the SQS
#: intake leaves the body on its queue for a later receive.
RETRY_LATER = {
    RefusalCode.IDEMPOTENCY_KEY_IN_PROGRESS: 2,
    RefusalCode.GUARDRAILS_UNAVAILABLE: 5,
}
#: The exceptions of REFUSALS, for `except` clauses and exception handlers.
REFUSED = tuple(REFUSALS)


def code_of(exc: Exception) -> RefusalCode:
    for kind, code in REFUSALS.items():
        if isinstance(exc, kind):
            return code
    raise TypeError(f"{type(exc).__name__} is not a refusal") from exc


def refusal_of(exc: Exception) -> ErrorBody:
    """The refusal `exc` stands for: its code and a message naming the rule it breaks."""
    if isinstance(exc, NewWorkFieldRefused):  # a field's rule checked after the schema: named as the schema names one
        detail = ErrorDetail(field=exc.field, rule=exc.rule)
        return ErrorBody(code=RefusalCode.VALIDATION_ERROR, message=str(exc), fields=[detail])
    return ErrorBody(code=code_of(exc), message=str(exc))


def schema_refusal(errors: ValidationError | Sequence[Mapping[str, Any]]) -> ErrorBody:
    """VALIDATION_ERROR naming the broken fields and their rules (`schema_error`: the first MAX_REFUSAL_FIELDS);
    TOO_MANY_RECIPIENTS (413) when a list of recipients or of messages is over the request's limit
    (`over_recipient_limit`). Not in REFUSALS: a ValidationError is a refusal only where a client's document is
    validated (a ValidationError elsewhere is a fault, never a 422)."""
    listed = errors.errors() if isinstance(errors, ValidationError) else errors
    over = over_recipient_limit(listed)
    if over is not None:
        return refusal_of(over)
    return schema_error(errors)


def over_recipient_limit(errors: Sequence[Mapping[str, Any]]) -> TooManyRecipients | None:
    """The schema caps one spec's `to` and a body's `messages` at the request's limit, so that a body is not
    validated number by number past it; a body over it is refused as the whole request's count is (413
    TOO_MANY_RECIPIENTS, as docs/api.md says), not as a field's rule (422). Within a list of messages the count
    is a lower bound: a list over the limit carries at least one recipient each, one spec's `to` leaves out the
    other specs'."""
    for error in errors:
        context = error.get("ctx") or {}
        named = {part for part in error.get("loc", ()) if isinstance(part, str)}
        if (
            error.get("type") == "too_long"
            and context.get("max_length") == MAX_RECIPIENTS_PER_REQUEST
            and named & {"to", "messages"}
        ):
            counted = int(context.get("actual_length") or MAX_RECIPIENTS_PER_REQUEST + 1)
            return TooManyRecipients(counted, at_least="messages" in named)
    return None
