"""The error shapes of the public contract, in the one error-code vocabulary (`globesms.errors`): a recipient
refused (`RecipientError`, in an accept's answer and a message's record) and a whole request refused (`ErrorBody`,
the API's 4xx answers and an SQS intake body's record).

Apart from `models.api` so that what records them (`models.records`, the stored shapes every function reads) loads
without the request models, their validators and what those import (settings, quiet hours, send times): the
functions that never accept a request (dispatch, receipts, webhooks, reconcile, the scheduler, the status counts)
no longer pay for them at a cold start.
"""

from __future__ import annotations

from pydantic import Field

from globesms.errors import RecipientCode, RefusalCode
from globesms.models.base import Model


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


class ErrorResponse(Model):
    error: ErrorBody
