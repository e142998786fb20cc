"""Canceling what has not been handed to a provider: `DELETE /v1/messages/{id}` and `DELETE /v1/batches/{id}`.

Cancelable are the recipients no provider has been asked to send:
- still SCHEDULED (waiting for their send_at, or deferred by quiet hours): a conditional write moves each to CANCELED
  (a final status: it never changes again), the same kind of write a release claims it with, so one of the two wins;
- ACCEPTED or QUEUED (on their provider queue, or released there) while no dispatcher has claimed their pack: the
  cancel takes the pack's claim (`PackClaims.cancel`, the same conditional write a dispatcher claims it with), then
  moves its recipients to CANCELED. A dispatcher that later receives the pack finds it canceled, sends nothing and
  finishes any move the cancel did not (a cancel interrupted half way still ends with every recipient CANCELED).
  Likewise a QUEUED recipient a dispatcher held back for its quiet hours: the cancel takes the hold it waits in (its
  record names it, `held_key`), which the dispatcher that ends the hold takes too before sending (dispatch/holds.py).
So a recipient is never both sent and reported canceled. A batch whose accept is still writing its records (its
header ACCEPTING, fewer records stored than it accepted) is not canceled, nor any of its messages:
`BatchStillAccepting`. A cancel then would miss the recipients not written yet (sent after the cancel answered, by
the accept or by the retry that resumes it), and a pack it took could hold recipients written after it looked
(canceled without being asked for). Accept writes every record before it queues any pack, so meanwhile nobody is
sent anything; once every record is written a cancel misses nobody, even with the header still ACCEPTING (an accept
that stopped while queueing): the packs it takes are skipped, and a resume leaves CANCELED records out.
A pack is canceled whole, so `DELETE /v1/messages/{id}` cancels an unsent recipient only when no other unsent
recipient shares its pack (cancel the batch for those).
Everything else is answered as not cancelable with its status: a pack a dispatcher claimed first (being sent, or put
back on a queue after a throttle or a retry under a new pack id), a quiet-hours hold its dispatcher ended, or later,
or final already.

A canceled recipient never reaches a provider, so its spend reservation is given back (guardrails/release.py), once.
A cancel of what is CANCELED already announces it again (`message.canceled` under the same id): a cancel that moved
recipients and then failed, before their events, is retried by its caller, and nothing else would tell them.
A caller sees and cancels only its own messages (the API key's owner, as for reads): another owner's are not found.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import Field

from globesms.accept.queries import batch_messages, effective_status, visible
from globesms.domain.status import Status
from globesms.guardrails.ports import SpendReleases
from globesms.models.base import Model
from globesms.models.records import BatchRecord, MessageRecord
from globesms.ports import MessageStore, PackClaims, ScheduleStore, WebhookQueue
from globesms.scheduling.canceled import settle_canceled

LIST_PAGE = 1_000
RETRY_SECONDS = 2  # Retry-After of a cancel refused while its batch is being accepted: an accept takes seconds


class BatchStillAccepting(Exception):
    """A cancel of a batch (or of one of its messages) while its accept is still writing its records."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(
            f"batch {batch_id} is still being accepted (not all its recipients are written yet, and none is sent "
            "before they are): cancel it once they are"
        )


def _not_still_writing(store: MessageStore, batch: BatchRecord | None) -> None:
    """Refuses while the batch's accept may still write records: its header ACCEPTING with fewer records stored
    than it accepted, or taken over by a resume since it was read (read only then: a finished batch costs no extra
    read). A resume that took over between the two reads may plan more than the stopped attempt and have written
    as many records as that one counted: the cancel went on, and the resume's last records were sent after it
    answered (a review). Read again after the listing, the header shows the resume."""
    if batch is None or batch.state != "ACCEPTING":
        return
    if len(batch_messages(store, batch.batch_id)) < batch.accepted:
        raise BatchStillAccepting(batch.batch_id)
    current = store.get_batch(batch.batch_id)
    attempt = (batch.attempt, batch.resumes, batch.accepted)
    if (
        current is not None
        and current.state == "ACCEPTING"
        and (current.attempt, current.resumes, current.accepted) != attempt
    ):
        raise BatchStillAccepting(batch.batch_id)


class NotCancelable(Model):
    id: str
    status: Status = Field(
        description="its status now: QUEUED when a dispatcher already holds its pack (being sent), or later, or final"
    )


class CancelAnswer(Model):
    """What the cancel did: the recipients now CANCELED, and those it could not cancel"""

    canceled: list[str] = Field(description="ids now CANCELED (by this request or an earlier one)")
    not_cancelable: list[NotCancelable] = Field(description="ids already handed on, or final, with their status")


@dataclass(frozen=True)
class CancelDeps:
    store: MessageStore
    schedule: ScheduleStore
    claims: PackClaims
    webhooks: WebhookQueue
    spend: SpendReleases


UNSENT = (Status.ACCEPTED, Status.QUEUED)


def cancelable(record: MessageRecord) -> bool:
    """Waiting for its release (SCHEDULED) or on its way to a provider (`UNSENT`): a cancel may still take it."""
    return record.status is Status.SCHEDULED or record.status in UNSENT


