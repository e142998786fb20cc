"""Accepting a send request: validate every recipient, route it, persist it, pack it onto provider queues.

Order of writes, chosen so that nothing accepted is lost and a repeated delivery of the same request (an SQS
redelivery, a retried invocation) neither duplicates nor regresses anything:
1. the batch header, conditionally, in state ACCEPTING (an existing finished header means "already done": the
   batch as it stands is given back as a replay, `BatchDoneBefore`, and nothing is counted, written or sent);
2. every accepted recipient's record (ACCEPTED, or SCHEDULED), each naming the pack it goes in;
3. the packs on the provider queues (pack ids are deterministic; dispatch skips a pack it has seen), and the held
   packs of SCHEDULED records;
4. the header again, now QUEUED: from then on the API reports ACCEPTED records as QUEUED without rewriting them.
Validation happens before step 1 (`planning.py`), so a refused request writes nothing. An accept that stopped half
way (its header still ACCEPTING) is resumed by the next attempt of the same body, the records it wrote standing as
written (`resume.py`).
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from globesms import collector
from globesms.accept import resume
from globesms.accept.canonical import body_digests
from globesms.accept.idempotency_outcomes import BatchDoneBefore
from globesms.accept.planning import AcceptPlan, expiry, pack_plan, plan_batch
from globesms.accept.queries import batch_messages, effective_status
from globesms.config import QuietHoursSettings, settings
from globesms.counts.tally import scheduled_count
from globesms.domain.clock import iso
from globesms.domain.status import Status
from globesms.guardrails import gate, otp_guard
from globesms.guardrails.ports import HeldForAnotherBody, SpendAccount
from globesms.guardrails.release import release_unwritten
from globesms.models.api import MessageSpec
from globesms.models.errors import RecipientError
from globesms.models.outbound import DEFAULT_VALIDITY_SECONDS, MessageType
from globesms.models.records import MAX_STORED_ERRORS, BatchRecord, MessageRecord, message_id
from globesms.models.views import AcceptResponse
from globesms.ports import MessageStore, PackQueues
from globesms.scheduling import hold as scheduling
from globesms.scheduling.timing import SEND_AT_RULE, parse_iso, send_at_problem

# A child of the Powertools logger "globesms" (globesms.observability), whose handler writes these lines too.
logger = logging.getLogger(__name__)

LEASE_MARGIN = timedelta(seconds=5)


class BatchIdConflict(ValueError):
    """The batch id names a different body already (a batch id is an idempotency key, not a label)."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"batch {batch_id} exists with a different body")
        self.batch_id = batch_id


class NewWorkFieldRefused(ValueError):
    """A field's rule that only new work is held to (VALIDATION_ERROR, naming the field and the rule): checked after
    the Idempotency-Key and the batch id, since a retry of an accepted request must get its first answer, or resume
    it, whatever time or the deployment's settings have done to the rule since."""

    # What a refusal names when the exception is made without its arguments (tests/unit/test_error_codes.py).
    field: str = "body"
    rule: str = "invalid"

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field, self.rule = field, rule


class SendAtPassed(NewWorkFieldRefused):
    """A new request's send_at is not in the future, or lies beyond what the deployment keeps."""

    field = "send_at"
    rule = SEND_AT_RULE


class QuietHoursNarrowed(NewWorkFieldRefused):
    """A new MKT request's own quiet hours do not cover the deployment's, which does not allow waiving them."""

    field = "quiet_hours"
    rule = "must cover this deployment's quiet hours"


def check_quiet_hours(specs: Sequence[MessageSpec]) -> None:
    """Where the deployment does not allow waiving quiet hours, raises QuietHoursNarrowed for the first MKT spec
    that waives them (`false`) or whose own window (or the request's) does not cover the deployment's: a one-minute
    window was a waiver by another name (found by a review). Only MKT: quiet hours do nothing to OTP and NOTIFY,
    whose windows are ignored. Only for new work, as `check_send_at`: the operator may change QuietHours or
    QuietHoursWaiver after a request was accepted, and its retry must get its first answer (a review)."""
    deployment = settings(QuietHoursSettings)
    if deployment.quiet_hours_waiver:
        return
    window = deployment.window()
    for index, spec in enumerate(specs):
        if spec.type is not MessageType.MKT or spec.quiet_hours is None:
            continue
        field = _field_of(specs, index, "quiet_hours")
        if spec.quiet_hours is False:
            raise QuietHoursNarrowed(field, "false (waiving quiet hours) is not enabled on this deployment")
        if not spec.quiet_hours.window().covers(window):
            rule = (
                f"must cover this deployment's quiet hours ({deployment.quiet_hours}): a request's own window may "
                "widen them, not narrow or move them, unless the deployment allows waiving them"
            )
            raise QuietHoursNarrowed(field, rule)


