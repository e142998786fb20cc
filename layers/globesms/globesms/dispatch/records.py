"""A recipient's outcome as its message record, and writing those records.

The status follows the outcome: a provider message id -> SUBMITTED; an unknown outcome -> SENDING, with a
`sending` step in its history (kept there even after a receipt settles the message and clears the error); any
other error -> FAILED with the normalised category and the provider's raw code and message.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

from globesms.domain.clock import iso
from globesms.domain.history import SENDING_STEP, HistoryStep
from globesms.domain.status import Status
from globesms.errors import DispatchCode, ErrorCategory, ProviderError, RecipientCode
from globesms.models.outbound import SendOutcome
from globesms.models.packs import DispatchPack
from globesms.models.records import MessageRecord, replacing_version
from globesms.ports import MessageStore, ReceiptStore
from globesms.receipts.apply import apply_held_receipts, outcome_counts, route_outcomes
from globesms.reconcile.deadline import DeadlinePolicy, deadline_entries, receipt_deadline
from globesms.stats.ports import RouteStatsStore
from globesms.stats.record import record_outcomes

DEFAULT_DEADLINES = DeadlinePolicy()

LAPSED_STEP = "validity_lapsed"
VALIDITY_LAPSED = DispatchCode.VALIDITY_LAPSED


def outcome_record(
    pack: DispatchPack,
    index: int,
    outcome: SendOutcome,
    now: datetime,
    deadlines: DeadlinePolicy = DEFAULT_DEADLINES,
) -> MessageRecord:
    """Recipient `index`'s record after `outcome`."""
    return outcome_records(pack, [(index, outcome)], now, deadlines)[0]


def outcome_records(
    pack: DispatchPack,
    outcomes: Iterable[tuple[int, SendOutcome]],
    now: datetime,
    deadlines: DeadlinePolicy = DEFAULT_DEADLINES,
) -> list[MessageRecord]:
    """The records of the recipients `(index, outcome)` of one pack after those outcomes. What the recipients of a
    pack share (the time stamp, each content's fields and receipt deadline) is worked out once, not per recipient:
    ~9 of a record's ~20 µs, and a pack is up to 1,000 recipients."""
    stamp = iso(now)
    epoch = int(now.timestamp())
    version = replacing_version(now)
    fields: dict[int, dict[str, object]] = {}
    due: dict[int, int | None] = {}
    records = []
    for index, outcome in outcomes:
        recipient = pack.recipients[index]
        if recipient.c not in fields:
            content = pack.contents[recipient.c]
            fields[recipient.c] = dict(content)
            # Every submitted message gets a receipt deadline (reconcile/).
            due[recipient.c] = receipt_deadline(epoch, content.validity_seconds, content.type, deadlines)
        error = outcome.error
        status = _status_after(error)
        steps = list(recipient.history or [])  # e.g. the provider it failed over from
        if status is Status.SENDING and error is not None:
            # Named: a resend of it may fail over elsewhere, and the API's history says where each step happened.
            steps.append(HistoryStep(SENDING_STEP, Status.SENDING, error.code, stamp, provider=pack.provider).to_item())
        records.append(
            MessageRecord(
                **fields[recipient.c],
                events=steps or None,
                id=recipient.id,
                batch_id=pack.batch_id,
                to=recipient.to,
                country=recipient.country,
                provider=pack.provider,
                status=status,
                segments=outcome.segments or recipient.segments,
                encoding=recipient.encoding,
                provider_message_id=outcome.provider_message_id,
                error_category=str(error.category) if error else None,
                error_code=error.code if error else None,
                error_message=error.message if error else None,
                created_at=pack.created_at,
                updated_at=stamp,
                submitted_at=stamp if status is Status.SUBMITTED else None,
                expires_at=pack.expires_at,
                receipt_due_at=due[recipient.c] if status is Status.SUBMITTED else None,
                price=recipient.price,
                cost=recipient.cost,
                currency=pack.currency,
                owner=pack.owner,
                version=version,
            )
        )
    return records


def _status_after(error: ProviderError | None) -> Status:
    if error is None:
        return Status.SUBMITTED
    return Status.SENDING if error.category is ErrorCategory.UNKNOWN_OUTCOME else Status.FAILED


def opted_out_record(pack: DispatchPack, index: int, now: datetime) -> MessageRecord:
    """A recipient whose number opted out after its message was accepted (`dispatch.opt_outs`): FAILED, never sent."""
    return _refused_record(
        pack, index, RecipientCode.OPTED_OUT, "the number opted out after the message was accepted", now
    )


def denied_record(pack: DispatchPack, index: int, reason: str, now: datetime) -> MessageRecord:
    """A recipient whose country the permissions refuse since its message was accepted (`dispatch.permissions`):
    FAILED, never sent. `reason`: the permissions' own words (`GB is in the deny-list for MKT messages`)."""
    message = f"{reason} (the country permissions changed after the message was accepted)"
    return _refused_record(pack, index, RecipientCode.COUNTRY_NOT_ALLOWED, message, now)


