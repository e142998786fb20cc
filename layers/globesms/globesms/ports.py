"""The small interfaces the logic talks to. Adapters: `globesms.aws` (boto3) and `globesms.providers` (httpx).

The logic modules (`accept`, `dispatch`, `queries`) import these, never boto3 or httpx, so they run in unit tests
against in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, Protocol

from globesms.models.outbound import OutboundSms, ProviderName, SendOutcome

if TYPE_CHECKING:
    from globesms.counts.tally import BatchTally, StatusChange
    from globesms.errors import InvalidProviderRequest
    from globesms.models.packs import DispatchPack
    from globesms.models.receipts import EchoRange, HeldReceipts, StatusAnswer
    from globesms.models.records import BatchRecord, MessageRecord
    from globesms.models.webhooks import WebhookDelivery
    from globesms.reconcile.deadline import DeadlineEntry


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """One HTTP call a provider client will make: the operation it counts against in the provider's rate limits,
    and the positions (in the messages handed to `plan` / `send`) of the messages it carries, in input order.

    `singles`: the operation that can carry these same messages one per call instead (Alibaba's batch call, whose
    messages may each go through SendMessageToGlobe), or None when the call cannot be split that way."""

    operation: str
    indexes: tuple[int, ...]
    singles: str | None = None

    def as_singles(self) -> list[PlannedCall]:
        """This call's messages as one call each through `singles`."""
        if self.singles is None:
            raise ValueError(f"a {self.operation} call cannot be split into single calls")
        return [PlannedCall(self.singles, (index,)) for index in self.indexes]


class Provider(Protocol):
    """A provider client. `send` takes up to `max_recipients_per_call` recipients and returns one outcome each,
    in the same order. It raises `errors.InvalidProviderRequest` (before sending anything) when the call breaks
    the provider's rules: too many recipients, or a message `check` refuses; every provider-side failure comes
    back as an outcome with an `error`.

    `plan` says, before anything is sent, which HTTP calls `send` would make (so a rate limiter can count them);
    `send(messages, plan=...)` makes exactly the calls it is given: those of `plan(messages)`, where a call with
    `singles` may be replaced by its `as_singles()`; the requests are the ones `send(messages)` would make."""

    name: ProviderName
    max_recipients_per_call: int
    #: How long one call may take before the client's timeouts end it: a call is started only where it can end
    #: before the dispatcher's invocation must stop calling (`dispatch.sending.send_within_limits`).
    longest_call_seconds: float

    def check(self, message: OutboundSms) -> InvalidProviderRequest | None:
        """The provider rule this one message breaks (field and rule), or None; pure, nothing is sent. The same
        rules `send` applies, so a caller can set refused messages aside and send the rest."""
        ...

    def plan(self, messages: Sequence[OutboundSms]) -> list[PlannedCall]:
        """The calls `send(messages)` would make, in order, each message in exactly one; pure. Raises
        `InvalidProviderRequest` when `send` would."""
        ...

    def send(
        self, messages: Sequence[OutboundSms], *, plan: Sequence[PlannedCall] | None = None
    ) -> list[SendOutcome]: ...