def check_send_at(specs: Sequence[MessageSpec], now: datetime, retention_days: int) -> None:
    """Raises SendAtPassed for the first spec whose send_at has passed, or lies beyond what this deployment keeps
    (`retention_days`, less the message's validity and a day for its receipt's grace and a quiet-hours deferral: the
    table's TTL would delete the scheduled send, its held packs and its records before it was sent and settled).
    Only for new work: the schema cannot check it, since a retry of an accepted request (its idempotency key, its
    batch id) made after send_at must get its first answer, or resume it. A request-wide send_at is named in the
    first spec that has it."""
    for index, spec in enumerate(specs):
        problem = None if spec.send_at is None else send_at_problem(spec.send_at, now)
        if problem is None and spec.send_at is not None:
            problem = _beyond_retention(spec, spec.send_at - now, retention_days)
        if problem:
            raise SendAtPassed(_field_of(specs, index, "send_at"), problem)


def _field_of(specs: Sequence[MessageSpec], index: int, name: str) -> str:
    """How a refusal checked after the schema names a spec's field: `name` in a request of one spec, else
    `messages.<index>.<name>` (a request-wide value in the first spec it reaches)."""
    return name if len(specs) == 1 else f"messages.{index}.{name}"


def _beyond_retention(spec: MessageSpec, ahead: timedelta, retention_days: int) -> str | None:
    validity = spec.validity_seconds or DEFAULT_VALIDITY_SECONDS[spec.type]
    kept = timedelta(days=retention_days - 1, seconds=-validity)
    if ahead <= kept:
        return None
    return (
        f"must be at most {max(kept, timedelta(0)).days} days ahead here: messages are kept {retention_days} days "
        "(RetentionDays), and this one needs its validity and a day after send_at"
    )


@collector.paused_during
def accept(
    specs: Sequence[MessageSpec],
    *,
    batch_id: str,
    source: str,
    now: datetime,
    retention_days: int,
    store: MessageStore,
    queues: PackQueues,
    ledger: SpendAccount | None = None,
    owner: str | None = None,
    otp: otp_guard.OtpGuard | None = None,
    new_batch_id: bool = False,
    accepting_until: datetime | None = None,
) -> AcceptResponse:
    """`ledger`: where spend is reserved (docs/guardrails.md); without one nothing is reserved. `otp`: the OTP
    velocity and pumping counters; without them OTP is not screened. `new_batch_id`: `batch_id` was minted for this
    request (an API request without an Idempotency-Key), so no header can exist yet and none is read for it.
    `accepting_until`: when this invocation is stopped at the latest (its deadline); no other accept resumes the
    batch before then (`resume.py`; None: a stopped accept may be resumed at once)."""
    clock = now
    digests = body_digests(specs)  # once: the template registry it reads may be reloaded meanwhile
    now, resumed = _planning_time(store, specs, digests, batch_id, now, new_batch_id=new_batch_id, days=retention_days)
    stored = [] if resumed is None else batch_messages(store, batch_id)  # what a stopped attempt wrote
    lease = _lease(accepting_until)
    if resumed is not None and resume.all_written(resumed, stored):
        return _queue_again(resumed, stored, store=store, queues=queues, now=clock, lease=lease)
    if resumed is not None:  # the batch's owner, whom its reservation was made for (the intake's may be changed)
        owner = resumed.owner
    rules = gate.current_rules()
    plan = plan_batch(specs, batch_id=batch_id, now=now, retention_days=retention_days, rules=rules, owner=owner)
    if stored:  # the guards see the records the stopped attempt screened, first for the spend it reserved
        plan = _with_stored(plan, stored)
    first, body = {r.id for r in stored}, digests[0]
    plan = _guarded(
        plan, rules, otp, ledger, first=first, batch_id=batch_id, body=body, owner=owner, now=now, days=retention_days
    )
    settle_after = resume.settle_after(source=source, new_batch_id=new_batch_id, lease=lease, now=clock)
    header = _header(
        body, batch_id, source, now, owner=owner, lease=lease, settle_after=settle_after, days=retention_days
    )
    if resumed is not None:
        header.resumes = (resumed.resumes or 0) + 1
        plan = _with_stored(plan, stored)  # a record the guards refused this time stands as written
        _count(header, plan)
        _pack_resumed(plan, stored, header)
        _take_over(store, header, resumed)
    else:
        _count(header, plan)
        _begin(store, header, digests, give_back_to=ledger if new_batch_id else None, now=clock)
    written = {r.id for r in stored if r.pack_key is not None}
    try:
        _write_and_queue([r for r in plan.records if r.id not in written], plan, header, store, queues, now=clock)
        _finish(store, header, now=clock)
    except Exception:
        _give_up(store, header)
        raise
    if resumed is not None and ledger is not None:
        _give_back_unwritten(ledger, header, plan.records, now=clock)
    return _response(batch_id, plan, Status.QUEUED)


