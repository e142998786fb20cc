"""Canceling what has not been handed to a provider: `DELETE /v1/messages/{id}` and `DELETE /v1/batches/{id}`.

Cancelable are the recipients still SCHEDULED (waiting for their send_at, or deferred by quiet hours). A
conditional write moves each to CANCELED (a final status: it never changes again), the same kind of write a release
claims it with, so one of the two wins and a recipient is never both sent and reported canceled. Everything else is
answered as not cancelable with its status: released to its provider queue (QUEUED) or later, or final already.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from globesms.accept.queries import effective_status
from globesms.domain.status import Status
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


def cancel_messages(
    schedule: ScheduleStore, webhooks: WebhookQueue, message_ids: list[str], *, now: datetime
) -> CancelAnswer:
    """Cancel these records (all found to exist); queue a `message.canceled` event for each one canceled now."""
    canceled_now, others = schedule.cancel_scheduled(message_ids, now=now)
    queue_status_events(webhooks, canceled_now, now)
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
    store: MessageStore, schedule: ScheduleStore, webhooks: WebhookQueue, message_id: str, *, now: datetime
) -> CancelAnswer | None:
    """Cancel one message; None when there is no such message."""
    found = store.get_message(message_id)
    if found is None:
        return None
    record, batch = found
    if record.status is Status.SCHEDULED:
        return cancel_messages(schedule, webhooks, [message_id], now=now)
    if record.status is Status.CANCELED:
        return CancelAnswer(canceled=[message_id], not_cancelable=[])
    return CancelAnswer(
        canceled=[], not_cancelable=[NotCancelable(id=message_id, status=effective_status(record, batch))]
    )


def cancel_batch(
    store: MessageStore, schedule: ScheduleStore, webhooks: WebhookQueue, batch_id: str, *, now: datetime
) -> CancelAnswer | None:
    """Cancel every SCHEDULED recipient of the batch; None when there is no such batch."""
    batch = store.get_batch(batch_id)
    if batch is None:
        return None
    answer = CancelAnswer(canceled=[], not_cancelable=[])
    after: str | None = None
    while True:
        records, after = store.list_batch_messages(batch_id, limit=LIST_PAGE, after=after)
        waiting = [r.id for r in records if r.status is Status.SCHEDULED]
        if waiting:
            part = cancel_messages(schedule, webhooks, waiting, now=now)
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
