"""The error shapes of the public contract, in the one error-code vocabulary (`globesms.errors`): a recipient
refused (`RecipientError`, in an accept's answer and a message's record) and a whole request refused (`ErrorBody`,
the API's 4xx answers and an SQS intake body's record).

Apart from `models.api` so that what records them (`models.records`, the stored shapes every function reads) loads
without the request models, their validators and what those import (settings, quiet hours, send times): the
functions that never accept a request (dispatch, receipts, webhooks, reconcile, the scheduler, the status counts)
no longer pay for them at a cold start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field, ValidationError

from globesms.errors import RecipientCode, RefusalCode
from globesms.models.base import Model
from globesms.validation import first_problems

#: The most `fields` one refusal lists, and the longest field path it writes out (a path names the client's own keys,
#: which may be as long as the body). Without them a 400 KB body of 200,000 bad numbers was answered with a 16 MB
#: 422, more than Lambda can return (API Gateway answered 502), and an SQS intake body's refusal did not fit the
#: REJECTED header it is recorded on (one DynamoDB item, < 400 KB), as a header's recipient errors would not
#: without `MAX_STORED_ERRORS`, the same number.
MAX_REFUSAL_FIELDS = 100
MAX_FIELD_PATH_CHARS = 200


class RecipientError(Model):
    index: int = Field(description="Position of the recipient in the request, counting across all specs")
    to: str
    code: RecipientCode
    message: str


class ErrorDetail(Model):
    field: str
    rule: str


class ErrorBody(Model):
    code: RefusalCode
    message: str
    fields: list[ErrorDetail] = Field(default_factory=list)
    fields_total: int | None = Field(
        default=None,
        description=f"How many field rules were broken in all, when there were more than the {MAX_REFUSAL_FIELDS} "
        "`fields` lists (the first ones); absent when `fields` lists them all",
    )


class ErrorResponse(Model):
    error: ErrorBody


def schema_error(errors: ValidationError | Iterable[Mapping[str, Any]]) -> ErrorBody:
    """VALIDATION_ERROR naming the broken fields and their rules: the first MAX_REFUSAL_FIELDS, with `fields_total`
    when there were more. The one way both entrances (the API, the SQS intake) list a schema's refusal."""
    listed, total = first_problems(errors, MAX_REFUSAL_FIELDS)
    details = [ErrorDetail(field=_shortened(path), rule=rule) for path, rule in listed]
    message = f"{total} field(s) break the schema"
    if total > len(details):
        message += f"; the first {len(details)} are listed"
    return ErrorBody(
        code=RefusalCode.VALIDATION_ERROR,
        message=message,
        fields=details,
        fields_total=total if total > len(details) else None,
    )


def _shortened(path: str) -> str:
    return path if len(path) <= MAX_FIELD_PATH_CHARS else path[: MAX_FIELD_PATH_CHARS - 1] + "…"