def _header(
    digest: str,
    batch_id: str,
    source: str,
    now: datetime,
    *,
    owner: str | None,
    lease: int | None,
    settle_after: int | None,
    days: int,
) -> BatchRecord:
    """The header this attempt writes: ACCEPTING, planned as of `now`, leased until `lease`."""
    return BatchRecord(
        batch_id=batch_id,
        source="sqs" if source == "sqs" else "api",
        state="ACCEPTING",
        created_at=iso(now),
        body_hash=digest,
        expires_at=expiry(now, days),
        owner=owner,
        accepting_until=lease,
        settle_after=settle_after,
        attempt=new_attempt(),
    )


def new_attempt() -> str:
    """An attempt's own mark in the header it writes (`_ours`)."""
    return secrets.token_hex(8)


def _give_back_unwritten(
    ledger: SpendAccount, header: BatchRecord, records: Sequence[MessageRecord], *, now: datetime
) -> None:
    """What the batch reserved beyond the cost of `records` (all it holds), given back once (`release_unwritten`,
    which logs a ledger error and carries on): a resume that wrote fewer records than the stopped attempt reserved
    for (some refused this time: an opt-out, a permission), or a header that could not be begun (`_begin`). A crash
    before it leaves the rest reserved: the limit is stricter by it, never crossed."""
    written = sum((Decimal(r.cost) for r in records if r.cost), Decimal(0))
    release_unwritten(
        ledger,
        batch_id=header.batch_id,
        owner=header.owner,
        written_cost=written,
        expires_at=header.expires_at,
        now=int(now.timestamp()),
    )


def _guarded(
    plan: AcceptPlan,
    rules: gate.Rules,
    otp: otp_guard.OtpGuard | None,
    ledger: SpendAccount | None,
    *,
    first: Collection[str],
    batch_id: str,
    body: str,
    owner: str | None,
    now: datetime,
    days: int,
) -> AcceptPlan:
    """The plan less the recipients the OTP guard and the spend limits refuse (docs/guardrails.md). `first`: records
    the spend limits take before the others, in index order each (a batch reserves once: a resume gets the count the
    stopped attempt reserved, which then covers the records it wrote before any it did not). They are counted
    whatever the OTP guard says this time: written, they stand, so they take their slots of the reservation. Raises
    BatchIdConflict when the batch id holds another body's reservation (two bodies naming it at once: the other
    reserved first, and its header is yet to be written)."""
    written = [r for r in plan.records if r.id in first]
    if otp is not None:  # before spend: a recipient held here reserves nothing
        plan = _screen_otp(otp, plan, rules, batch_id=batch_id, owner=owner, now=now)
    if ledger is not None:
        records = [*written, *(r for r in plan.records if r.id not in first)] if first else plan.records
        try:
            held_back = gate.hold_spend(
                ledger, records, rules, batch_id=batch_id, owner=owner, now=now, expires_at=expiry(now, days), body=body
            )
        except HeldForAnotherBody:
            raise BatchIdConflict(batch_id) from None
        plan = _without(plan, held_back, batch_id) if held_back else plan
    return plan