class MessageStore(Protocol):
    def begin_batch(self, batch: BatchRecord) -> BatchRecord | None:
        """Create the batch header unless it exists; returns the existing header when it does. A header with a body
        hash replaces one `refused_whole` (a corrected body under the batch id of a refused one)."""
        ...

    def finish_batch(self, batch: BatchRecord) -> None: ...

    def take_over_batch(self, batch: BatchRecord, previous: BatchRecord) -> bool:
        """Replace the header of an accept that stopped half way (`previous`, as read: ACCEPTING, or INTERRUPTED while
        a reconcile run ends it) with `batch`, only if it is still in that state and no other attempt or run took it
        over since (its `resumes` unchanged); whether it did."""
        ...

    def put_messages(self, messages: Sequence[MessageRecord], deadlines: Sequence[DeadlineEntry] = ()) -> None:
        """Write whole records and the deadline entries that list them, as many per request as the store allows."""
        ...

    def put_if_sending(self, messages: Sequence[MessageRecord]) -> set[str]:
        """Write whole records each only where the stored one is still SENDING; the ids of those it was not (a
        receipt settled the message meanwhile: its status is never written over)."""
        ...

    def get_message(self, message_id: str) -> tuple[MessageRecord, BatchRecord | None] | None: ...

    def get_messages(self, message_ids: Sequence[str]) -> dict[str, MessageRecord]:
        """The stored records of these ids (consistent read), by id; ids with no record are left out."""
        ...

    def get_batch(self, batch_id: str) -> BatchRecord | None: ...

    def open_accepts(self, *, due_by: int) -> list[str]:
        """The batches whose header is ACCEPTING (or INTERRUPTED, not yet ended whole) with its `settle_after` at or
        before `due_by` (epoch seconds), by id; read from an index, so a header finished a moment ago may still be
        listed."""
        ...

    def cancel_unsent(self, message_ids: Sequence[str], *, now: datetime) -> tuple[list[MessageRecord], dict[str, str]]:
        """Move each record still ACCEPTED or QUEUED (its pack canceled before any dispatcher claimed it) to CANCELED,
        conditionally. Returns the records canceled now (as stored after), and the status of every other one found,
        by id."""
        ...

    def mark_held(self, message_ids: Sequence[str], *, held_key: str) -> None:
        """Note on each record still ACCEPTED or QUEUED the quiet-hours hold it now waits in (`held_key`: the hold's
        id less the batch id), so that a cancel can find it (dispatch/holds.py); a record in any other status, or
        none, is left alone, and so is one naming a hold that began inside this one (its key begins with
        `held_key`: a takeover of the hold's first pack queues its wait again)."""
        ...

    def list_batch_messages(
        self, batch_id: str, *, limit: int, after: str | None
    ) -> tuple[list[MessageRecord], str | None]:
        """A page of a batch's messages in id order, and the cursor of the next page (None at the end). A page may
        hold fewer than `limit` messages and still have a cursor (DynamoDB reads at most 1 MB at once). Raises
        InvalidCursor for an `after` that is no message id of this batch."""
        ...

    def batch_tally(self, batch_id: str) -> BatchTally:
        """The batch's status counts as kept by `StatusCounts` (O(1): one item, whatever the batch size); they trail
        the records by the stream's delay (`counts.tally.batch_counts` fills in the records not counted yet)."""
        ...


class StatusCounts(Protocol):
    def add(self, changes: Sequence[StatusChange]) -> None:
        """Count every change (in stream order) into its batch's counts, each once also when the same stream batch is
        handed over again whole from its start (the event source retries a batch whose invocation failed); the cases
        that count some twice: aws/dynamodb_counts.py."""
        ...


class InvalidCursor(ValueError):
    """A page cursor that this query did not give (malformed, or the `next` of another query)."""

    def __init__(self, rule: str = "not a cursor this API gave (use the `next` of the previous page)") -> None:
        super().__init__(rule)


@dataclass(frozen=True, slots=True)
class MessageLookup:
    """Messages as callers think of them: by the `client_ref` they gave, or by the number (E.164) sent to."""

    field: Literal["client_ref", "to"]
    value: str


class MessageFinder(Protocol):
    def find_messages(
        self, lookup: MessageLookup, *, limit: int, cursor: str | None
    ) -> tuple[list[MessageRecord], dict[str, BatchRecord], str | None]:
        """A page of the messages `lookup` names, newest first, read through an index (never a scan); the headers
        of their batches, by id; and the cursor of the next page (None at the end). Raises InvalidCursor."""
        ...


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    """One template as the store keeps it: its versions as a JSON document (`routing.templates.TemplateVersions`)."""

    template_id: str
    document: str
    updated_at: str


#: The most templates `TemplateStore.seed` takes: DynamoDB writes 100 items in one transaction, the marker and these.
MAX_SEED_TEMPLATES = 99


@dataclass(frozen=True, slots=True)
class StoredTemplates:
    """The store's whole registry. `seeded` is False until the first change through the API, which first copies the
    shipped templates.json into the store: until then the shipped file is the registry."""

    seeded: bool
    templates: tuple[StoredTemplate, ...] = ()


