"""Accepting a body from the SQS intake queue exactly as the API accepts it.

A body that is not JSON or breaks the schema is refused as a whole: a REJECTED batch header records why (under
the body's `batch_id` when it has a usable one, else `sqs-<MessageId>`; a body past the read limits of
`accept/bodies.py` is not read, so always the latter), and `IntakeRefused` is raised so the
record fails alone (partial batch response) and reaches the dead-letter queue after the queue's maxReceiveCount.

A body's `batch_id` (else `sqs-<MessageId>`) is an idempotency key of its own: accept writes the batch header
conditionally. A REJECTED header of a body refused as a whole does not hold its id: a corrected body replaces it.
A body with an `idempotency_key` is also accepted once per key within 24 h through `run_once` (Powertools
idempotency): a repeat with the same body (`batch_id` included) is answered with the first batch and
writes and sends nothing, even under another MessageId; one with another body is refused as
`IDEMPOTENCY_KEY_REUSED`; one that arrives while the first is still running raises `IntakeDeferred`, so SQS
delivers it again after the visibility timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, Protocol

from pydantic import TypeAdapter, ValidationError

from globesms.accept.bodies import BodyTooLarge, MalformedJson, read_json
from globesms.accept.canonical import idempotency_payload, keyed_batch
from globesms.accept.idempotency_outcomes import BatchDoneBefore, KeyInProgress, Outcome
from globesms.accept.planning import expiry
from globesms.accept.refusals import REFUSED, refusal_of, schema_refusal
from globesms.accept.service import BatchIdConflict, accept
from globesms.domain.clock import iso
from globesms.domain.ids import sqs_batch_id
from globesms.errors import RefusalCode
from globesms.guardrails.documents import DocumentUnavailable
from globesms.guardrails.otp_guard import OtpGuard
from globesms.guardrails.ports import SpendAccount
from globesms.models.api import MessageSpec, SendBody, SqsIntakeEnvelope, is_batch_id, specs_of
from globesms.models.errors import ErrorBody, ErrorDetail
from globesms.models.records import BatchRecord
from globesms.models.views import AcceptResponse
from globesms.ports import MessageStore, PackQueues

_body_adapter: TypeAdapter[Any] = TypeAdapter(SendBody)


IDEMPOTENCY_SCOPE = "sqs"


class IntakeRefused(ValueError):
    def __init__(self, batch_id: str, refusal: ErrorBody) -> None:
        super().__init__(f"{refusal.code}: {refusal.message}")
        self.batch_id = batch_id
        self.refusal = refusal


class IntakeDeferred(RuntimeError):
    """Not now (nothing written): the body's idempotency key is in use by a run still in progress, or the
    deployment's guardrail settings have not been read yet (`DocumentUnavailable`)."""

    def __init__(self, batch_id: str, reason: str, *, metric: str) -> None:
        super().__init__(reason)
        self.batch_id = batch_id
        self.metric = metric


class RunOnce(Protocol):
    """`globesms.idempotency.run_once`, or a stand-in."""

    def __call__(self, *, scope: str, key: str, payload: Any, work: Callable[[], AcceptResponse]) -> Outcome: ...


@dataclass(frozen=True)
class IntakeOutcome:
    answer: AcceptResponse
    replayed: bool  # an idempotency key's first answer, given again: nothing was written or sent