def _write_and_queue(
    records: Sequence[MessageRecord],
    plan: AcceptPlan,
    header: BatchRecord,
    store: MessageStore,
    queues: PackQueues,
    *,
    now: datetime,
) -> None:
    """Steps 2 and 3: the records, then the packs (queued now, or held until their send_at)."""
    store.put_messages(records)
    for provider, packs in plan.packs.items():
        queues.send_packs(provider, packs)
    if plan.held:
        _hold(plan.held, now=now, expires_at=header.expires_at)


def _give_up(store: MessageStore, header: BatchRecord) -> None:
    """This attempt stops here (an error, not a timeout): the next one may resume the batch at once rather than after
    this invocation's deadline. Best effort: if the store fails too, the deadline still frees it."""
    if header.accepting_until is None:
        return
    try:
        store.take_over_batch(header.model_copy(update={"accepting_until": None}), header)
    except Exception as exc:  # the original error is what the caller sees
        logger.warning("could not clear the accept's deadline", extra={"error": type(exc).__name__})


def _count(header: BatchRecord, plan: AcceptPlan) -> None:
    header.accepted, header.rejected = len(plan.records), len(plan.errors)
    header.scheduled = scheduled_count(plan.records)
    header.errors = plan.errors[:MAX_STORED_ERRORS]
    for name, value in gate.batch_totals(plan.records).items():
        setattr(header, name, value)


def _begin(
    store: MessageStore,
    header: BatchRecord,
    digests: Sequence[str],
    *,
    give_back_to: SpendAccount | None,
    now: datetime,
) -> None:
    """Writes the header of a new batch, conditionally: a concurrent accept of the same id may have come first.
    `give_back_to`: for a batch no retry can resume (an id minted for this request), the ledger its spend was
    reserved in, given back if the write fails: nothing was written, and no header may exist for the reconcile run
    to end INTERRUPTED later (one written by a write that failed late is ended all the same, giving back nothing
    more)."""
    try:
        existing = store.begin_batch(header)
    except Exception:
        if give_back_to is not None:
            _give_back_unwritten(give_back_to, header, (), now=now)
        raise
    if existing is None:
        return
    if existing.body_hash not in digests:
        raise BatchIdConflict(header.batch_id)
    if existing.state != "ACCEPTING":
        raise BatchDoneBefore(stored_answer(store, existing))  # finished by a concurrent accept meanwhile
    if not _ours(existing, header):
        raise resume.BatchInProgress(header.batch_id)  # begun by another accept since this one looked


def _take_over(store: MessageStore, header: BatchRecord, resumed: BatchRecord) -> None:
    """Takes the header of a stopped attempt over, or raises BatchInProgress: another attempt resumed it first."""
    if store.take_over_batch(header, resumed):
        return
    found = store.get_batch(header.batch_id)  # a retried write whose first try took it, answered too late
    if found is None or found.state != "ACCEPTING" or not _ours(found, header):
        raise resume.BatchInProgress(header.batch_id)


def _ours(found: BatchRecord, header: BatchRecord) -> bool:
    """Whether the stored header is the one this attempt wrote (a write the client retried after its first try took):
    its attempt mark, planning time, deadline and resume number. Without a deadline, never."""
    mine = (header.attempt, header.created_at, header.accepting_until, header.resumes)
    found_as = (found.attempt, found.created_at, found.accepting_until, found.resumes)
    return header.accepting_until is not None and found_as == mine


def _finish(store: MessageStore, header: BatchRecord, *, now: datetime) -> BatchRecord:
    """Every record written, every pack queued or held: from now on ACCEPTED records read as QUEUED."""
    state = "QUEUED" if header.accepted else "REJECTED"
    done = header.model_copy(
        update={"state": state, "queued_at": iso(now), "accepting_until": None, "settle_after": None}
    )
    store.finish_batch(done)
    return done


