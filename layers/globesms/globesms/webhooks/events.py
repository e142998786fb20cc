"""Which status changes the customer hears about, and the event they get."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from globesms.accept.queries import message_view
from globesms.domain.clock import iso
from globesms.domain.history import RECEIPT_FAILOVER_STEP, has_step
from globesms.domain.status import Status
from globesms.models.records import MessageRecord
from globesms.models.webhooks import WebhookDelivery, WebhookEvent
from globesms.ports import WebhookQueue

# A child of the Powertools logger "globesms": its handler (JSON, the number mask) writes these lines too.
logger = logging.getLogger(__name__)


def status_event(record: MessageRecord, now: datetime) -> WebhookDelivery | None:
    """An event for the record's current status when its spec asked for one: every final status, and SUBMITTED
    with `status_callback_on_submitted`. The event id is `<message id>.<status>`: the same status always yields the
    same id, so a receiver deduplicates the repeats at-least-once delivery brings. A message resent through the next
    provider after an UNDELIVERED receipt (once at most: receipts/failover.py) has the resend's events as
    `<message id>.<status>.resend`: its SUBMITTED is a new event, which under the first attempt's id a receiver
    dropped as a repeat (until 2026-12-06)."""
    if not record.status_callback:
        return None
    if not (record.status.is_final or (record.status is Status.SUBMITTED and record.status_callback_on_submitted)):
        return None
    status = record.status.value.lower()
    attempt = ".resend" if has_step(record.events, RECEIPT_FAILOVER_STEP) else ""
    return WebhookDelivery(
        url=record.status_callback,
        event=WebhookEvent(
            id=f"{record.id}.{status}{attempt}",
            type=f"message.{status}",
            message=message_view(record, None).model_dump(mode="json"),
            created_at=iso(now),
        ),
        owner=record.owner,
    )


def queue_status_events(webhooks: WebhookQueue, records: Sequence[MessageRecord], now: datetime) -> int:
    """Queue the events of these just-written records; returns how many could not be queued."""
    deliveries = [d for d in (status_event(r, now) for r in records) if d is not None]
    if not deliveries:
        return 0
    try:
        webhooks.send_webhooks(deliveries)
    except Exception:
        # The SMS are sent and recorded: failing the pack now would make SQS deliver it again and text everybody
        # twice. The events are lost instead (final ones are queued again by any repeated receipt push).
        logger.exception("status events not queued", extra={"events": len(deliveries)})
        return len(deliveries)
    return 0
