"""What the table stores: one header per batch, one record per recipient.

Message ids are `<batch_id>.<seq>` so one key lookup finds a message and its batch header together, and a batch's
messages are one partition in id order (no index needed to list or count them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from globesms.domain.status import Status
from globesms.models.base import Model
from globesms.models.content import MessageContent
from globesms.models.errors import ErrorBody, RecipientError
from globesms.models.outbound import ProviderName

#: INTERRUPTED: an accept that stopped half way and that no retry can resume any more, ended by the reconcile run
#: (reconcile/interrupted.py): its recipients not handed to a provider CANCELED.
BatchState = Literal["ACCEPTING", "QUEUED", "REJECTED", "INTERRUPTED"]
#: A header not settled yet: an attempt (ACCEPTING) or a reconcile run (INTERRUPTED, until it has ended the batch
#: whole) may take it over, and with `settle_after` it is in the sparse `OpenAccepts` index.
UNSETTLED_STATES: tuple[BatchState, ...] = ("ACCEPTING", "INTERRUPTED")
MAX_STORED_ERRORS = 100  # a batch header is one item (< 400 KB); the API answer itself lists every error


def message_id(batch_id: str, seq: int) -> str:
    return f"{batch_id}.{seq:05d}"


#: The most digits a message id's sequence number has (5, padded; a batch holds at most 10,000 recipients): a longer
#: one names no message, and `int()` of thousands of digits is slow, then refused (ValueError).
MAX_SEQ_DIGITS = 9


def split_message_id(value: str) -> tuple[str, int] | None:
    batch_id, sep, seq = value.rpartition(".")
    if not sep or not batch_id or not (seq.isascii() and seq.isdigit()) or len(seq) > MAX_SEQ_DIGITS:
        return None
    return batch_id, int(seq)


def message_seq(message_id: str) -> int:
    """The sequence number of a message id globesms made (`message_id`): the recipient's position in its request."""
    parts = split_message_id(message_id)
    assert parts is not None, "accept names every message <batch id>.<position>"
    return parts[1]


class MessageRecord(MessageContent):
    id: str
    batch_id: str
    to: str
    provider: ProviderName
    status: Status
    segments: int | None = None
    # Guardrails (docs/guardrails.md): the destination, the text's encoding, the price per part and the estimated
    # cost (segments x price, decimal strings in `currency`), and the API key (or intake owner) that sent it.
    country: str | None = None
    encoding: Literal["GSM-7", "UCS-2"] | None = None
    price: str | None = None
    cost: str | None = None
    currency: str | None = None
    owner: str | None = None
    provider_message_id: str | None = None
    error_category: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: str
    updated_at: str
    submitted_at: str | None = None
    expires_at: int | None = Field(default=None, description="epoch seconds; the table's TTL attribute")
    events: list[dict[str, Any]] | None = Field(default=None, description="receipts applied, oldest first")
    receipt_ids: set[str] | None = Field(default=None, description="ids of the receipts in `events` (dedupe)")
    events_omitted: int | None = Field(default=None, description="events left out of a long history (receipts.apply)")
    version: int = Field(
        default=0,
        description="bumped by every versioned write (optimistic concurrency); a dispatcher's write sets it anew "
        "(`replacing_version`)",
    )
    receipt_due_at: int | None = Field(
        default=None, description="epoch seconds: reconciled after, if still SUBMITTED (reconcile/deadline.py)"
    )
    reconcile_tries: int | None = Field(default=None, description="pulled 'still delivering' answers so far")
    query_failures: int | None = Field(
        default=None, description="status queries in a row that failed or were unreadable"
    )
    # The pack accept put it in, written as what follows the batch id in its pack id (`:aliyun:3`, or
    # `@<send time>:aliyun:0` for a scheduled one): a cancel takes that pack before any dispatcher claims it. Kept
    # short, as every byte of a record is paid on each of its writes.
    pack_key: str | None = None
    # Held for its quiet hours by a dispatcher (dispatch/quiet.py): the hold it waits in, written as `pack_key` is
    # (what follows the batch id in the hold's id, `:aliyun:3.q`). A cancel takes that hold rather than the pack
    # accept put it in, which the dispatcher that held it has claimed.
    held_key: str | None = None

    def accept_pack_id(self) -> str | None:
        """The id of the pack accept put it in (`pack_key`), None for a record accepted before packs were kept."""
        return None if self.pack_key is None else self.batch_id + self.pack_key

    def cancel_pack_id(self) -> str | None:
        """What a cancel takes to stop it before it is sent: the quiet-hours hold it waits in, else its accept pack."""
        return self.batch_id + self.held_key if self.held_key is not None else self.accept_pack_id()


class BatchRecord(Model):
    batch_id: str
    source: Literal["api", "sqs"]
    state: BatchState
    created_at: str
    accepted: int = 0
    # Of the accepted, how many were created SCHEDULED (a send_at, given or set by quiet hours): what a poll shows
    # for records the status counts have not counted yet (`counts.tally.batch_counts`). None: none, or a header
    # written before it was kept.
    scheduled: int | None = None
    rejected: int = 0
    errors: list[RecipientError] = Field(default_factory=list)
    refusal: ErrorBody | None = Field(default=None, description="why a whole SQS intake body was refused")
    body_hash: str | None = Field(default=None, description="SHA-256 of the accepted specs: a batch id names one body")
    queued_at: str | None = None
    expires_at: int | None = None
    # Guardrails: the accepted recipients' SMS parts and estimated cost (decimal string in `currency`).
    segments: int | None = None
    cost: str | None = None
    currency: str | None = None
    owner: str | None = Field(default=None, description="the API key (or intake owner) that sent it")
    # While ACCEPTING (accept/resume.py): until when the attempt writing it may run (epoch seconds, its invocation's
    # deadline), and how many attempts resumed it.
    accepting_until: int | None = None
    resumes: int | None = None
    # While ACCEPTING: the attempt writing it (random, `accept.service.new_attempt`), which tells two resumes of
    # one stopped attempt apart: they share its planning time and their resume number, and often the second of
    # their deadlines, so the loser of the take-over read the winner's header as its own and went on too (a review).
    attempt: str | None = None
    # While ACCEPTING: from when (epoch seconds) no attempt can resume it any more, so the reconcile run ends it
    # INTERRUPTED (reconcile/interrupted.py); with the header's shard, its key in the sparse `OpenAccepts` index
    # until the run has ended it whole.
    settle_after: int | None = None

    @property
    def refused_whole(self) -> bool:
        """A body refused as a whole (the intake's REJECTED header with its refusal, no body hash): nothing was
        written, reserved or sent under its id, so a later body may take the id (`MessageStore.begin_batch`)."""
        return self.state == "REJECTED" and self.body_hash is None


def replacing_version(now: datetime) -> int:
    """The version of a record a dispatcher writes whole, without reading it first (up to 1,000 in batch writes): its
    time in milliseconds. Versioned writers (receipts, reconcile) add 1 to the version they read and write only if it
    is still that one. A dispatcher's write that set 0 again let a writer that had read the record before it, at 0,
    write over it: a reconcile run that read the first provider's attempt expired the resend a receipt had sent
    through the next provider, after that provider's dispatcher wrote it. A time is past every version such a writer
    can have read: the earlier dispatch's time plus one per versioned write since, seconds ago."""
    return int(now.timestamp() * 1000)