def _with_stored(plan: AcceptPlan, stored: Sequence[MessageRecord]) -> AcceptPlan:
    records, errors = resume.with_stored(plan.records, plan.errors, stored)
    return AcceptPlan(records=records, errors=errors, packs=plan.packs, held=plan.held)


def _pack_resumed(plan: AcceptPlan, stored: Sequence[MessageRecord], header: BatchRecord) -> None:
    """A resume's packs (`resume.py`): each stored record in the pack it names, the others packed afresh."""
    kept = {r.id for r in stored if r.pack_key is not None}  # a record written before pack keys is packed afresh
    fresh = AcceptPlan(records=[r for r in plan.records if r.id not in kept])
    assert header.resumes is not None and header.expires_at is not None
    prefix = resume.fresh_prefix(header.batch_id, header.resumes)
    pack_plan(
        fresh, batch_id=header.batch_id, created_at=header.created_at, expires_at=header.expires_at, prefix=prefix
    )
    as_stored = resume.packs_as_stored([r for r in plan.records if r.id in kept], batch=header)
    plan.packs, plan.held = resume.joined((fresh.packs, fresh.held), as_stored)


def _queue_again(
    resumed: BatchRecord,
    stored: list[MessageRecord],
    *,
    store: MessageStore,
    queues: PackQueues,
    now: datetime,
    lease: int | None,
) -> AcceptResponse:
    """Completes an accept that stopped after writing every record (`resume.py`): its packs, rebuilt from the stored
    records, queued (and held) again, and its answer as the batch stands (as a replay's, its first errors). Taken
    over first, so a resume that read the header before another took it over stops here."""
    settle = resume.settle_after(source=resumed.source, new_batch_id=False, lease=lease, now=now)
    header = resumed.model_copy(
        update={
            "resumes": (resumed.resumes or 0) + 1,
            "accepting_until": lease,
            "attempt": new_attempt(),
            "settle_after": settle,
            "scheduled": scheduled_count(stored),  # every record is stored: counted as written
        }
    )
    _take_over(store, header, resumed)
    try:
        packs, held = resume.packs_as_stored([r for r in stored if r.pack_key is not None], batch=header)
        legacy = AcceptPlan(records=[r for r in stored if r.pack_key is None and r.status in resume.UNSENT])
        if legacy.records:  # written before records named their pack: packed as accept packed them then
            pack_plan(legacy, batch_id=header.batch_id, created_at=header.created_at, expires_at=header.expires_at)
            packs, held = resume.joined((packs, held), (legacy.packs, legacy.held))
        for provider, provider_packs in packs.items():
            queues.send_packs(provider, provider_packs)
        if held:
            _hold(held, now=now, expires_at=header.expires_at)
        done = _finish(store, header, now=now)
    except Exception:
        _give_up(store, header)
        raise
    return _answer(done, stored)


def _lease(accepting_until: datetime | None) -> int | None:
    """A header's `accepting_until`: the deadline, plus a margin for a write sent just before it that lands just after
    (and for the hosts' clocks, which differ by milliseconds)."""
    return None if accepting_until is None else math.ceil((accepting_until + LEASE_MARGIN).timestamp())


def _planning_time(
    store: MessageStore,
    specs: Sequence[MessageSpec],
    bodies: Sequence[str],
    batch_id: str,
    now: datetime,
    *,
    new_batch_id: bool,
    days: int,
) -> tuple[datetime, BatchRecord | None]:
    """When this accept plans as of, and the header of the stopped attempt it resumes, if any: `now` for new work
    (its send_at checked), the first attempt's time when resuming an accept that stopped half way. Raises before
    anything is counted: BATCH_ID_CONFLICT (the header holds another body than `bodies`, the specs' digests),
    BatchDoneBefore (done before: nothing to write, count or send again), or BatchInProgress (the attempt may still
    be running)."""
    found = None if new_batch_id else _existing(store, batch_id, bodies)
    if found is None:
        check_send_at(specs, now, days)
        check_quiet_hours(specs)
        return now, None
    if found.state != "ACCEPTING":
        raise BatchDoneBefore(stored_answer(store, found))
    if found.accepting_until is not None and now.timestamp() < found.accepting_until:
        raise resume.BatchInProgress(batch_id)
    # Planned at a later time, a recipient queued then could now fall in its quiet hours and be held as well (texted
    # twice at their end), and the stamps, the spend's month and the OTP guard's buckets would move.
    return parse_iso(found.created_at), found


