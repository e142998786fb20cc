"""Applying delivery receipts to messages.

A receipt is matched to its message by the provider's message id (the ProviderRef index), else by our id echoed
through the provider (a range of one call's messages, told apart by the number). A push's messages are read in one
batch read before its reports are applied (`_PushLookups`), and an echo that names one message saves the index
lookup when that message carries the report's provider id. It is applied to the message as an
event — deduplicated by receipt id, with optimistic concurrency on the record's version — once the message carries
that provider id (or, after an unknown outcome, carries none and is SENDING). A receipt that arrives before the
message's SUBMITTED write, or for an id we never sent, is *held* under its provider id; dispatch applies held
receipts right after it writes SUBMITTED. Holding first and re-reading the message after closes the race between
the two: whichever writes second sees the other's write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from globesms.domain.clock import iso
from globesms.domain.history import earlier_attempt
from globesms.domain.status import UNDELIVERED_OUTCOMES, Status
from globesms.errors import DispatchCode
from globesms.models.outbound import ProviderName
from globesms.models.receipts import DeliveryReport, EchoRange
from globesms.models.records import MessageRecord, message_id
from globesms.models.webhooks import WebhookDelivery
from globesms.ports import ReceiptStore
from globesms.receipts.failover import (
    failover_event,
    first_attempt_outcome,
    record_earlier_receipt,
    resend_for,
    resend_pending,
    resent_before,
)
from globesms.receipts.history import with_receipts
from globesms.receipts.implied_status import carrier_error, status_after
from globesms.webhooks.events import status_event

MAX_WRITE_ATTEMPTS = 8


class ConcurrentUpdates(RuntimeError):
    pass


@dataclass
class Applied:
    record: MessageRecord
    changed: bool  # the status moved (from the one the caller read), by this call or by a concurrent writer
    duplicate: bool  # every event was already on the record
    duplicate_delivery: bool = False  # a resent message's first attempt was delivered too (receipts.failover)
    #: This call's own write moved the status. Only that writer counts the outcome (route statistics, outcome
    #: metrics): the receipts handler and a dispatcher may both apply one held receipt, the second finding the
    #: first's write.
    moved_here: bool = False
    #: The version that write replaced was final already: a late receipt after reconcile's NO_RECEIPT expiry.
    from_final: bool = False

    @property
    def first_outcome(self) -> bool:
        """This write gave the message its outcome: the route statistics count it (one outcome per message; a late
        receipt that corrects an expiry already counted is kept in the message, not counted again)."""
        return self.moved_here and not self.from_final


@dataclass
class PushResult:
    applied: int = 0
    duplicates: int = 0
    held: int = 0  # matched a message that is not submitted yet
    unmatched: int = 0  # matched no message (stored for reconciliation)
    # the outcome metrics: what this push's writes moved, counted through `route_outcomes` (`outcome_counts`)
    delivered: int = 0
    undelivered: int = 0  # UNDELIVERED, EXPIRED or REJECTED, and a first attempt an UNDELIVERED receipt resent
    # reports that found one of the provider's messages (applied, repeated, held for it, or for its first attempt):
    # the provider's pushes reach us (ReceiptsPushed, the receipts-stopped alarms). Not those matching nothing.
    matched: int = 0
    # reports that named a message (by the provider's id or our echo) with a number that is not the message's: about
    # some other send, whatever ids they carry; neither applied nor held
    wrong_number: int = 0
    webhooks: list[WebhookDelivery] = field(default_factory=list)
    finals: list[MessageRecord] = field(default_factory=list)  # what it adds to the route statistics: route_outcomes
    # receipts.failover: messages to (re)queue on their next provider, new resends, late first-attempt deliveries
    resends: list[MessageRecord] = field(default_factory=list)
    failovers: int = 0
    duplicate_deliveries: int = 0


def takes_receipts_for(record: MessageRecord, provider: ProviderName, provider_message_id: str) -> bool:
    # A receipt pushed by one provider never touches a message sent through another, whatever ids it carries: each
    # provider's token authenticates only that provider's pushes.
    if record.provider is not provider:
        return False
    if record.provider_message_id == provider_message_id:
        return True
    # After an unknown outcome the record has no provider id; its receipt (found through our echoed id) settles it,
    # or, once the policy failed it, is kept in its history without changing its final status (dispatch/
    # unknown_outcomes.py; until 2026-12-06 it was held for a message it could never reach).
    return record.provider_message_id is None and (
        record.status is Status.SENDING or record.error_code == DispatchCode.UNKNOWN_OUTCOME_EXPIRED
    )


def apply_events(
    store: ReceiptStore,
    record: MessageRecord,
    events: Sequence[dict[str, Any]],
    provider_message_id: str,
    now: datetime,
    *,
    failover: bool = False,
) -> Applied:
    """`failover`: an UNDELIVERED receipt may resend the message through its next provider (`receipts.failover`;
    only where the resend can be queued)."""
    original = record.status
    for _ in range(MAX_WRITE_ATTEMPTS):
        fresh = [e for e in events if e["id"] not in (record.receipt_ids or set())]
        if not fresh:
            return Applied(record, changed=record.status is not original, duplicate=True)
        updated, failure = _with_events(record, fresh, provider_message_id, now)
        resend = resend_for(record, updated, failure or {}, now) if failover else None
        if resend is not None:
            updated, saved = resend, store.start_resend(resend, expected_version=record.version, earlier=record)
        else:
            saved = store.save_delivery(updated, expected_version=record.version)
        if saved:
            moved_here = updated.status is not record.status  # `record`: the version this write replaced
            return Applied(
                updated,
                changed=updated.status is not original,
                duplicate=False,
                moved_here=moved_here,
                from_final=record.status.is_final,
            )
        reloaded = store.reload(record.id)
        if reloaded is None:
            raise ConcurrentUpdates(f"message {record.id} disappeared while applying a receipt")
        if reloaded.provider is not record.provider and resent_before(reloaded):
            return _earlier_attempt_events(store, reloaded, fresh, now)  # resent meanwhile: these are the first's
        record = reloaded
    raise ConcurrentUpdates(f"message {record.id}: {MAX_WRITE_ATTEMPTS} conflicting receipt writes")


def _with_events(
    record: MessageRecord, fresh: Sequence[dict[str, Any]], provider_message_id: str, now: datetime
) -> tuple[MessageRecord, Mapping[str, Any] | None]:
    """The record with these new events: its history (bounded), receipt ids, status and error fields; and the
    carrier's failure when the events moved it to one."""
    history = [*(record.events or []), *fresh]
    status = status_after(record.status, history)  # on every event, before any is left out
    update: dict[str, Any] = {
        **with_receipts(record, fresh),
        "status": status,
        "version": record.version + 1,
        "updated_at": iso(now),
        "provider_message_id": record.provider_message_id or provider_message_id,
    }
    failure = carrier_error(history, status) if status is not record.status else _carrier_expiry(record, fresh)
    if failure is not None:
        update |= {
            "error_category": "recipient",
            "error_code": failure.get("error_code") or failure.get("raw_status"),
            "error_message": failure_message(failure),
        }
    elif status is Status.DELIVERED:
        # A delivery settles an earlier unknown outcome: its error no longer describes the message (the SENDING
        # step stays in the history).
        update |= {"error_category": None, "error_code": None, "error_message": None}
    return record.model_copy(update=update), failure


