"""What follows a recipient's move to CANCELED, whoever made it (the cancel request, or a dispatcher finding the
pack a cancel took): its `message.canceled` event and its spend reservation given back (it will never be charged)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from globesms.guardrails.ports import SpendReleases
from globesms.guardrails.release import release_unsent
from globesms.models.records import MessageRecord
from globesms.ports import WebhookQueue
from globesms.webhooks.events import queue_status_events


def settle_canceled(
    webhooks: WebhookQueue, spend: SpendReleases | None, canceled_now: Sequence[MessageRecord], now: datetime
) -> None:
    """For the records moved to CANCELED by this caller's own write, and for those an earlier attempt moved before it
    stopped (a retried cancel, a redelivered canceled pack): an event repeated has the same id, which receivers drop,
    and a reservation is given back once (`release_once`)."""
    queue_status_events(webhooks, canceled_now, now)
    if spend is not None:
        release_unsent(spend, canceled_now)
