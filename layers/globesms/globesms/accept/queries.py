"""The read side of the API: a message, a batch with its counts and a page of its messages, and messages found by
client_ref or number."""

from __future__ import annotations

from collections.abc import Mapping
from operator import attrgetter
from typing import Any

from globesms.counts.tally import batch_counts
from globesms.domain.history import (
    FIRST_SUBMITTED_STEP,
    RESEND_AFTER_UNKNOWN_OUTCOME_STEP,
    SENDING_STEP,
    earlier_attempt,
)
from globesms.domain.status import Status
from globesms.models.outbound import ProviderName
from globesms.models.records import BatchRecord, MessageRecord
from globesms.models.views import BatchView, MessageError, MessageEvent, MessageList, MessageView
from globesms.ports import MessageFinder, MessageLookup, MessageStore

MAX_PAGE = 1_000
_event_time = attrgetter("at")
HANDED_ON = ("QUEUED", "INTERRUPTED")  # batch states whose ACCEPTED records read as QUEUED
MAX_FOUND_PAGE = 100  # found messages are read back whole (with their batch headers): one BatchGetItem per page


def effective_status(record: MessageRecord, batch: BatchRecord | None) -> Status:
    # Accept writes records once, as ACCEPTED, and marks the batch header QUEUED after its packs are on the
    # queues, instead of rewriting every record (one write unit per recipient saved). In an INTERRUPTED batch an
    # ACCEPTED record is in a pack a dispatcher holds (the others were canceled): on its way too.
    if record.status is Status.ACCEPTED and batch is not None and batch.state in HANDED_ON:
        return Status.QUEUED
    return record.status


def batch_messages(store: MessageStore, batch_id: str) -> list[MessageRecord]:
    """Every message of a batch, in id order (consistent reads, a page of MAX_PAGE at a time)."""
    records: list[MessageRecord] = []
    after: str | None = None
    while True:
        page, after = store.list_batch_messages(batch_id, limit=MAX_PAGE, after=after)
        records += page
        if after is None:
            return records


def history(record: MessageRecord) -> list[MessageEvent]:
    """Oldest first (docs/api.md): ACCEPTED and the latest SUBMITTED (or FAILED) come from the record's time stamps,
    the rest from its stored events, and a resend after an UNDELIVERED receipt puts the steps of its first attempt
    before the resend's SUBMITTED. Sorted by time, as stored (`iso`: the strings order as the times do); a stable
    sort, so events of one instant stay in the order they were written."""
    events = [MessageEvent(type="status", status=Status.ACCEPTED, at=record.created_at)]
    if record.submitted_at and not _first_submit_kept(record):
        events.append(
            MessageEvent(type="status", status=Status.SUBMITTED, at=record.submitted_at, provider=record.provider)
        )
    elif record.status is Status.FAILED:
        events.append(MessageEvent(type="status", status=record.status, at=record.updated_at, provider=record.provider))
    first_attempt = earlier_attempt(record.events)
    sending_at: ProviderName | None = None  # where the last SENDING step named happened: its resend's too
    for event in record.events or ():
        provider = _provider_of(event, record, first_attempt)
        if event.get("id") == SENDING_STEP and event.get("provider"):
            sending_at = provider
        elif event.get("id") == RESEND_AFTER_UNKNOWN_OUTCOME_STEP and sending_at is not None:
            provider = sending_at  # written without a provider (its pack's split is measured with it)
        events.append(
            MessageEvent(
                type="status" if event.get("type") == "status" else "receipt",
                at=event["received_at"],
                status=event.get("status"),
                raw_status=event.get("raw_status"),
                error_code=event.get("error_code"),
                description=event.get("description"),
                provider_time=event.get("provider_time"),
                part=event.get("part"),
                parts=event.get("parts"),
                provider=provider,
            )
        )
    return sorted(events, key=_event_time)