def _carrier_expiry(record: MessageRecord, fresh: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The carrier's own EXPIRED receipt for a message the gateway had ended EXPIRED with NO_RECEIPT ("we never
    heard"): the status stays, the carrier's error takes the place of the verdict (docs/final-status.md)."""
    if record.status is not Status.EXPIRED or record.error_code != DispatchCode.NO_RECEIPT:
        return None
    return next((e for e in reversed(fresh) if e.get("status") == Status.EXPIRED.value), None)


def _earlier_attempt_events(
    store: ReceiptStore, record: MessageRecord, events: Sequence[dict[str, Any]], now: datetime
) -> Applied:
    outcomes = [record_earlier_receipt(store, record, event, now) for event in events]
    latest = store.reload(record.id) or record
    return Applied(
        latest,
        changed=False,
        duplicate=not any(new for new, _ in outcomes),
        duplicate_delivery=any(delivered for _, delivered in outcomes),
    )


def failure_message(failure: Mapping[str, Any]) -> str:
    """The receipt's description, with Tencent's finer sub error when it sent one (kept in the history too)."""
    text = failure.get("description") or ""
    if failure.get("sub_error"):
        detail = f"{failure['sub_error']}: {failure.get('sub_error_desc') or ''}".rstrip(": ")
        text = f"{text} ({detail})" if text else detail
    return text


def record_push(
    reports: Sequence[DeliveryReport], *, store: ReceiptStore, now: datetime, result: PushResult | None = None
) -> PushResult:
    """Stores and applies every report; the caller queues `result.webhooks` and only then acknowledges the push.
    `result`: filled in as the reports are applied, so that a caller whose push failed midway (a write that kept
    conflicting, a DynamoDB error) still has what the reports before it did."""
    result = PushResult() if result is None else result
    lookups = _PushLookups.of(reports, store)
    for report, found in zip(reports, lookups.found, strict=True):
        applied = _record(report, lookups.message(report, found, store), store, now, result)
        if applied is not None:
            lookups.records[applied.id] = applied  # a later report of this push for it starts from this version
    return result


@dataclass
class _PushLookups:
    """The messages a push's reports name, read together before any report is applied: one batch read for the push
    rather than a read per report (a push carries up to 100). A report whose echo names one message (Tencent's `ext`,
    Alibaba's single-send TaskId) is read by that id, with no index lookup; any other by the ProviderRef index. The
    echo is only a shortcut: the record it names is used when it carries the report's provider and provider id —
    the very record the index would give — else the report is looked up by the index as if it had no echo.

    `found[i]`: (the id looked up for report i, whether it came from the echo). `records` is kept current as the
    push applies reports; a record another writer changes meanwhile costs one conditional write and a reload
    (`apply_events`), as any race does."""

    found: list[tuple[str | None, bool]]
    records: dict[str, MessageRecord]

    @classmethod
    def of(cls, reports: Sequence[DeliveryReport], store: ReceiptStore) -> _PushLookups:
        found: list[tuple[str | None, bool]] = []
        for report in reports:
            echo = report.echo
            if echo is not None and echo.first_seq == echo.last_seq and report.to is not None:
                found.append((message_id(echo.batch_id, echo.first_seq), True))
            else:
                found.append((store.message_id_for_provider_ref(report.provider, report.provider_message_id), False))
        wanted = list(dict.fromkeys(message for message, _ in found if message is not None))
        return cls(found, store.read_messages(wanted) if wanted else {})

    def message(
        self, report: DeliveryReport, found: tuple[str | None, bool], store: ReceiptStore
    ) -> MessageRecord | None:
        """What `store.message_for_provider_ref` gives for the report."""
        message, by_echo = found
        record = self.records.get(message) if message is not None else None
        if not by_echo:
            return record
        if (
            record is not None
            and record.provider is report.provider
            and record.provider_message_id == report.provider_message_id
        ):
            return record
        return store.message_for_provider_ref(report.provider, report.provider_message_id)


def _record(
    report: DeliveryReport, message: MessageRecord | None, store: ReceiptStore, now: datetime, result: PushResult
) -> MessageRecord | None:
    """Applies or holds one report; `message` is what the ProviderRef index gives for it. Returns the message as
    the report left it when it was applied."""
    event = report.event(iso(now))
    pmid = report.provider_message_id
    candidates: list[MessageRecord] = []
    if message is None and report.echo is not None and report.to is not None:
        candidates = _echo_candidates(store, report.echo, report)
        message = _echoed(candidates, report.echo, report)
    if message is not None and another_number(report, message):
        result.wrong_number += 1
        return None
    if message is not None and takes_receipts_for(message, report.provider, pmid):
        return _count(apply_events(store, message, [event], pmid, now, failover=True), now, result)
    # No message for it, or one a resend took away from the attempt it is about (a report earlier in the same push
    # resent it, and the push's lookups were made before): the first attempt's receipt, kept as such.
    left = message is not None and earlier_attempt(message.events) == (report.provider, pmid)
    if (message is None or left) and _earlier_attempt(report, event, store, now, result):
        return None
    newly_held = store.hold_receipt(
        report.provider, pmid, held_event(event, report.to), message.id if message else None
    )
    if message is None:
        # The ProviderRef index is eventually consistent: a send recorded just before may not have been visible.
        # One more look after holding narrows that window; what still slips through stays held for reconciliation.
        message = store.message_for_provider_ref(report.provider, pmid)
        if message is None and len(candidates) > 1:  # an echo that named none of them: which has the id now
            message = _given_the_id(store, candidates, pmid)
        if message is not None and another_number(report, message):
            message = None  # held under the provider id only, as for no message: never applied to this one
        if message is not None and takes_receipts_for(message, report.provider, pmid):
            return _count(apply_events(store, message, [event], pmid, now, failover=True), now, result)
        message = None
    if message is not None:
        again = store.reload(message.id)
        if again is not None and takes_receipts_for(again, report.provider, pmid):
            return _count(apply_events(store, again, [event], pmid, now, failover=True), now, result)
    result.matched += message is not None
    if not newly_held:
        result.duplicates += 1
    elif message is not None:
        result.held += 1
    else:
        result.unmatched += 1
    return None


def another_number(report: DeliveryReport, message: MessageRecord) -> bool:
    """The report names a number (as E.164) other than the message's: it is about some other send, whatever ids it
    carries (a provider's message ids are not secret: every message view and event shows them). A number its
    parser could not normalise proves nothing either way, and a report without one (Alibaba's, Huawei's may lack
    it) is matched by its ids alone, as before."""
    return report.to is not None and not same_number(report.to, message.to)


def same_number(reported: str, ours: str) -> bool:
    """Whether a receipt's number is the message's: the same digits, or one's digits ending with all of the
    other's. Tencent writes the country code in `mobile` too for some numbers, which then read as
    `+<code><code><number>` (`+62` and `62812345678`: +6262812345678 for +62812345678) where that is a valid number
    as well; such a receipt is the message's. A number not in E.164 proves nothing: the same."""
    if not reported.startswith("+"):
        return True
    theirs, mine = reported.lstrip("+"), ours.lstrip("+")
    return theirs.endswith(mine) or mine.endswith(theirs)


def _echo_candidates(store: ReceiptStore, echo: EchoRange, report: DeliveryReport) -> list[MessageRecord]:
    """The messages an echo and the report's number may name: of its batch, to its number, from the echo's first id
    on, leaving out those that cannot be this report's (another provider's, or one carrying another provider id:
    sent by another call)."""
    return [
        m
        for m in store.find_recipients(echo, report.to)
        if m.provider is report.provider and m.provider_message_id in (None, report.provider_message_id)
    ]


def _echoed(candidates: Sequence[MessageRecord], echo: EchoRange, report: DeliveryReport) -> MessageRecord | None:
    """The message an echo and the report's number name, of `candidates` (`_echo_candidates`). An echo names a range
    of one call's messages: only the number tells which one is meant (a guessed echo without the right number names
    nobody). The number may be in several calls of the batch (two specs of one request may both text it; a call
    never repeats it), and a range reaches past its call's own messages (an echo names its call's first id only;
    Huawei's calls of a pack interleave). So: the one with this report's provider id; else the only one; else the
    echo's first id, which is its call's own, if it was sent to this number; else none (guessing, the first by id
    was another call's for a later call: a receipt held for, or applied to, the wrong message). One named by none is
    held under its provider id, which the dispatcher's write gives the right one."""
    named = [m for m in candidates if m.provider_message_id == report.provider_message_id]
    if named:
        return named[0]
    if len(candidates) == 1:
        return candidates[0]
    first = message_id(echo.batch_id, echo.first_seq)
    return next((m for m in candidates if m.id == first), None)


def _given_the_id(store: ReceiptStore, candidates: Sequence[MessageRecord], pmid: str) -> MessageRecord | None:
    """Of the messages an echo could not tell between, the one the provider id now names, read consistently (after
    the receipt was held: a dispatcher's write that came meanwhile and missed the hold is seen here)."""
    for candidate in candidates:
        again = store.reload(candidate.id)
        if again is not None and again.provider_message_id == pmid:
            return again
    return None


def _earlier_attempt(
    report: DeliveryReport, event: dict[str, Any], store: ReceiptStore, now: datetime, result: PushResult
) -> bool:
    """A receipt for the first attempt of a resent message (`receipts.failover`): kept in its history, changing
    nothing; a repeat of the one that resent it queues the resend again (a crash may have lost it)."""
    record = store.message_for_earlier_attempt(report.provider, report.provider_message_id)
    if record is None:
        return False
    if another_number(report, record):  # about some other send: nothing kept, nothing queued again
        result.wrong_number += 1
        return True
    new, delivered = record_earlier_receipt(store, record, event, now)
    result.matched += 1
    result.applied += new
    result.duplicates += not new
    result.duplicate_deliveries += delivered
    if resend_pending(record):
        result.resends.append(record)
    if resend_pending(record) or report.status in UNDELIVERED_OUTCOMES:
        # Its event again too, whatever the resend has become since: a push answered with an error (the webhook
        # queue failed after the resend was queued) comes back minutes later, when the resend has usually been
        # sent, and the event was lost. Its id is the same on every repeat.
        _add_failover_event(record, now, result)
    return True


def _add_failover_event(record: MessageRecord, now: datetime, result: PushResult) -> None:
    delivery = failover_event(record, now)
    if delivery is not None:
        result.webhooks.append(delivery)


def _count(applied: Applied, now: datetime, result: PushResult) -> MessageRecord:
    """Adds one applied report to the push's result; returns the message as it left it."""
    result.matched += 1
    result.duplicate_deliveries += applied.duplicate_delivery
    if resend_pending(applied.record):
        result.failovers += applied.changed  # this receipt resent it (a repeat only queues it again)
        result.resends.append(applied.record)
        _add_failover_event(applied.record, now, result)
    outcomes = route_outcomes(applied.record) if applied.moved_here else []
    if applied.first_outcome:
        result.finals.extend(outcomes)
    if applied.duplicate:
        result.duplicates += 1
    else:
        result.applied += 1
    delivered, undelivered = outcome_counts(outcomes)
    result.delivered += delivered
    result.undelivered += undelivered
    # A duplicate of a final receipt queues the final event again: if queueing failed the first time (and the
    # provider retried the push because we answered 5xx), this is the retry; receivers dedupe by event id.
    if applied.changed or (applied.duplicate and applied.record.status.is_final):
        delivery = status_event(applied.record, now)
        if delivery is not None:
            result.webhooks.append(delivery)
    return applied.record


def route_outcomes(record: MessageRecord) -> list[MessageRecord]:
    """What a message whose status a receipt just moved adds to the route statistics (stats/): itself when it is
    final; its first attempt's failure when the receipt resent it (the provider it left did fail to deliver it,
    `first_attempt_outcome`); else nothing. The same whoever applied the receipt: the receipts handler, or dispatch
    applying the receipts held until its SUBMITTED write; counted by the one whose write gave the message its
    outcome (`Applied.first_outcome`)."""
    first = first_attempt_outcome(record) if resend_pending(record) else None
    return [r for r in (first, record if record.status.is_final else None) if r is not None]


def outcome_counts(outcomes: Sequence[MessageRecord]) -> tuple[int, int]:
    """Delivered and undelivered among `route_outcomes`' records, for the outcome metrics (the delivery-rate alarms):
    counted like the route statistics, so an UNDELIVERED receipt that resent the message elsewhere counts against
    the provider that failed, though the message itself is QUEUED again. Each writer counts what its own write moved
    (`Applied.moved_here`)."""
    delivered = sum(r.status is Status.DELIVERED for r in outcomes)
    return delivered, sum(r.status in UNDELIVERED_OUTCOMES for r in outcomes)


#: The number a held receipt named, and its own id (keys of the held event only: the history keeps neither).
HELD_NUMBER = "held_for_number"
HELD_RECEIPT_ID = "held_receipt_id"


def held_event(event: dict[str, Any], number: str | None) -> dict[str, Any]:
    """A report's event as it is held: with the number it named (as E.164), which the send it is applied to must
    have (`apply_held_receipts`), under an id that names the number too. The held item keeps one event per id: under
    the receipt's own id alone, a report with another number held first made the real one a repeat, and the real
    one was never kept (a review)."""
    if number is None or not number.startswith("+"):
        return event
    digest = hashlib.sha256(number.encode()).hexdigest()[:8]
    return {**event, "id": f"{event['id']}.{digest}", HELD_NUMBER: number, HELD_RECEIPT_ID: event["id"]}


def _as_received(event: Mapping[str, Any]) -> dict[str, Any]:
    """A held event as the history keeps it: its own id, without what holding added."""
    kept = {k: v for k, v in event.items() if k not in (HELD_NUMBER, HELD_RECEIPT_ID)}
    return kept if HELD_RECEIPT_ID not in event else {**kept, "id": event[HELD_RECEIPT_ID]}


def _numbered_for(event: Mapping[str, Any], record: MessageRecord) -> bool:
    """A held receipt that named a number names the record's (one held before the send was recorded could not be
    checked then: `another_number`)."""
    number = event.get(HELD_NUMBER)
    return number is None or same_number(str(number), record.to)


def apply_held_receipts(
    store: ReceiptStore,
    records: Sequence[MessageRecord],
    now: datetime,
    *,
    failover: bool = False,
    held_since: int | None = None,
    on_applied: Callable[[Applied], None] | None = None,
) -> dict[str, Applied]:
    """After dispatch wrote SUBMITTED or SENDING: receipts that arrived first are applied now. Returns what was
    applied to the records whose status changed, by id; `on_applied` is told of each as soon as it is written (a
    write failing later leaves the caller knowing what was). `failover`: as `apply_events` (the caller queues the
    resends). `held_since` (epoch seconds): no receipt of these records can have been held before it, so when the
    hold marks say nothing was held since (`ReceiptStore.holds_since`, one read) the held receipts are not looked
    for (two keys a record). The records are of one provider (a pack's).
    A held receipt is applied only with the provider id the record got (held for the message, it was named by our
    echo and the number; a provider id alone never names a message's held receipts: `HeldReceipts`)."""
    waiting = [r for r in records if r.status in (Status.SUBMITTED, Status.SENDING)]
    if not waiting:
        return {}
    provider = waiting[0].provider
    if held_since is not None and not store.holds_since(provider, {r.batch_id for r in waiting}, held_since):
        return {}
    pmids = [r.provider_message_id for r in waiting if r.provider_message_id]
    held = store.held_receipts(provider, [r.id for r in waiting], pmids)
    changed: dict[str, Applied] = {}
    for record in waiting:
        found = [*held.for_messages.get(record.id, []), *held.by_provider_id.get(record.provider_message_id or "", [])]
        pmid = record.provider_message_id or next((e.get("provider_message_id") for e in found), None)
        # A receipt held for the message names it by our echo and its number; it is about this send only if it
        # carries the provider id the send got (a message has one; after an unknown outcome, none: the first one
        # held is taken, as the receipts handler takes one for a SENDING message).
        kept = [e for e in found if e.get("provider_message_id") == pmid and _numbered_for(e, record)]
        # One event per receipt, by its own id: held under the provider id and for the message, or under two
        # spellings of the number (`same_number`), it is one report.
        events = list({e["id"]: e for e in map(_as_received, kept)}.values())
        if not events or pmid is None or not takes_receipts_for(record, record.provider, pmid):
            continue
        applied = apply_events(store, record, events, pmid, now, failover=failover)
        if applied.changed:
            changed[applied.record.id] = applied
            if on_applied is not None:
                on_applied(applied)
    return changed