def cancel_records(
    deps: CancelDeps, records: Sequence[MessageRecord], *, now: datetime, whole_batch: bool = False
) -> CancelAnswer:
    """Cancel these records (as read: SCHEDULED ones by their own move, unsent ones by their pack); queue a
    `message.canceled` event for each one canceled now and give its spend reservation back.

    One read SCHEDULED that a release claimed (QUEUED) just before this cancel's move goes out in its held pack. It is
    canceled by that pack, as any QUEUED one, where the cancel takes the pack: always tried with `whole_batch` (the
    caller cancels every recipient of the batch, so any pack of it may be taken whole), else only where a packmate
    read QUEUED has the cancel take it anyway (then the dispatcher would finish it CANCELED: answered not
    cancelable, it would not be true). Otherwise it is answered QUEUED, not cancelable, and its pack goes out."""
    scheduled = [r for r in records if r.status is Status.SCHEDULED]
    canceled_now, others = deps.schedule.cancel_scheduled([r.id for r in scheduled], now=now) if scheduled else ([], {})
    by_pack: dict[str | None, list[MessageRecord]] = defaultdict(list)
    for record in records:
        if record.status in UNSENT:
            by_pack[record.cancel_pack_id()].append(record)
    for record in scheduled:  # claimed by a release meanwhile: with its pack, if the cancel takes it (above)
        if others.get(record.id) == Status.QUEUED and (whole_batch or record.cancel_pack_id() in by_pack):
            by_pack[record.cancel_pack_id()].append(record.model_copy(update={"status": Status.QUEUED}))
    taken = [r.id for pack_id, rs in by_pack.items() if pack_id and deps.claims.cancel(pack_id, now=now) for r in rs]
    moved, still = deps.store.cancel_unsent(taken, now=now) if taken else ([], {})
    canceled_now, others = [*canceled_now, *moved], {**others, **still}
    taken_ids = set(taken)
    for rs in by_pack.values():
        others.update({r.id: r.status.value for r in rs if r.id not in taken_ids})  # a dispatcher has the pack
    settle_canceled(deps.webhooks, deps.spend, canceled_now, now)
    done = {r.id for r in canceled_now} | {i for i, s in others.items() if s == Status.CANCELED}
    ids = [r.id for r in records]
    return CancelAnswer(
        canceled=[i for i in ids if i in done],
        not_cancelable=[
            NotCancelable(id=i, status=_as_shown(Status(others[i]))) for i in ids if i not in done and i in others
        ],
    )


def _as_shown(status: Status) -> Status:
    # An ACCEPTED record is on its provider queue (or about to be): the API shows it as QUEUED.
    return Status.QUEUED if status is Status.ACCEPTED else status


def cancel_message(
    deps: CancelDeps, message_id: str, *, now: datetime, owner: str | None = None
) -> CancelAnswer | None:
    """Cancel one message; None when there is no such message (or it is another owner's)."""
    found = deps.store.get_message(message_id)
    if found is None:
        return None
    record, batch = found
    if not visible(record.owner or (batch.owner if batch else None), owner):
        return None
    _not_still_writing(deps.store, batch)
    if record.status is Status.SCHEDULED or (record.status in UNSENT and not _shares_its_pack(deps.store, record)):
        return cancel_records(deps, [record], now=now)
    if record.status is Status.CANCELED:
        settle_canceled(deps.webhooks, deps.spend, [record], now)  # an earlier cancel may have stopped before it
        return CancelAnswer(canceled=[message_id], not_cancelable=[])
    return CancelAnswer(
        canceled=[], not_cancelable=[NotCancelable(id=message_id, status=effective_status(record, batch))]
    )


def _shares_its_pack(store: MessageStore, record: MessageRecord) -> bool:
    """Whether another cancelable recipient of the batch is in the record's pack. A pack is canceled whole (its claim is
    what a cancel takes), so one recipient of a shared pack cannot be canceled alone: its batch can. Reads the batch
    (a request of one recipient, as most OTP and notification sends are, is one item). A quiet-hours hold is
    canceled whole too, and its records are told they are in it one write each (`held_key`): a packmate of the
    accept pack not yet told may be in the record's hold, so every packmate of the accept pack counts."""
    after: str | None = None
    while True:
        records, after = store.list_batch_messages(record.batch_id, limit=LIST_PAGE, after=after)
        # SCHEDULED packmates count too: a release claims a held pack's recipients one by one (in parallel, or
        # across a redelivery after a crash), and whatever it has not claimed yet goes out in that pack.
        if any(r.pack_key == record.pack_key and r.id != record.id and cancelable(r) for r in records):
            return True
        if after is None:
            return False


def cancel_batch(deps: CancelDeps, batch_id: str, *, now: datetime, owner: str | None = None) -> CancelAnswer | None:
    """Cancel every recipient of the batch not handed to a provider; None when there is no such batch (or it is
    another owner's)."""
    batch = deps.store.get_batch(batch_id)
    if batch is None or not visible(batch.owner, owner):
        return None
    _not_still_writing(deps.store, batch)
    answer = CancelAnswer(canceled=[], not_cancelable=[])
    after: str | None = None
    while True:
        records, after = deps.store.list_batch_messages(batch_id, limit=LIST_PAGE, after=after)
        waiting = [r for r in records if cancelable(r)]
        if waiting:
            part = cancel_records(deps, waiting, now=now, whole_batch=True)
            answer.canceled += part.canceled
            answer.not_cancelable += part.not_cancelable
        already = [r for r in records if r.status is Status.CANCELED]
        # Announced again: an earlier cancel that moved them and then failed (its moves are one write each, its
        # events queued after them) had not, and nothing else would (stable ids; a give-back happens once).
        settle_canceled(deps.webhooks, deps.spend, already, now)
        answer.canceled += [r.id for r in already]
        for record in records:
            if record.status is not Status.CANCELED and not cancelable(record):
                answer.not_cancelable.append(NotCancelable(id=record.id, status=effective_status(record, batch)))
        if after is None:
            break
    answer.canceled.sort()
    answer.not_cancelable.sort(key=lambda n: n.id)
    return answer