def accept_intake(
    body: str,
    *,
    sqs_message_id: str,
    now: datetime,
    retention_days: int,
    store: MessageStore,
    queues: PackQueues,
    run_once: RunOnce | None = None,
    ledger: SpendAccount | None = None,
    owner: str | None = None,
    otp: OtpGuard | None = None,
    accepting_until: datetime | None = None,
) -> IntakeOutcome:
    """Accepts one intake body. Without `run_once` an `idempotency_key` is checked but not enforced (the batch id
    still is): the Lambda always passes `globesms.idempotency.run_once`. `owner`: the configured intake owner,
    whose records, spend and limits these are (docs/guardrails.md). `accepting_until`: the invocation's deadline
    (`service.accept`)."""
    refuse = _Refusals(store, now, retention_days, owner)
    batch_id, envelope, specs = _parse(body, sqs_batch_id(sqs_message_id), refuse)
    accepted_as = batch_id
    if envelope.idempotency_key is not None and envelope.batch_id is None:
        # As the API does: a body that names no batch gets one from its key, so a receive that died after queueing
        # is resumed by a later one under the same key (even from another SQS message), not sent as a new batch.
        # Refusals stay under this message's own `sqs-<MessageId>`.
        accepted_as = keyed_batch(IDEMPOTENCY_SCOPE, envelope.idempotency_key, specs, store)

    def work() -> AcceptResponse:
        return accept(
            specs,
            batch_id=accepted_as,
            source="sqs",
            now=now,
            retention_days=retention_days,
            store=store,
            queues=queues,
            ledger=ledger,
            owner=owner,
            otp=otp,
            accepting_until=accepting_until,
        )

    try:
        if envelope.idempotency_key is None or run_once is None:
            return IntakeOutcome(work(), replayed=False)
        # What the key stands for: the batch id the body names (or none) and the specs, compared as `accept.canonical`.
        payload = {"batch_id": envelope.batch_id, "specs": idempotency_payload(specs)}
        outcome = run_once(scope=IDEMPOTENCY_SCOPE, key=envelope.idempotency_key, payload=payload, work=work)
        return IntakeOutcome(outcome.answer, outcome.replayed)
    except BatchDoneBefore as done:  # a body delivered (or sent) again: its batch stands, nothing sent again
        return IntakeOutcome(done.answer, replayed=True)
    except (KeyInProgress, DocumentUnavailable) as exc:
        metric = "GuardrailsUnavailable" if isinstance(exc, DocumentUnavailable) else "IdempotencyKeyInProgress"
        raise IntakeDeferred(batch_id, str(exc), metric=metric) from None
    except BatchIdConflict as exc:
        # Refused without writing: the header belongs to the other body.
        raise IntakeRefused(batch_id, refusal_of(exc)) from None
    except REFUSED as exc:
        refuse(batch_id, refusal_of(exc))


def _parse(body: str, batch_id: str, refuse: _Refusals) -> tuple[str, SqsIntakeEnvelope, list[MessageSpec]]:
    """The body's batch id (the one it names, if well formed, else `batch_id`), envelope and specs; a body that
    cannot be read is refused (`refuse`) under that batch id."""
    try:
        data = read_json(body)
    except (MalformedJson, BodyTooLarge) as exc:
        refuse(batch_id, refusal_of(exc))
    if not isinstance(data, dict):
        not_an_object = [ErrorDetail(field="body", rule="must be a JSON object")]
        refusal = ErrorBody(
            code=RefusalCode.VALIDATION_ERROR, message="the body must be a JSON object", fields=not_an_object
        )
        refuse(batch_id, refusal)
    claimed = data.pop("batch_id", None)
    if is_batch_id(claimed):  # exactly as the envelope validates it
        batch_id = claimed
    # Both checked, their errors answered together, as the API answers a bad header with a bad body: a body over the
    # recipient limit is refused as that (413) whatever else is wrong with it.
    errors: list[Any] = []
    try:
        envelope = SqsIntakeEnvelope(batch_id=claimed, idempotency_key=data.pop("idempotency_key", None))
    except ValidationError as exc:
        errors += exc.errors()
    try:
        parsed = _body_adapter.validate_python(data)
    except ValidationError as exc:
        errors += exc.errors()
    if errors:
        refuse(batch_id, schema_refusal(errors))
    if parsed.dry_run:  # a quote is an API answer: a queue has nobody to give it to
        refusal = ErrorBody(
            code=RefusalCode.VALIDATION_ERROR,
            message="dry_run is for POST /v1/messages only",
            fields=[ErrorDetail(field="dry_run", rule="a dry run is answered by the API; the intake only sends")],
        )
        refuse(batch_id, refusal)
    return batch_id, envelope, specs_of(parsed)


@dataclass(frozen=True)
class _Refusals:
    """Records a body refused as a whole as a REJECTED header, and raises IntakeRefused."""

    store: MessageStore
    now: datetime
    retention_days: int
    owner: str | None  # the intake owner's, as its accepted batches are: a header without one is every caller's

    def __call__(self, batch_id: str, refusal: ErrorBody) -> NoReturn:
        # Conditional: a redelivered bad body writes nothing new, and a bad body that reuses the batch_id of a good
        # batch never overwrites it.
        self.store.begin_batch(
            BatchRecord(
                batch_id=batch_id,
                source="sqs",
                state="REJECTED",
                created_at=iso(self.now),
                refusal=refusal,
                expires_at=expiry(self.now, self.retention_days),
                owner=self.owner,
            )
        )
        raise IntakeRefused(batch_id, refusal)