def _refused_record(pack: DispatchPack, index: int, code: RecipientCode, message: str, now: datetime) -> MessageRecord:
    error = ProviderError(ErrorCategory.RECIPIENT, code, message)
    return outcome_record(pack, index, SendOutcome(message_id=pack.recipients[index].id, error=error), now)


def lapsed_record(pack: DispatchPack, index: int, now: datetime) -> MessageRecord:
    """A recipient never sent because its validity ran out first (`validity`): EXPIRED, final, with its step."""
    recipient = pack.recipients[index]
    error = ProviderError(ErrorCategory.REQUEST, VALIDITY_LAPSED, "validity ran out before it reached a provider")
    record = outcome_record(pack, index, SendOutcome(message_id=recipient.id, error=error), now)
    step = HistoryStep(f"{recipient.id}.{LAPSED_STEP}", Status.EXPIRED, VALIDITY_LAPSED.value, iso(now)).to_item()
    return record.model_copy(update={"status": Status.EXPIRED, "events": [*(record.events or []), step]})


class SavedOutcomes(NamedTuple):
    records: list[MessageRecord]  # as they now are: after the receipts held for them
    route_stats_written: bool  # False: the outcomes those receipts made final are not in the route statistics
    delivered: int = 0  # of the outcome metrics, the held receipts this dispatcher's write moved (`outcome_counts`)
    undelivered: int = 0


def save_outcomes(
    store: MessageStore,
    receipts: ReceiptStore,
    records: Sequence[MessageRecord],
    now: datetime,
    *,
    failover: bool = False,
    held_since: int | None = None,
    route_stats: RouteStatsStore | None = None,
    resends: Collection[str] = (),
) -> SavedOutcomes:
    """Writes the records (and the deadline entries of those SUBMITTED, in the same batch writes: reconcile/), then
    applies the receipts that arrived before them, and counts the outcomes those made final in `route_stats`, as the
    receipts handler counts a push's (`route_outcomes`): a receipt held for a fast provider's message reaches the
    statistics too. A failed statistics write is logged and reported, never a reason to fail the pack.
    `failover`: an early UNDELIVERED receipt may resend a message (`receipts.failover`; the caller queues it).
    `held_since`: when the first of them was sent at the earliest (`held_since_pack`), as `apply_held_receipts`.
    `resends`: ids of messages sent again after an unknown outcome, each written only if still SENDING: the first
    attempt's receipt may settle it while the resend's call is under way, and a DELIVERED written over with
    SUBMITTED lost its receipt (a review). Such a message is returned as stored (the resend's id is not kept: its
    receipt will match nothing, and the receipt that came first decides)."""
    if records:
        records = _write(store, records, resends)
    return apply_held(receipts, records, now, failover=failover, held_since=held_since, route_stats=route_stats)


def _write(store: MessageStore, records: Sequence[MessageRecord], resends: Collection[str]) -> Sequence[MessageRecord]:
    entries = deadline_entries(records)
    guarded = [r for r in records if r.id in resends] if resends else []
    if not guarded:
        store.put_messages(records, entries)
        return records
    store.put_messages([r for r in records if r.id not in resends], entries)
    settled = store.put_if_sending(guarded)
    if not settled:
        return records
    current = store.get_messages(sorted(settled))
    return [current.get(r.id, r) if r.id in settled else r for r in records]


def apply_held(
    receipts: ReceiptStore,
    records: Sequence[MessageRecord],
    now: datetime,
    *,
    failover: bool = False,
    held_since: int | None = None,
    route_stats: RouteStatsStore | None = None,
) -> SavedOutcomes:
    """The second half of `save_outcomes`, for records already written: the receipts held for them applied, and the
    outcomes those made final counted. A takeover does it for what the dispatcher that died had written, since it
    may have died between the two halves (the provider, answered 200 for a held receipt, never pushes it again)."""
    changed = apply_held_receipts(receipts, records, now, failover=failover, held_since=held_since)
    # Only what this dispatcher's writes moved: the receipts handler may have applied a held receipt first and
    # counted it there (it holds, then reads the record again, which this dispatcher may have just written).
    moved = [(a, route_outcomes(a.record)) for a in changed.values() if a.moved_here]
    written = record_outcomes(route_stats, [o for a, outcomes in moved if a.first_outcome for o in outcomes], now)
    latest = [changed[r.id].record if r.id in changed else r for r in records]
    return SavedOutcomes(latest, written, *outcome_counts([o for _, outcomes in moved for o in outcomes]))


#: Margin for the clocks of the Lambdas that stamp a pack and a hold mark (NTP keeps them within milliseconds).
HOLD_CLOCK_SLACK_SECONDS = 300


def held_since_pack(pack: DispatchPack) -> int:
    """The earliest a receipt for any recipient of `pack` can have been held: its batch was accepted then (every
    attempt of a pack, retries and failovers included, keeps its batch's `created_at`), less the clocks' slack."""
    return int(datetime.fromisoformat(pack.created_at).timestamp()) - HOLD_CLOCK_SLACK_SECONDS