class TemplateStore(Protocol):
    """The template registry managed at run time (PUT/DELETE /v1/templates/{id})."""

    def load(self) -> StoredTemplates:
        """Every stored template, strongly consistent (a change is seen by the next load)."""
        ...

    def seed(self, templates: Sequence[StoredTemplate]) -> None:
        """Store these (at most MAX_SEED_TEMPLATES) and mark the store seeded, all or nothing, unless it is seeded
        already (then nothing)."""
        ...

    def put(self, template: StoredTemplate) -> bool:
        """Store (or replace) one template; True when it is new."""
        ...

    def delete(self, template_id: str) -> bool:
        """Remove one template; False when there was none."""
        ...


class ReceiptStore(Protocol):
    def message_for_provider_ref(self, provider: ProviderName, provider_message_id: str) -> MessageRecord | None:
        """The message a provider id was recorded on at SUBMITTED (through the ProviderRef index)."""
        ...

    def message_id_for_provider_ref(self, provider: ProviderName, provider_message_id: str) -> str | None:
        """`message_for_provider_ref`'s id only: the index lookup, without reading the record."""
        ...

    def read_messages(self, message_ids: Sequence[str]) -> dict[str, MessageRecord]:
        """The records of these ids that exist, by id (consistent reads, as `reload`; many in one request)."""
        ...

    def find_recipients(self, echo: EchoRange, to: str | None) -> list[MessageRecord]:
        """The messages in the echo's range of a batch sent to `to`, smallest id first (two specs of one request may
        text the same number); none without `to` (an echo alone is guessable)."""
        ...

    def reload(self, message_id: str) -> MessageRecord | None: ...

    def save_delivery(self, record: MessageRecord, *, expected_version: int) -> bool:
        """Write the receipt fields (status, events, receipt_ids, version, provider id, error) if the stored
        version is still `expected_version`; False when another writer got there first."""
        ...

    def hold_receipt(
        self, provider: ProviderName, provider_message_id: str, event: dict[str, Any], message_id: str | None
    ) -> bool:
        """Keep a receipt no submitted message takes yet — for the message when it is known, else under the provider
        id (a key space of its own: `HeldReceipts`); False when this receipt was already held. A new hold notes its
        time for `holds_since`: of the message's batch when the message is known, else of the provider's."""
        ...

    def holds_since(self, provider: ProviderName, batch_ids: Collection[str], since: int) -> bool:
        """Whether a receipt was held (`hold_receipt`) at `since` (epoch seconds) or later for a message of one of
        these batches, or for an unknown message of the provider (consistent read). False: none of their messages
        can have a held receipt newer than `since`, and looking for them can be skipped."""
        ...

    def held_receipts(
        self, provider: ProviderName, message_ids: Sequence[str], provider_message_ids: Sequence[str]
    ) -> HeldReceipts:
        """Receipts held for these messages and under these provider ids (consistent read; one request)."""
        ...

    def start_resend(self, record: MessageRecord, *, expected_version: int, earlier: MessageRecord) -> bool:
        """Write `record` (a message resent through its next provider, `receipts.failover`) over the stored one if
        that is still version `expected_version` and still on `earlier`'s provider and provider message id, and keep
        that earlier attempt's id pointing at the message (`message_for_earlier_attempt`); False when another
        writer got there first (nothing written)."""
        ...

    def message_for_earlier_attempt(self, provider: ProviderName, provider_message_id: str) -> MessageRecord | None:
        """The message whose first attempt had this provider message id, once it was resent (else None)."""
        ...


class ReceiptDeadlines(Protocol):
    """Deadline entries of SUBMITTED messages waiting for a final receipt, and the records they list
    (reconcile/deadline.py)."""

    def due(self, bucket: str, *, after: int, until: int) -> Iterator[DeadlineEntry]:
        """The entries of one bucket due after `after` and at or before `until` (epoch seconds), earliest first;
        read a page at a time as the caller goes on (a Query, never a Scan)."""
        ...

    def waiting(self, message_ids: Sequence[str], *, until: int) -> list[MessageRecord]:
        """The records of these ids still SUBMITTED whose own deadline is at or before `until` (consistent reads)."""
        ...

    def reschedule(self, record: MessageRecord, *, due_at: int, tries: int, failures: int = 0) -> bool:
        """Move a still-SUBMITTED message's deadline (and write its entry), with its extensions used (`tries`) and
        its failed queries in a row (`failures`), if its stored version is still `record.version` (and move the
        version on); False when a receipt, or another reconcile run, got there first."""
        ...

    def watermark(self) -> int | None:
        """Every entry due at or before this epoch second has been settled (None before the first run)."""
        ...

    def set_watermark(self, done_until: int) -> None: ...


