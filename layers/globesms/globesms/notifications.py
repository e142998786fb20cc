"""Which status changes the customer hears about, and the event they get."""

from __future__ import annotations

from datetime import datetime

from globesms.clock import iso
from globesms.models.records import MessageRecord
from globesms.models.webhooks import WebhookDelivery, WebhookEvent
from globesms.queries import message_view
from globesms.status import Status


def status_event(record: MessageRecord, now: datetime) -> WebhookDelivery | None:
    """An event for the record's current status when its spec asked for one: every final status, and SUBMITTED
    with `status_callback_on_submitted`. The event id is `<message id>.<status>`: the same status always yields the
    same id, so a receiver deduplicates the repeats at-least-once delivery brings."""
    if not record.status_callback:
        return None
    if not (record.status.is_final or (record.status is Status.SUBMITTED and record.status_callback_on_submitted)):
        return None
    status = record.status.value.lower()
    return WebhookDelivery(
        url=record.status_callback,
        event=WebhookEvent(
            id=f"{record.id}.{status}",
            type=f"message.{status}",
            message=message_view(record, None).model_dump(mode="json"),
            created_at=iso(now),
        ),
    )