def _provider_of(
    event: Mapping[str, Any], record: MessageRecord, first_attempt: tuple[ProviderName, str] | None
) -> ProviderName | None:
    """A step names the provider it happened at (or left); a receipt is the first attempt's when it carries that
    attempt's provider message id, else the current attempt's."""
    if event.get("provider"):
        return ProviderName(event["provider"])
    if event.get("type") == "status":
        return record.provider  # a step of the current attempt (SENDING after an unknown outcome, its expiry)
    if first_attempt is not None and event.get("provider_message_id") == first_attempt[1]:
        return first_attempt[0]
    return record.provider


def _first_submit_kept(record: MessageRecord) -> bool:
    """Whether the record's `submitted_at` is its first attempt's, kept as a stored step too: a resend after an
    UNDELIVERED receipt keeps `submitted_at` until its own dispatch (the route statistics time the first attempt's
    receipt from it), and its stored step says the same SUBMITTED once already."""
    return any(
        event.get("id") == FIRST_SUBMITTED_STEP and event.get("received_at") == record.submitted_at
        for event in record.events or ()
    )


def message_view(record: MessageRecord, batch: BatchRecord | None) -> MessageView:
    error = None
    if record.error_code:
        error = MessageError(category=record.error_category, code=record.error_code, message=record.error_message or "")
    return MessageView(
        id=record.id,
        batch_id=record.batch_id,
        to=record.to,
        status=effective_status(record, batch),
        type=record.type,
        provider=record.provider,
        provider_message_id=record.provider_message_id,
        segments=record.segments,
        encoding=record.encoding,
        price=record.price,
        cost=record.cost,
        currency=record.currency,
        client_ref=record.client_ref,
        error=error,
        created_at=record.created_at,
        updated_at=record.updated_at,
        submitted_at=record.submitted_at,
        send_at=record.send_at,
        events=history(record),
    )


def visible(record_owner: str | None, caller: str | None) -> bool:
    """Another API key's message or batch is not found (404, not 403: its existence is not told). A caller without
    a key (none is configured) and a record from before owners were kept see and are seen as before."""
    return caller is None or record_owner is None or record_owner == caller


def get_message(store: MessageStore, message_id: str, owner: str | None = None) -> MessageView | None:
    found = store.get_message(message_id)
    # The batch's owner when the record has none: a record a dispatcher rewrote before packs carried the owner.
    if found is None or not visible(found[0].owner or (found[1].owner if found[1] else None), owner):
        return None
    record, batch = found
    return message_view(record, batch)


def get_batch(
    store: MessageStore, batch_id: str, *, limit: int, after: str | None, owner: str | None = None
) -> BatchView | None:
    batch = store.get_batch(batch_id)
    if batch is None or not visible(batch.owner, owner):
        return None
    records, cursor = store.list_batch_messages(batch_id, limit=min(max(limit, 1), MAX_PAGE), after=after)
    counts = batch_counts(store.batch_tally(batch_id), batch.accepted, batch.scheduled or 0)
    if batch.state in HANDED_ON and Status.ACCEPTED in counts:
        counts[Status.QUEUED] = counts.get(Status.QUEUED, 0) + counts.pop(Status.ACCEPTED)
    return BatchView(
        batch_id=batch.batch_id,
        state=batch.state,
        source=batch.source,
        created_at=batch.created_at,
        accepted=batch.accepted,
        rejected=batch.rejected,
        segments=batch.segments,
        cost=batch.cost,
        currency=batch.currency,
        counts=counts,
        errors=batch.errors,
        refusal=batch.refusal,
        messages=[message_view(r, batch) for r in records],
        next=cursor,
    )


def find_messages(
    finder: MessageFinder, lookup: MessageLookup, *, limit: int, after: str | None, owner: str | None = None
) -> MessageList:
    """Raises ports.InvalidCursor for an `after` this lookup did not give. Another API key's messages are left out
    (a page may then be shorter than `limit`, and still have a next one)."""
    records, batches, cursor = finder.find_messages(lookup, limit=min(max(limit, 1), MAX_FOUND_PAGE), cursor=after)
    shown = [
        message_view(r, batches.get(r.batch_id))
        for r in records
        if visible(r.owner or getattr(batches.get(r.batch_id), "owner", None), owner)
    ]
    return MessageList(messages=shown, next=cursor)