class StatusQuery(Protocol):
    """A provider's status query for one message (Alibaba QueryMessage, Tencent PullSmsSendStatusByPhoneNumber).
    `status_query_operation` is what its calls count against in the shared rate limits."""

    status_query_operation: str

    def query_status(self, record: MessageRecord, *, now: datetime) -> StatusAnswer:
        """Raises `models.receipts.StatusQueryFailed` when the call fails or its answer cannot be read."""
        ...


class WebhookQueue(Protocol):
    def send_webhooks(self, deliveries: Sequence[WebhookDelivery]) -> None:
        """Queue each delivery for the webhook sender, or raise."""
        ...


class Claim(Enum):
    CLAIMED = "claimed"  # ours: send it
    DONE = "done"  # sent before: skip
    BUSY = "busy"  # another dispatcher holds an unexpired claim
    STALE = "stale"  # ours now, but an earlier attempt claimed it and vanished: it may have sent
    CANCELED = "canceled"  # a cancel took it before any dispatcher did: never send it (scheduling/cancel.py)
    # Ours: send it. It was dead-lettered with its recipients recorded FAILED and their spend given back, and a
    # redrive brought it back: that spend is charged again before it is sent (guardrails/release.py), then the
    # claim notes that the redrive sends (`mark_redriving`). Also a claim after the redrive's own attempt released
    # the pack for a retry (charged already: charging again is a no-op), so that it knows it sends a redrive too.
    REDRIVEN = "redriven"


class PackClaims(Protocol):
    def claim(self, pack_id: str, *, now: datetime, lease_seconds: int) -> Claim: ...

    def release(self, pack_id: str, *, dead_lettered_at: datetime | None = None) -> None:
        """Nothing was sent: the pack may be claimed again. `dead_lettered_at`: it goes to the dead-letter queue
        next with its recipients recorded FAILED (by then), so the claim that takes it again is `Claim.REDRIVEN`;
        the time is kept across the claims that follow (`notes`)."""
        ...

    def cancel(self, pack_id: str, *, now: datetime) -> bool:
        """Take the pack for a cancel, if no dispatcher holds or finished it (the same conditional write as a claim):
        True when it is canceled now or was before, False when a dispatcher claimed it first (it may have sent)."""
        ...

    def finish(self, pack_id: str) -> None: ...

    def take_hold(self, hold_id: str, *, now: datetime) -> bool:
        """End a quiet-hours hold for sending (dispatch/holds.py): True when it is ended now or was before, False
        when a cancel took it first. The same conditional item as `cancel`, so exactly one of the two wins."""
        ...

    def hold_state(self, hold_id: str) -> str | None:
        """The hold's state as written (consistent read): "RELEASED" (ended for sending), "CANCELED", or None while
        neither has happened."""
        ...

    def record_requeued(self, pack_id: str, requeued: Requeued) -> None:
        """Before a dispatcher puts recipients back on a queue: which it never sent (kept as given, `by_position`
        included)."""
        ...

    def mark_redriving(self, pack_id: str) -> datetime | None:
        """A redrive (`Claim.REDRIVEN`) charged its spend again and is about to call the provider: noted on the
        claim. Returns when the pack was last dead-lettered (None: not known, dead-lettered before the time was
        kept)."""
        ...

    def notes(self, pack_id: str) -> ClaimNotes:
        """What the pack's claim keeps for a dispatcher taking it over: what `record_requeued` noted (since the
        last claim), when it was last dead-lettered, and that time again once a redrive of that dead-lettering got
        to its call."""
        ...


@dataclass(frozen=True, slots=True)
class ClaimNotes:
    """What a pack's claim tells the dispatcher that takes over from a holder that died (`dispatch/recovery.py`):
    the recipients that holder put back on a queue unsent, and `redriving`: when the pack last went to the
    dead-letter queue, if a redrive of it has since charged its spend again and gone on to call the provider
    (None otherwise). That redrive sends the recipients the dead-lettering recorded FAILED: a record still FAILED
    from then may have been sent."""

    requeued: Requeued
    redriving: datetime | None = None
    dead_lettered: datetime | None = None  # when the pack last went to the dead-letter queue (None: never)


