"""Status events for the customer's `status_callback`, and how they travel on the webhook queue."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from globesms.models.base import Model


class WebhookEvent(Model):
    """What the customer receives. `id` is stable (`<message id>.<status>`), so a receiver can deduplicate."""

    id: str
    type: str = Field(description="message.<status in lower case>, e.g. message.delivered")
    message: dict[str, Any] = Field(description="the message as GET /v1/messages/{id} shows it")
    created_at: str


class WebhookDelivery(Model):
    """The body of a webhook queue message."""

    url: str
    event: WebhookEvent
    owner: str | None = Field(default=None, description="the message's API key id: its own signing secret, if any")
