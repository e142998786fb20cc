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
from globesms.accept.service import BatchIdConflict, SendAtPassed
from globesms.errors import RefusalCode
from globesms.models.errors import ErrorBody, ErrorDetail
from globesms.validation import problems

REFUSALS: dict[type[Exception], RefusalCode] = {
    MalformedJson: RefusalCode.MALFORMED_JSON,
    BodyTooLarge: RefusalCode.BODY_TOO_LARGE,
    TooManyRecipients: RefusalCode.TOO_MANY_RECIPIENTS,
    KeyReused: RefusalCode.IDEMPOTENCY_KEY_REUSED,
    KeyInProgress: RefusalCode.IDEMPOTENCY_KEY_IN_PROGRESS,
    BatchIdConflict: RefusalCode.BATCH_ID_CONFLICT,
    SendAtPassed: RefusalCode.VALIDATION_ERROR,
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
    if isinstance(exc, SendAtPassed):  # a field's rule, checked after the schema: named as the schema names one
        detail = ErrorDetail(field=exc.field, rule=exc.rule)
        return ErrorBody(code=RefusalCode.VALIDATION_ERROR, message=str(exc), fields=[detail])
    return ErrorBody(code=code_of(exc), message=str(exc))


def schema_refusal(errors: ValidationError | Sequence[Mapping[str, Any]]) -> ErrorBody:
    """VALIDATION_ERROR naming every broken field and its rule. Not in REFUSALS: a ValidationError is a refusal only
    where a client's document is validated (a ValidationError elsewhere is a fault, never a 422)."""
    details = [ErrorDetail(field=field, rule=rule) for field, rule in problems(errors)]
    return ErrorBody(
        code=RefusalCode.VALIDATION_ERROR, message=f"{len(details)} field(s) break the schema", fields=details
    )