@dataclass(frozen=True, slots=True)
class Requeued:
    """Recipients of a pack that its dispatcher never sent and put back on a queue: for a retry (`retried`), for
    want of a rate-limit permit (`deferred`), onto the next provider of their route (`failed_over`), or to wait out
    their quiet hours (`quiet`). Dispatch works with positions in the pack (`by_position`); the claim keeps the
    sequence numbers of the recipients' message ids (`<batch>.<seq>`, `dispatch/requeue.py`'s `note_requeued`),
    since the pack a takeover holds may be a copy with fewer recipients (a resumed accept's: accept/resume.py).
    A note written before the claim kept sequence numbers reads as positions."""

    retried: tuple[int, ...] = ()
    deferred: tuple[int, ...] = ()
    failed_over: tuple[int, ...] = ()
    quiet: tuple[int, ...] = ()
    by_position: bool = True

    def __bool__(self) -> bool:
        return bool(self.retried or self.deferred or self.failed_over or self.quiet)

    @property
    def never_sent(self) -> set[int]:
        return {*self.retried, *self.deferred, *self.failed_over, *self.quiet}


@dataclass(frozen=True, slots=True)
class BreakerState:
    """A provider's circuit breaker as stored: consecutive failed packs, and until when (epoch seconds) it is open."""

    failures: int = 0
    open_until: int = 0

    def is_open(self, now: datetime) -> bool:
        return self.open_until > now.timestamp()


class CircuitBreakers(Protocol):
    """One breaker per provider, shared by every dispatcher (`globesms.circuit_breaker` says when it opens)."""

    def state(self, provider: ProviderName) -> BreakerState: ...

    def record_failure(
        self, provider: ProviderName, *, now: datetime, failures_to_open: int, cooldown_seconds: int
    ) -> BreakerState:
        """One more failed pack in a row; opens the breaker for `cooldown_seconds` once there are
        `failures_to_open` of them (again at every further failure). Returns the state after."""
        ...

    def record_success(self, provider: ProviderName) -> None:
        """The provider answered: the count starts again from zero and the breaker closes."""
        ...


class PackQueues(Protocol):
    def send_packs(self, provider: ProviderName, packs: Sequence[DispatchPack], *, delay_seconds: int = 0) -> None:
        """Put every pack on the provider's queue, or raise; packs may repeat on retry (consumers dedupe)."""
        ...


class RateLimiter(Protocol):
    """Provider calls per operation per wall-clock second (epoch seconds, as the providers count them), shared by
    every dispatcher: what one takes, the others cannot."""

    def limit(self, operation: str) -> int:
        """The configured calls per second; raises `KeyError` for an operation without a configured rate."""
        ...

    def free(self, operations: Collection[str], *, second: int) -> dict[str, int]:
        """Permits still free in `second`, per operation (a snapshot: another dispatcher may take them next)."""
        ...

    def acquire(self, permits: Mapping[str, int], *, second: int) -> bool:
        """Take all these permits (operation -> calls) in `second`, or none: False when any operation is short."""
        ...


# ---- consent: the opt-out list (globesms.consent) ----


@dataclass(frozen=True, slots=True)
class KeywordWrite:
    """What `OptOutStore.apply_keyword` did: nothing when a keyword the person sent later was applied already
    (`stale`); else whether the number was newly listed (`added`), or the entry an opt-in removed (`removed`)."""

    stale: bool = False
    added: bool = False
    removed: dict[str, Any] | None = None


