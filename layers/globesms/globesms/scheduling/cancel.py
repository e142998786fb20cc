"""Canceling what has not been handed to a provider: `DELETE /v1/messages/{id}` and `DELETE /v1/batches/{id}`.

Cancelable are the recipients still SCHEDULED (waiting for their send_at, or deferred by quiet hours). A
conditional write moves each to CANCELED (a final status: it never changes again), the same kind of write a release
claims it with, so one of the two wins and a recipient is never both sent and reported canceled. Everything else is
answered as not cancelable with its status: released to its provider queue (QUEUED) or later, or final already.

A canceled recipient never reaches a provider, so its spend reservation is given back (guardrails/release.py), once.
A caller sees and cancels only its own messages (the API key's owner, as for reads): another owner's are not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

from globesms.accept.queries import effective_status, visible
from globesms.domain.status import Status
from globesms.guardrails.ports import SpendReleases
from globesms.guardrails.release import release_unsent
from globesms.ports import MessageStore, ScheduleStore, WebhookQueue
from globesms.webhooks.events import queue_status_events

LIST_PAGE = 1_000


class NotCancelable(BaseModel):
    id: str
    status: Status = Field(description="its status now: released to its provider (QUEUED) or later, or final")


class CancelAnswer(BaseModel):
    """What the cancel did: the recipients now CANCELED, and those it could not cancel"""

    canceled: list[str] = Field(description="ids now CANCELED (by this request or an earlier one)")
    not_cancelable: list[NotCancelable] = Field(description="ids already handed on, or final, with their status")


@dataclass(frozen=True)
class CancelDeps:
    store: MessageStore
    schedule: ScheduleStore
    webhooks: WebhookQueue
    spend: SpendReleases


def cancel_messages(deps: CancelDeps, message_ids: list[str], *, now: datetime) -> CancelAnswer:
    """Cancel these records (all found to exist); queue a `message.canceled` event for each one canceled now and
    give its spend reservation back."""
    canceled_now, others = deps.schedule.cancel_scheduled(message_ids, now=now)
    queue_status_events(deps.webhooks, canceled_now, now)
    release_unsent(deps.spend, canceled_now)
    done = {r.id for r in canceled_now} | {i for i, s in others.items() if s == Status.CANCELED}
    return CancelAnswer(
        canceled=[i for i in message_ids if i in done],
        not_cancelable=[
            NotCancelable(id=i, status=_as_shown(Status(others[i])))
            for i in message_ids
            if i not in done and i in others
        ],
    )


def _as_shown(status: Status) -> Status:
    # An ACCEPTED record is on its provider queue (or about to be): the API shows it as QUEUED.
    return Status.QUEUED if status is Status.ACCEPTED else status


def cancel_message(
    deps: CancelDeps, message_id: str, *, now: datetime, owner: str | None = None
) -> CancelAnswer | None:
    """Cancel one message; None when there is no such message (or it is another owner's)."""
    found = deps.store.get_message(message_id)
    if found is None:
        return None
    record, batch = found
    if not visible(record.owner or (batch.owner if batch else None), owner):
        return None
    if record.status is Status.SCHEDULED:
        return cancel_messages(deps, [message_id], now=now)
    if record.status is Status.CANCELED:
        return CancelAnswer(canceled=[message_id], not_cancelable=[])
    return CancelAnswer(
        canceled=[], not_cancelable=[NotCancelable(id=message_id, status=effective_status(record, batch))]
    )


def cancel_batch(deps: CancelDeps, batch_id: str, *, now: datetime, owner: str | None = None) -> CancelAnswer | None:
    """Cancel every SCHEDULED recipient of the batch; None when there is no such batch (or it is another owner's)."""
    batch = deps.store.get_batch(batch_id)
    if batch is None or not visible(batch.owner, owner):
        return None
    answer = CancelAnswer(canceled=[], not_cancelable=[])
    after: str | None = None
    while True:
        records, after = deps.store.list_batch_messages(batch_id, limit=LIST_PAGE, after=after)
        waiting = [r.id for r in records if r.status is Status.SCHEDULED]
        if waiting:
            part = cancel_messages(deps, waiting, now=now)
            answer.canceled += part.canceled
            answer.not_cancelable += part.not_cancelable
        for record in records:
            if record.status is Status.CANCELED:
                answer.canceled.append(record.id)
            elif record.status is not Status.SCHEDULED:
                answer.not_cancelable.append(NotCancelable(id=record.id, status=effective_status(record, batch)))
        if after is None:
            break
    answer.canceled.sort()
    answer.not_cancelable.sort(key=lambda n: n.id)
    return answer
