"""A message's history as receipts grow it: one DynamoDB item (at most 400 KB), while a provider may push any number
of distinct reports for one message (and keep pushing a resent message's first attempt's). The history keeps the
first FIRST_EVENTS_KEPT events (our own steps and the first reports) and the latest MAX_EVENTS_KEPT -
FIRST_EVENTS_KEPT (and our own steps from between them: `bounded_history`), and counts the ones left out in
`events_omitted`. An event is under 1 KB (the parsers bound every field), so 100 of them stay far below the item
limit; a long message's part reports (24 parts at most, two reports each) fit in the latest 80. Every write that
adds receipts to a record goes through `with_receipts` (`receipts.apply`, and `receipts.failover` for the first
attempt's late ones)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from globesms.domain.history import STEP_TYPE
from globesms.models.records import MessageRecord

MAX_EVENTS_KEPT = 100
FIRST_EVENTS_KEPT = 20
#: Receipt ids remembered for dedupe; past this only the ids of the events kept are (a repeat of an omitted report
#: is then appended again: it cannot change a status, statuses only move forward).
MAX_RECEIPT_IDS = 1_000


def bounded_history(history: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The events kept (the first FIRST_EVENTS_KEPT and the latest, MAX_EVENTS_KEPT in all, and our own steps from
    between them) and how many receipts were left out of the middle. Our steps say what the message went through,
    which later writes read (a resend after an UNDELIVERED receipt: which attempt a receipt is for, and which
    provider failed); a message takes a handful at most, so the item stays bounded."""
    if len(history) <= MAX_EVENTS_KEPT:
        return history, 0
    latest = MAX_EVENTS_KEPT - FIRST_EVENTS_KEPT
    ours = [e for e in history[FIRST_EVENTS_KEPT:-latest] if e.get("type") == STEP_TYPE]
    kept = [*history[:FIRST_EVENTS_KEPT], *ours, *history[-latest:]]
    return kept, len(history) - len(kept)


def with_receipts(record: MessageRecord, fresh: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The record's fields after `fresh` receipt events (each with its `id`) are added: its history bounded, the
    count of events left out, and the receipt ids remembered."""
    kept, omitted = bounded_history([*(record.events or []), *fresh])
    receipt_ids = (record.receipt_ids or set()) | {e["id"] for e in fresh}
    if len(receipt_ids) > MAX_RECEIPT_IDS:
        receipt_ids = {e["id"] for e in kept if "id" in e}
    return {
        "events": kept,
        "events_omitted": (record.events_omitted or 0) + omitted or None,
        "receipt_ids": receipt_ids,
    }