class OptOutStore(Protocol):
    """One opt-out list per owner (today one owner, `consent.rules.DEFAULT_OWNER`), entries keyed by E.164."""

    def listed(self, owner: str, numbers: Collection[str]) -> set[str]:
        """Which of these numbers are on the owner's list (consistent read)."""
        ...

    def get_opt_out(self, owner: str, number: str) -> dict[str, Any] | None:
        """The stored entry (`consent.optouts.OptOutEntry` as JSON data), or None."""
        ...

    def put_opt_out(self, owner: str, number: str, entry: dict[str, Any]) -> bool:
        """Store the entry unless the number is listed already; True when it was added (an existing entry keeps
        when and how it was first added)."""
        ...

    def delete_opt_out(self, owner: str, number: str) -> dict[str, Any] | None:
        """Remove the entry; the removed entry, or None when the number was not listed."""
        ...

    def page_opt_outs(self, owner: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Entries in number order after `after` (a number), and the last number of the page when more may follow."""
        ...

    def apply_keyword(
        self, owner: str, number: str, sent_at: str, entry: dict[str, Any] | None, *, expires_at: int
    ) -> KeywordWrite:
        """A reply keyword sent at `sent_at` (ISO 8601 UTC, as `domain.clock.iso` writes it): list the number with
        `entry` (unless listed already), or remove it (`entry` None), unless the last keyword applied for the number
        was sent later; the time is kept (until `expires_at`, epoch seconds) with the change, atomically."""
        ...


class ReplyStore(Protocol):
    """Replies per owner, in the order the people sent them (`sk`: `<sent_at>#<reply id>`)."""

    def get_reply(self, owner: str, sk: str) -> dict[str, Any] | None:
        """The stored reply with this `sk` (read consistently), or None."""
        ...

    def put_reply(self, owner: str, sk: str, item: dict[str, Any]) -> dict[str, Any] | None:
        """Store the reply unless one with this `sk` is stored: None when it was new, else the stored one."""
        ...

    def mark_reply_handled(self, owner: str, sk: str) -> None:
        """Its keyword applied and its event queued: a push of it again changes nothing."""
        ...

    def page_replies(self, owner: str, *, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Replies after `after` (an `sk`), and the last `sk` of the page when more may follow."""
        ...


# ---- scheduling: held packs, the release index, cancel (globesms.scheduling) ----


@dataclass(frozen=True, slots=True)
class ReleaseRef:
    """One release: the held packs of a batch due at one send_at (ISO-8601 UTC, as stored)."""

    batch_id: str
    send_at: str


@dataclass(frozen=True, slots=True)
class SweepCursor:
    """Where the minute sweep is: `bucket`, the last bucket (a UTC minute) whose releases are all queued; `within`,
    in the bucket after it, the last release queued, when only part of that bucket is."""

    bucket: str
    within: ReleaseRef | None = None


class ScheduleStore(Protocol):
    def hold_packs(self, ref: ReleaseRef, packs: Sequence[DispatchPack], *, expires_at: int) -> None:
        """Keep the packs to release at `ref.send_at` (a repeat of the same packs changes nothing)."""
        ...

    def held_packs(self, ref: ReleaseRef) -> list[DispatchPack]:
        """The packs held for `ref`, in pack-id order (consistent read)."""
        ...

    def index_release(self, bucket: str, ref: ReleaseRef, *, expires_at: int) -> None:
        """Enter `ref` in the time-bucketed index under `bucket` (`scheduling.timing.bucket_of`)."""
        ...

    def indexed_releases(
        self, bucket: str, *, after: ReleaseRef | None = None, limit: int
    ) -> tuple[list[ReleaseRef], bool]:
        """Up to `limit` releases entered under `bucket`, in index order (send_at, then batch id), after `after`
        (one Query page of the bucket's partition); and whether more may follow."""
        ...

    def sweep_cursor(self) -> SweepCursor | None:
        """Where the sweep is, or None before the first sweep."""
        ...

    def advance_sweep_cursor(self, old: SweepCursor | None, new: SweepCursor) -> bool:
        """Move the cursor from `old` to `new` unless another sweep moved it first (then False)."""
        ...

    def claim_for_release(self, message_ids: Sequence[str], *, now: datetime) -> dict[str, str]:
        """Move each SCHEDULED record to QUEUED, conditionally (the claim a cancel races). Returns, by id, the
        status each record has after: QUEUED for those claimed now or by an earlier release, CANCELED for those a
        cancel claimed first; ids with no record are left out."""
        ...

    def cancel_scheduled(
        self, message_ids: Sequence[str], *, now: datetime
    ) -> tuple[list[MessageRecord], dict[str, str]]:
        """Move each SCHEDULED record to CANCELED, conditionally. Returns the records canceled now (as stored after),
        and the status of every other one found (released or final: not cancelable), by id."""
        ...


class ReleaseQueue(Protocol):
    def send_releases(self, refs: Sequence[ReleaseRef], *, delay_seconds: int) -> None:
        """Queue a release message per ref, visible after `delay_seconds` (0..900), or raise."""
        ...
