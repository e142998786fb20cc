"""Ending the accepts that stopped half way and that no retry can resume any more: the batch INTERRUPTED, its
recipients not handed to a provider CANCELED (run by the reconcile run, every minute).

An accept that stops (a timeout, a crash, DynamoDB or SQS failing past their retries) leaves its header ACCEPTING,
and only a retry of the same body resumes it (accept/resume.py). None comes for an API request without an
Idempotency-Key, and a client or an operator may give up on the others; the records it wrote would then stay
ACCEPTED (or SCHEDULED) for ever, with their spend reserved. Each header says from when no retry can resume it
(`settle_after`: its deadline plus the retry window of how it came), in the sparse `OpenAccepts` index while it is
ACCEPTING; this run reads the index and, for each batch past that time:

1. takes the header over, as a resume does (numbered, conditionally, with a lease of its own): a retry that resumed
   it first wins, and one arriving now is told the batch is in progress;
2. cancels every recipient no provider has been asked to send, as `DELETE /v1/batches/{id}` does
   (scheduling/cancel.py): SCHEDULED ones by their own move, the others by taking their pack's claim before any
   dispatcher does. A pack a dispatcher claimed already is left to it (those recipients are being sent, or were);
   each canceled recipient gets its `message.canceled` event and its spend reservation back;
3. writes the header INTERRUPTED, its `accepted` the records it holds (recipients the attempt never wrote are not
   in the batch; their part of the batch's spend reservation stays reserved, which only makes the limit stricter).

Cancel rather than send: whoever sent the request saw it fail (an error, a timeout) or gave up retrying, and may
have sent it again, so finishing it could text a recipient twice; a CANCELED status tells them it was not sent.
A retry after this run is answered the batch as it stands (a replay) and sends nobody.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from globesms.accept.queries import batch_messages
from globesms.domain.status import Status
from globesms.models.records import BatchRecord
from globesms.scheduling.cancel import UNSENT, CancelDeps, cancel_records

# A child of the Powertools logger "globesms": its handler (JSON, the number mask) writes these lines too.
logger = logging.getLogger(__name__)

#: The lease this run takes on a header while it cancels: a resume arriving meanwhile waits (in progress) rather
#: than queueing packs this run is canceling. Far beyond one batch's cancel (10,000 recipients: seconds).
SETTLE_LEASE: Final = timedelta(minutes=10)


@dataclass
class InterruptedSummary:
    batches: int = 0  # ended INTERRUPTED by this run
    canceled: int = 0  # their recipients this run moved to CANCELED
    not_cancelable: int = 0  # their recipients already handed to a provider (or final) when it looked


def settle_interrupted(deps: CancelDeps, *, now: datetime) -> InterruptedSummary:
    """Every batch past its `settle_after` and still ACCEPTING, ended INTERRUPTED."""
    summary = InterruptedSummary()
    for batch_id in deps.store.open_accepts(due_by=math.floor(now.timestamp())):
        settle_batch(deps, batch_id, now=now, summary=summary)
    return summary


def settle_batch(deps: CancelDeps, batch_id: str, *, now: datetime, summary: InterruptedSummary) -> None:
    header = deps.store.get_batch(batch_id)  # the index lags: the header may have finished or been resumed since
    if header is None or not _past_resuming(header, now):
        return
    lease = math.ceil((now + SETTLE_LEASE).timestamp())
    taken = header.model_copy(update={"resumes": (header.resumes or 0) + 1, "accepting_until": lease})
    if not deps.store.take_over_batch(taken, header):
        return  # a retry resumed it (or another run took it) since it was read
    records = batch_messages(deps.store, batch_id)
    waiting = [r for r in records if r.status is Status.SCHEDULED or r.status in UNSENT]
    answer = cancel_records(deps, waiting, now=now) if waiting else None
    ended = taken.model_copy(
        update={"state": "INTERRUPTED", "accepted": len(records), "accepting_until": None, "settle_after": None}
    )
    deps.store.finish_batch(ended)
    canceled = len(answer.canceled) if answer else 0
    not_cancelable = len(records) - canceled
    summary.batches += 1
    summary.canceled += canceled
    summary.not_cancelable += not_cancelable
    logger.warning(
        "interrupted accept ended",
        extra={
            "batch_id": batch_id,
            "source": header.source,
            "planned": header.accepted,
            "written": len(records),
            "canceled": canceled,
            "not_cancelable": not_cancelable,
        },
    )


def _past_resuming(header: BatchRecord, now: datetime) -> bool:
    """Still ACCEPTING, past its `settle_after`, and no attempt's lease running."""
    at = now.timestamp()
    return (
        header.state == "ACCEPTING"
        and header.settle_after is not None
        and header.settle_after <= at
        and (header.accepting_until is None or header.accepting_until <= at)
    )
