"""Ending the accepts that stopped half way and that no retry can resume any more: the batch INTERRUPTED, its
recipients not handed to a provider CANCELED (run by the reconcile run, every minute).

An accept that stops (a timeout, a crash, DynamoDB or SQS failing past their retries) leaves its header ACCEPTING,
and only a retry of the same body resumes it (accept/resume.py). None comes for an API request without an
Idempotency-Key, and a client or an operator may give up on the others; the records it wrote would then stay
ACCEPTED (or SCHEDULED) for ever, with their spend reserved. Each header says from when no retry can resume it
(`settle_after`: its deadline plus the retry window of how it came), in the sparse `OpenAccepts` index until it is
settled; this run reads the index and, for each batch past that time:

1. writes the header INTERRUPTED, conditionally on its being ACCEPTING as read (no attempt's lease running): a
   retry that resumed it first wins; any retry from then on is answered the batch as it stands and sends nobody.
   It keeps its `settle_after`, so it stays in the index until step 3, and takes a lease for this run
   (`accepting_until`, `RUN_LEASE`, numbered by `resumes` as a resume's is): a run that begins while this one goes
   on (the schedule starts one a minute) leaves the batch alone until the lease is over;
2. cancels, a page of records at a time, every recipient no provider has been asked to send, as
   `DELETE /v1/batches/{id}` does (scheduling/cancel.py): SCHEDULED ones by their own move, the others by taking
   their pack's claim before any dispatcher does (or the quiet-hours hold a dispatcher put them in, before it
   ends it). A pack a dispatcher claimed already is left to it (those recipients are being sent, or were); each
   canceled recipient gets its `message.canceled` event and its spend
   reservation back;
3. gives back the part of the batch's spend reservation no written record holds (recipients the attempt reserved
   for and never wrote: they are not in the batch and will never be sent; guardrails/release.py
   `release_unwritten`, once), then writes the header without `settle_after` (out of the index), its `accepted` the
   records it holds.

A run that stops before step 3 leaves the header INTERRUPTED in the index: out of time, it gives its lease up and
the next run goes on with the batch; stopped by a crash or the timeout, the first run after its lease does. That
run cancels what is still waiting, and queues the events and gives the spend back of the records CANCELED already,
since the stopped run may have moved them without doing either (the spend is given back once per message whatever;
a `message.canceled` event may then reach a customer twice, with the same id, which receivers drop:
docs/webhooks.md).

Cancel rather than send: whoever sent the request saw it fail (an error, a timeout) or gave up retrying, and may
have sent it again, so finishing it could text a recipient twice; a CANCELED status tells them it was not sent.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from globesms.counts.tally import scheduled_count
from globesms.domain.status import Status
from globesms.guardrails.charges import reserved_share
from globesms.guardrails.ports import ChargeMade, SpendReleases
from globesms.guardrails.release import release_unwritten
from globesms.models.records import UNSETTLED_STATES, BatchRecord
from globesms.scheduling.cancel import LIST_PAGE, CancelDeps, cancel_records, cancelable
from globesms.scheduling.canceled import settle_canceled

# A child of the Powertools logger "globesms": its handler (JSON, the number mask) writes these lines too.
logger = logging.getLogger(__name__)


#: How long a run holds a batch it ends: beyond the ReconcileFunction's timeout (120 s in template.yaml, a test holds
#: the two), so no other run goes on with the batch while this one may still be moving its records.
RUN_LEASE: Final = timedelta(minutes=3)


@dataclass
class InterruptedSummary:
    batches: int = 0  # ended INTERRUPTED by this run (out of the index)
    canceled: int = 0  # their recipients this run moved to CANCELED
    left_for_next_run: int = 0  # batches this run began and had no time to finish


def settle_interrupted(
    deps: CancelDeps, *, now: datetime, clock: Callable[[], datetime] | None = None, stop_at: datetime | None = None
) -> InterruptedSummary:
    """Every batch past its `settle_after` and no longer resumable, ended INTERRUPTED; none begun after `stop_at`
    (by `clock`), and a batch begun is left between two pages once it passes."""
    summary = InterruptedSummary()
    read_clock = clock or (lambda: now)

    def out_of_time() -> bool:
        return stop_at is not None and read_clock() >= stop_at

    for batch_id in deps.store.open_accepts(due_by=math.floor(now.timestamp())):
        if out_of_time():
            break
        settle_batch(deps, batch_id, now=now, summary=summary, out_of_time=out_of_time)
    return summary


def settle_batch(
    deps: CancelDeps,
    batch_id: str,
    *,
    now: datetime,
    summary: InterruptedSummary,
    out_of_time: Callable[[], bool] = lambda: False,
) -> None:
    header = deps.store.get_batch(batch_id)  # the index lags: the header may have finished or been resumed since
    if header is None or not _due(header, now):
        return
    going_on = header.state == "INTERRUPTED"  # an earlier run began it: its moves may lack their events
    lease = math.ceil((now + RUN_LEASE).timestamp())
    taken = header.model_copy(
        update={"state": "INTERRUPTED", "resumes": (header.resumes or 0) + 1, "accepting_until": lease}
    )
    if not deps.store.take_over_batch(taken, header):
        return  # a retry resumed it, or another run took it, since it was read
    written, scheduled, canceled, written_cost = 0, 0, 0, Decimal(0)
    charges = _charges_since(deps.spend, batch_id)
    after: str | None = None
    while True:
        if out_of_time():
            deps.store.take_over_batch(taken.model_copy(update={"accepting_until": None}), taken)  # the next run's
            summary.left_for_next_run += 1
            return
        records, after = deps.store.list_batch_messages(batch_id, limit=LIST_PAGE, after=after)
        written += len(records)
        scheduled += scheduled_count(records) or 0
        if charges is not None:  # what accept reserved for them: their cost now, less what was charged since
            written_cost += sum((reserved_share(r, charges) for r in records), Decimal(0))
        waiting = [r for r in records if cancelable(r)]
        if going_on:
            settle_canceled(deps.webhooks, deps.spend, [r for r in records if r.status is Status.CANCELED], now)
        canceled += len(cancel_records(deps, waiting, now=now).canceled) if waiting else 0
        if after is None:
            break
    unwritten = (
        Decimal(0)
        if charges is None
        else release_unwritten(
            deps.spend,
            batch_id=batch_id,
            owner=header.owner,
            written_cost=written_cost,
            expires_at=header.expires_at,
            now=math.floor(now.timestamp()),
        )
    )
    deps.store.finish_batch(
        taken.model_copy(
            update={"accepted": written, "scheduled": scheduled or None, "settle_after": None, "accepting_until": None}
        )
    )
    summary.batches += 1
    summary.canceled += canceled
    _log_ended(header, written=written, canceled=canceled, unwritten=unwritten)


def _charges_since(ledger: SpendReleases, batch_id: str) -> list[ChargeMade] | None:
    """The charges made for the batch's messages since accept (a failover's, a resend's), from which the share accept
    reserved for each written record is told (`reserved_share`); None when they cannot be read (logged): then nothing
    is given back, as a reservation kept only makes the limit stricter."""
    try:
        return ledger.batch_charges(batch_id)
    except Exception:
        logger.exception("the batch's charges unreadable: its unwritten recipients' spend not given back")
        return None


def _log_ended(header: BatchRecord, *, written: int, canceled: int, unwritten: Decimal) -> None:
    logger.warning(
        "interrupted accept ended",
        extra={
            "batch_id": header.batch_id,
            "source": header.source,
            "planned": header.accepted,
            "written": written,
            "canceled": canceled,
            "unwritten_spend_given_back": str(unwritten),
        },
    )


def _due(header: BatchRecord, now: datetime) -> bool:
    """Past its `settle_after`, still ACCEPTING (or INTERRUPTED: begun by an earlier run, still indexed), and no
    attempt's or run's lease running."""
    at = now.timestamp()
    if header.settle_after is None or header.settle_after > at or header.state not in UNSETTLED_STATES:
        return False
    return header.accepting_until is None or header.accepting_until <= at
