"""What the API answers and status webhooks carry: an accept's answer, a message, a batch, a page of messages.

Apart from the request models (`models.api`) so that the functions that only report (dispatch, receipts and
reconcile build webhook events from `MessageView`) load these without the request models, their validators and what
those import.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from globesms.domain.status import Status
from globesms.models.base import Model
from globesms.models.errors import ErrorBody, RecipientError
from globesms.models.outbound import MessageType, ProviderName


class AcceptedMessage(Model):
    id: str
    to: str
    status: Status
    provider: ProviderName
    segments: int | None = Field(
        default=None,
        description="SMS parts the text takes (what the provider bills); null for a provider's own template, "
        "whose text only the provider holds",
    )
    encoding: Literal["GSM-7", "UCS-2"] | None = Field(
        default=None,
        description="GSM-7 (160 characters, 153 per part) or UCS-2 (70, 67 per part); null as segments",
    )
    price: str | None = Field(
        default=None,
        description="price per SMS part from the price table, a decimal string in `currency`; null when the table "
        "has none for this provider and country",
    )
    cost: str | None = Field(
        default=None,
        description="estimated cost: segments x price (a provider's own template: one part), at the provider of its "
        "current attempt (a failover or a resend prices it there; the month's spend holds every attempt's)",
    )
    currency: str | None = Field(default=None, description="ISO 4217, the price table's")
    send_at: str | None = Field(default=None, description="SCHEDULED: when it is released to its provider (UTC)")


class AcceptResponse(Model):
    """Accepted: every recipient queued or rejected"""

    batch_id: str
    accepted: int
    rejected: int
    messages: list[AcceptedMessage]
    errors: list[RecipientError]


class MessageError(Model):
    category: str | None = None
    code: str
    message: str = ""


class MessageEvent(Model):
    type: Literal["status", "receipt"]
    at: str = Field(description="when globesms recorded it")
    status: Status | None = None
    raw_status: str | None = Field(default=None, description="the provider's own status value")
    error_code: str | None = None
    description: str | None = None
    provider_time: str | None = Field(default=None, description="the provider's timestamp, as sent")
    part: int | None = None
    parts: int | None = None
    provider: ProviderName | None = Field(
        default=None,
        description="the provider the entry is about: the one a receipt came from, the one a SUBMITTED or FAILED "
        "went through, the one a failover or a resend left (its error_code is that provider's); null for ACCEPTED",
    )


class MessageView(Model):
    """The message: its status, provider, error and history"""

    id: str
    batch_id: str
    to: str
    status: Status
    type: MessageType
    provider: ProviderName
    provider_message_id: str | None = None
    segments: int | None = None
    encoding: Literal["GSM-7", "UCS-2"] | None = None
    price: str | None = Field(default=None, description="per SMS part, a decimal string in `currency`")
    cost: str | None = Field(default=None, description="estimated: segments x price")
    currency: str | None = None
    client_ref: str | None = None
    error: MessageError | None = None
    created_at: str
    updated_at: str
    submitted_at: str | None = None
    send_at: str | None = Field(default=None, description="when it was (or is) released to its provider, if scheduled")
    events: list[MessageEvent] = Field(default_factory=list, description="history, oldest first")


class BatchView(Model):
    """The batch: counts by status, per-recipient errors and a page of its messages"""

    batch_id: str
    state: Literal["ACCEPTING", "QUEUED", "REJECTED", "INTERRUPTED"] = Field(
        description="ACCEPTING while its accept runs (or stopped, until retried); QUEUED once every recipient is "
        "queued or held; REJECTED: no recipient accepted; INTERRUPTED: its accept stopped half way and no retry "
        "resumed it in time, so its recipients not yet handed to a provider were CANCELED"
    )
    source: str
    created_at: str
    accepted: int
    rejected: int
    segments: int | None = Field(default=None, description="SMS parts of the accepted recipients (known ones)")
    cost: str | None = Field(default=None, description="estimated cost of the accepted recipients, in `currency`")
    currency: str | None = None
    counts: dict[str, int]
    errors: list[RecipientError]
    refusal: ErrorBody | None = None
    messages: list[MessageView]
    next: str | None = Field(
        default=None,
        description="Cursor for the next page of messages (?after=); null only at the end. A page may be shorter "
        "than `limit` and still have one",
    )


class MessageList(Model):
    messages: list[MessageView] = Field(description="newest first")
    next: str | None = Field(default=None, description="Cursor for the next page (?after=); null on the last page")
