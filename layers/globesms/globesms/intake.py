"""Accepting a body from the SQS intake queue exactly as the API accepts it.

A body that is not JSON or breaks the schema is refused as a whole: a REJECTED batch header records why (under
the body's `batch_id` when it has a usable one, else `sqs-<MessageId>`), and `IntakeRefused` is raised so the
record fails alone (partial batch response) and reaches the dead-letter queue after the queue's maxReceiveCount.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, NoReturn

from pydantic import TypeAdapter, ValidationError

from globesms.accept import BatchIdConflict, TooManyRecipients, accept, expiry
from globesms.clock import iso
from globesms.http_errors import describe_errors
from globesms.ids import sqs_batch_id
from globesms.models.api import BATCH_ID_PATTERN, AcceptResponse, ErrorBody, SendBody, SqsIntakeEnvelope, specs_of
from globesms.models.records import BatchRecord
from globesms.ports import MessageStore, PackQueues

_body_adapter: TypeAdapter[Any] = TypeAdapter(SendBody)
_BATCH_ID = re.compile(BATCH_ID_PATTERN)


class IntakeRefused(ValueError):
    def __init__(self, batch_id: str, refusal: ErrorBody) -> None:
        super().__init__(f"{refusal.code}: {refusal.message}")
        self.batch_id = batch_id
        self.refusal = refusal


def accept_intake_body(
    body: str,
    *,
    sqs_message_id: str,
    now: datetime,
    retention_days: int,
    store: MessageStore,
    queues: PackQueues,
) -> AcceptResponse:
    batch_id = sqs_batch_id(sqs_message_id)
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        _refuse(
            store, batch_id, now, retention_days, ErrorBody(code="MALFORMED_JSON", message="the body is not valid JSON")
        )
    if not isinstance(data, dict):
        _refuse(
            store,
            batch_id,
            now,
            retention_days,
            ErrorBody(code="VALIDATION_ERROR", message="the body must be a JSON object"),
        )
    claimed = data.pop("batch_id", None)
    if isinstance(claimed, str) and _BATCH_ID.match(claimed):
        batch_id = claimed
    try:
        SqsIntakeEnvelope(batch_id=claimed)
        parsed = _body_adapter.validate_python(data)
    except ValidationError as exc:
        details = describe_errors(exc.errors())
        _refuse(
            store,
            batch_id,
            now,
            retention_days,
            ErrorBody(code="VALIDATION_ERROR", message=f"{len(details)} field(s) break the schema", fields=details),
        )
    try:
        return accept(
            specs_of(parsed),
            batch_id=batch_id,
            source="sqs",
            now=now,
            retention_days=retention_days,
            store=store,
            queues=queues,
        )
    except TooManyRecipients as exc:
        _refuse(store, batch_id, now, retention_days, ErrorBody(code="TOO_MANY_RECIPIENTS", message=str(exc)))
    except BatchIdConflict as exc:
        # Refused without writing: the header belongs to the other body.
        raise IntakeRefused(batch_id, ErrorBody(code="BATCH_ID_CONFLICT", message=str(exc))) from None


def _refuse(store: MessageStore, batch_id: str, now: datetime, retention_days: int, refusal: ErrorBody) -> NoReturn:
    # Conditional: a redelivered bad body writes nothing new, and a bad body that reuses the batch_id of a good
    # batch never overwrites it.
    store.begin_batch(
        BatchRecord(
            batch_id=batch_id,
            source="sqs",
            state="REJECTED",
            created_at=iso(now),
            refusal=refusal,
            expires_at=expiry(now, retention_days),
        )
    )
    raise IntakeRefused(batch_id, refusal)