def _existing(store: MessageStore, batch_id: str, digests: Sequence[str]) -> BatchRecord | None:
    """The batch `batch_id` already names for this body, if any. Read before anything is counted or reserved, so a
    body refused as BATCH_ID_CONFLICT has cost nothing. A header of a body refused as a whole (REJECTED without a
    body hash: nothing written, reserved or sent under it) does not hold the id: it is replaced (`begin_batch`)."""
    found = store.get_batch(batch_id)
    if found is None or found.refused_whole:
        return None
    if found.body_hash not in digests:
        raise BatchIdConflict(batch_id)
    return found


def stored_answer(store: MessageStore, batch: BatchRecord) -> AcceptResponse:
    """A finished batch's answer as it stands: its recipients' statuses now, its counts and its first errors (the
    header keeps MAX_STORED_ERRORS)."""
    return _answer(batch, batch_messages(store, batch.batch_id))


def _answer(batch: BatchRecord, records: Sequence[MessageRecord]) -> AcceptResponse:
    messages = [_message(r, effective_status(r, batch)) for r in records]
    return _accept_response(batch.batch_id, batch.accepted, batch.rejected, messages, batch.errors)


def _screen_otp(
    otp: otp_guard.OtpGuard, plan: AcceptPlan, rules: gate.Rules, *, batch_id: str, owner: str | None, now: datetime
) -> AcceptPlan:
    """The plan less the OTP recipients the velocity limits and the pumping rule refuse (docs/guardrails.md)."""
    expires_at = expiry(now, otp_guard.MARKER_DAYS)
    stopped = otp_guard.screen(
        otp, plan.records, rules.limits, batch_id=batch_id, owner=owner, now=now, expires_at=expires_at
    )
    return _without(plan, stopped, batch_id) if stopped else plan


def _without(plan: AcceptPlan, refused: Sequence[RecipientError], batch_id: str) -> AcceptPlan:
    """The plan less the recipients refused after planning (their errors added in index order), packed again."""
    ids = {message_id(batch_id, e.index) for e in refused}
    records = [r for r in plan.records if r.id not in ids]
    errors = sorted([*plan.errors, *refused], key=lambda e: e.index)
    created = records[0] if records else None
    kept = AcceptPlan(records=records, errors=errors)
    pack_plan(
        kept,
        batch_id=batch_id,
        created_at=created.created_at if created else "",
        expires_at=created.expires_at if created else None,
    )
    return kept


def _hold(groups: list[scheduling.HeldGroup], *, now: datetime, expires_at: int | None) -> None:
    deps = scheduling.current()
    if deps is None:
        raise RuntimeError("scheduled recipients, but no schedule store is configured (GLOBESMS_RELEASE_QUEUE_URL)")
    scheduling.hold(deps, groups, now=now, expires_at=expires_at or expiry(now, 30))


def _response(batch_id: str, plan: AcceptPlan, status: Status) -> AcceptResponse:
    messages = [_message(r, status if r.send_at is None else Status.SCHEDULED) for r in plan.records]
    return _accept_response(batch_id, len(plan.records), len(plan.errors), messages, plan.errors)


def _accept_response(
    batch_id: str, accepted: int, rejected: int, messages: list[dict[str, object]], errors: list[RecipientError]
) -> AcceptResponse:
    # The messages validated in one call, as plain data: up to 10,000 of them, a model built for each from Python
    # cost a third more.
    answer = {"batch_id": batch_id, "accepted": accepted, "rejected": rejected, "messages": messages, "errors": errors}
    return AcceptResponse.model_validate(answer)


def _message(record: MessageRecord, status: Status) -> dict[str, object]:
    """A recipient's entry in the answer (`AcceptedMessage`)."""
    return {
        "id": record.id,
        "to": record.to,
        "status": status,
        "provider": record.provider,
        "segments": record.segments,
        "encoding": record.encoding,
        "price": record.price,
        "cost": record.cost,
        "currency": record.currency,
        "send_at": record.send_at,
    }
