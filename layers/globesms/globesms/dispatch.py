"""Sending one pack from a provider queue and recording every recipient's outcome.

Outcomes, per recipient: a provider message id -> SUBMITTED; a provider error -> FAILED with the normalised
category and the raw code. Two exceptions keep a message out of a final state it may not deserve:
- a call that failed as a whole with a transient error (retryable/throttled, nothing accepted) raises
  `RetryPack`, so SQS delivers the pack again after its visibility timeout; on the last receive the records are
  first marked FAILED with that error, so a pack in the dead-letter queue always has records that say so;
- an unknown outcome (the request may have reached the provider) leaves the record in SENDING with the error
  kept: sending again could text somebody twice, so the delivery receipt decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from globesms.clock import iso
from globesms.errors import ErrorCategory, InvalidProviderRequest, ProviderError
from globesms.models.outbound import MessageType, OutboundSms, SendOutcome
from globesms.models.packs import DispatchPack
from globesms.models.records import MessageRecord
from globesms.ports import MessageStore, Provider
from globesms.status import Status

_TRANSIENT = frozenset({ErrorCategory.RETRYABLE, ErrorCategory.THROTTLED})


class RetryPack(RuntimeError):
    def __init__(self, error: ProviderError) -> None:
        super().__init__(f"{error.category}: {error.code}")
        self.error = error


@dataclass(frozen=True)
class DispatchSummary:
    submitted: int
    failed: int
    unknown: int


def outbound_messages(pack: DispatchPack) -> list[OutboundSms]:
    messages = []
    for recipient in pack.recipients:
        content = pack.contents[recipient.c]
        messages.append(
            OutboundSms(
                message_id=recipient.id,
                to=recipient.to,
                type=MessageType(content.type),
                text=content.text,
                template_id=content.template_id,
                template_params=tuple(content.template_params.values()) if content.template_params else (),
                sender_id=content.sender_id,
                validity_seconds=content.validity_seconds,
            )
        )
    return messages


def send_all(provider: Provider, messages: Sequence[OutboundSms]) -> list[SendOutcome]:
    """Calls the provider in chunks of its per-call cap; a request the client refuses before sending fails
    its own chunk with category `request` and the field and rule it broke."""
    outcomes: list[SendOutcome] = []
    step = provider.max_recipients_per_call
    for start in range(0, len(messages), step):
        chunk = messages[start : start + step]
        try:
            outcomes.extend(provider.send(chunk))
        except InvalidProviderRequest as exc:
            error = ProviderError(ErrorCategory.REQUEST, "INVALID_REQUEST", f"{exc.field}: {exc.rule}")
            outcomes.extend(SendOutcome(message_id=m.message_id, error=error) for m in chunk)
    return outcomes


def dispatch_pack(
    pack: DispatchPack,
    *,
    provider: Provider,
    store: MessageStore,
    now: datetime,
    last_attempt: bool,
) -> DispatchSummary:
    outcomes = send_all(provider, outbound_messages(pack))
    whole_call_error = _shared_transient_error(outcomes)
    if whole_call_error is not None and not last_attempt:
        raise RetryPack(whole_call_error)
    records = [_record(pack, i, outcome, now) for i, outcome in enumerate(outcomes)]
    store.put_messages(records)
    summary = DispatchSummary(
        submitted=sum(r.status is Status.SUBMITTED for r in records),
        failed=sum(r.status is Status.FAILED for r in records),
        unknown=sum(r.status is Status.SENDING for r in records),
    )
    if whole_call_error is not None:
        raise RetryPack(whole_call_error)  # recorded as FAILED above; now let SQS move it to the DLQ
    return summary


def _shared_transient_error(outcomes: Sequence[SendOutcome]) -> ProviderError | None:
    errors = [o.error for o in outcomes]
    if not errors or any(e is None or e.category not in _TRANSIENT for e in errors):
        return None
    return errors[-1]


def _record(pack: DispatchPack, index: int, outcome: SendOutcome, now: datetime) -> MessageRecord:
    recipient = pack.recipients[index]
    content = pack.contents[recipient.c]
    error = outcome.error
    if error is None:
        status = Status.SUBMITTED
    elif error.category is ErrorCategory.UNKNOWN_OUTCOME:
        status = Status.SENDING
    else:
        status = Status.FAILED
    stamp = iso(now)
    return MessageRecord(
        id=recipient.id,
        batch_id=pack.batch_id,
        to=recipient.to,
        provider=pack.provider,
        type=content.type,
        status=status,
        text=content.text,
        template_id=content.template_id,
        template_params=content.template_params,
        sender_id=content.sender_id,
        validity_seconds=content.validity_seconds,
        client_ref=content.client_ref,
        status_callback=content.status_callback,
        status_callback_on_submitted=content.status_callback_on_submitted,
        segments=outcome.segments or recipient.segments,
        provider_message_id=outcome.provider_message_id,
        error_category=str(error.category) if error else None,
        error_code=error.code if error else None,
        error_message=error.message if error else None,
        created_at=pack.created_at,
        updated_at=stamp,
        submitted_at=stamp if status is Status.SUBMITTED else None,
        expires_at=pack.expires_at,
    )
