"""Scheduled sends and cancel, without I/O: send_at's bounds, the release path's timing (direct delay or the
minute-bucketed index), held packs, the release, the sweep, and a cancel racing a release."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from globesms import hooks
from globesms.accept.planning import plan_batch
from globesms.accept.service import accept
from globesms.dispatch.service import DispatchDeps, RetryPack, dispatch_pack
from globesms.domain.clock import iso
from globesms.domain.provider_limits import RECIPIENTS_PER_CALL
from globesms.domain.status import Status
from globesms.errors import ErrorCategory, ProviderError
from globesms.models.api import MessageBatchSpec, MessageSpec, specs_of
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.packs import DispatchPack
from globesms.ports import Claim, ReleaseRef, SweepCursor
from globesms.scheduling import cancel, hold
from globesms.scheduling.release import release
from globesms.scheduling.sweep import PAGE, sweep
from globesms.scheduling.timing import (
    DIRECT_WINDOW,
    LOOKAHEAD,
    MAX_SQS_DELAY_SECONDS,
    bucket_of,
    bucket_start,
    buckets_to_sweep,
    goes_direct,
    parse_iso,
    release_delay,
    send_at_problem,
)
from tests.fakes import (
    MemoryClaims,
    MemoryQueues,
    MemoryReleases,
    MemoryScheduleStore,
    MemorySpendReleases,
    MemoryStore,
    MemoryWebhooks,
    ScriptedProvider,
)

NOW = datetime(2026, 12, 4, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> tuple[MemoryStore, MemoryScheduleStore, MemoryReleases, MemoryQueues]:
    store = MemoryStore()
    schedule = MemoryScheduleStore(store)
    releases = MemoryReleases()
    monkeypatch.setitem(
        hooks.installed, hooks.SCHEDULE_DEPS, lambda: hold.ScheduleDeps(store=schedule, releases=releases)
    )
    return store, schedule, releases, MemoryQueues()


def _accept(store: MemoryStore, queues: MemoryQueues, specs: list[MessageSpec], batch_id: str = "b1") -> None:
    accept(specs, batch_id=batch_id, source="api", now=NOW, retention_days=90, store=store, queues=queues)


def _spec(to: list[str], send_at: datetime | None, **extra: object) -> MessageSpec:
    # Built without validation: send_at's bounds are checked against the real clock, these use NOW.
    return MessageSpec.model_construct(
        to=to,
        text="hello",
        type=MessageType(str(extra.get("type", "NOTIFY"))),
        send_at=send_at,
        **{k: None for k in _NONE_FIELDS},
    )


def _deps(
    store: MemoryStore,
    schedule: MemoryScheduleStore,
    webhooks: MemoryWebhooks,
    spend: MemorySpendReleases | None = None,
    claims: MemoryClaims | None = None,
) -> cancel.CancelDeps:
    return cancel.CancelDeps(
        store=store,
        schedule=schedule,
        claims=claims or MemoryClaims(),
        webhooks=webhooks,
        spend=spend or MemorySpendReleases(),
    )


_NONE_FIELDS = ("template", "sender_id", "provider", "validity_seconds", "client_ref", "status_callback")


# ---------------------------------------------------------------- send_at's bounds


def test_send_at_must_have_an_offset_be_ahead_and_within_30_days() -> None:
    assert send_at_problem(NOW + timedelta(seconds=1), NOW) is None
    assert send_at_problem(NOW + timedelta(days=30), NOW) is None
    assert "in the past" in (send_at_problem(NOW, NOW) or "")
    assert "in the past" in (send_at_problem(NOW - timedelta(minutes=1), NOW) or "")
    assert "30 days" in (send_at_problem(NOW + timedelta(days=30, seconds=1), NOW) or "")
    assert "offset" in (send_at_problem(datetime(2026, 12, 5, 9, 0), NOW) or "")


@pytest.mark.parametrize(
    ("send_at", "rule"),
    [
        ("2999-01-01T00:00:00+08:00", "days ahead"),
        ("2030-01-01T00:00:00", "timezone"),
        ("tomorrow", "datetime"),
        # Read as Unix seconds (or milliseconds) by pydantic's lax datetime: 20261209 was 1970-08-23, "in the past",
        # and a time stamp a date the docs refuse (found by a review).
        ("20261209", "a number is no date here"),
        (1796643382, "a number is no date here"),
        ("1796643382000", "a number is no date here"),
        (17966433.5, "a number is no date here"),
        ("1.7966e9", "a number is no date here"),
    ],
)
def test_a_bad_send_at_is_refused_naming_the_field(send_at: object, rule: str) -> None:
    with pytest.raises(ValidationError) as refused:
        MessageSpec.model_validate({"to": "+6591234567", "text": "hi", "send_at": send_at})
    (error,) = refused.value.errors()
    assert error["loc"] == ("send_at",)
    assert rule in error["msg"]
    with pytest.raises(ValidationError) as refused:
        MessageBatchSpec.model_validate({"messages": [{"to": "+6591234567", "text": "hi"}], "send_at": send_at})
    assert refused.value.errors()[0]["loc"] == ("send_at",)


def test_a_passed_request_wide_send_at_is_named_in_the_first_spec_it_reaches(world) -> None:  # type: ignore[no-untyped-def]
    # As docs/scheduling.md says: the check after the schema sees the specs with the request's send_at given to
    # those without one; `send_at` when the body has one spec.
    from globesms.accept.service import SendAtPassed
    from globesms.models.api import specs_of

    store, _schedule, _releases, queues = world
    soon = NOW + timedelta(minutes=5)
    own = _spec(["+6591234567"], NOW + timedelta(hours=1))
    for messages, field in (([own, _spec(["+85251234567"], None)], "messages.1.send_at"), ([own], "send_at")):
        passed = soon if len(messages) > 1 else NOW + timedelta(hours=1)
        body = MessageBatchSpec.model_construct(messages=messages, send_at=soon, quiet_hours=None)
        with pytest.raises(SendAtPassed) as refused:
            accept(
                specs_of(body), batch_id="b", source="api", now=passed, retention_days=90, store=store, queues=queues
            )
        assert refused.value.field == field


def test_send_at_in_the_past_is_refused_for_new_work_only(world) -> None:  # type: ignore[no-untyped-def]
    # Not a schema rule: a retry of an accepted request made after its send_at (the intake redelivering a body
    # whose accept crashed half way, an API retry) must resume it or get its first answer, not a 422.
    from globesms.accept.refusals import refusal_of
    from globesms.accept.service import SendAtPassed

    store, schedule, _releases, queues = world
    soon = NOW + timedelta(minutes=5)
    specs = [_spec(["+6591234567"], soon), _spec(["+85251234567"], soon)]
    with pytest.raises(SendAtPassed) as refused:
        accept(specs, batch_id="late", source="sqs", now=soon, retention_days=90, store=store, queues=queues)
    assert not store.batches and not store.messages
    (detail,) = refusal_of(refused.value).fields
    assert detail.field == "messages.0.send_at" and "in the past" in detail.rule
    # Accepted before send_at, crashed before the header was finished: the redelivery after send_at resumes it.
    _accept(store, queues, specs, batch_id="late")
    store.batches["late"] = store.batches["late"].model_copy(update={"state": "ACCEPTING"})
    answer = accept(specs, batch_id="late", source="sqs", now=soon, retention_days=90, store=store, queues=queues)
    assert answer.accepted == 2 and store.batches["late"].state == "QUEUED" and schedule.held


def test_the_requests_send_at_goes_to_every_spec_without_its_own() -> None:
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    body = MessageBatchSpec.model_validate(
        {
            "send_at": soon,
            "messages": [{"to": "+6591234567", "text": "a"}, {"to": "+6591234567", "text": "b", "send_at": later}],
        }
    )
    assert [s.send_at for s in specs_of(body)] == [parse_iso(soon), parse_iso(later)]


# ---------------------------------------------------------------- timing


def test_the_release_delay_rounds_up_and_stays_within_sqs_limits() -> None:
    assert release_delay(NOW + timedelta(seconds=10.2), NOW) == 11
    assert release_delay(NOW + timedelta(seconds=10), NOW) == 10
    assert release_delay(NOW - timedelta(seconds=5), NOW) == 0
    assert release_delay(NOW + timedelta(hours=1), NOW) == MAX_SQS_DELAY_SECONDS


def test_the_sweep_reads_the_buckets_after_its_cursor_up_to_the_lookahead() -> None:
    assert buckets_to_sweep("202612040905", NOW, most=100) == [
        "202612040906",
        "202612040907",
        "202612040908",
        "202612040909",
    ]
    assert buckets_to_sweep("202612040909", NOW, most=100) == []
    assert buckets_to_sweep("202612040800", NOW, most=3) == ["202612040801", "202612040802", "202612040803"]
    first = buckets_to_sweep(None, NOW, most=1000)
    assert (first[0], first[-1]) == ("202612040300", "202612040909")  # six hours back: FIRST_SWEEP_BACK


def test_the_sweep_queues_a_buckets_releases_ten_a_request() -> None:
    class Index:
        def __init__(self) -> None:
            self.cursor = SweepCursor("202612040859")

        def sweep_cursor(self) -> SweepCursor:
            return self.cursor

        def indexed_releases(
            self, bucket: str, *, after: ReleaseRef | None = None, limit: int
        ) -> tuple[list[ReleaseRef], bool]:
            at = iso(NOW.replace(second=30) + timedelta(minutes=int(bucket[-2:])))
            return ([ReleaseRef(f"b{n}", at) for n in range(25)] if bucket == "202612040905" else []), False

        def advance_sweep_cursor(self, before: SweepCursor | None, to: SweepCursor) -> bool:
            self.cursor = to
            return True

    class Counting(MemoryReleases):
        calls = 0

        def send_releases(self, refs: Sequence[ReleaseRef], *, delay_seconds: int) -> None:
            self.calls += 1
            super().send_releases(refs, delay_seconds=delay_seconds)

    releases = Counting()
    summary = sweep(Index(), releases, now=NOW)  # type: ignore[arg-type]
    assert summary.releases == 25 and len(releases.sent) == 25
    assert releases.calls == 1  # one call for the bucket's one delay (the adapter sends 10 a request), not 25


class _TimedOut(Exception):
    pass


class _TimedReleases(MemoryReleases):
    """Each call takes a second of `clock`; one begun at `times_out_at` or later is cut off by Lambda's timeout."""

    def __init__(self, clock: list[datetime], times_out_at: datetime) -> None:
        super().__init__()
        self.clock, self.times_out_at = clock, times_out_at

    def send_releases(self, refs: Sequence[ReleaseRef], *, delay_seconds: int) -> None:
        if self.clock[0] >= self.times_out_at:
            raise _TimedOut("Task timed out after 30.00 seconds")
        self.clock[0] += timedelta(seconds=1)
        super().send_releases(refs, delay_seconds=delay_seconds)


def test_a_sweep_backlog_larger_than_one_run_is_caught_up_a_bucket_at_a_time() -> None:
    """Two hours of buckets behind (the sweep was down): a run cut off by its timeout keeps the buckets it finished
    (the cursor moves after each), and a run given `stop_at` begins no bucket past it, so the next run goes on where
    it stopped rather than re-doing the same first buckets until its timeout, every run."""
    schedule = MemoryScheduleStore(MemoryStore())
    start = NOW - timedelta(hours=2)
    schedule.cursor = SweepCursor(bucket_of(start))
    for minute in range(1, 121):
        at = start + timedelta(minutes=minute)
        for n in range(3):
            schedule.index_release(bucket_of(at), ReleaseRef(f"b{minute}-{n}", iso(at)), expires_at=0)
    clock = [NOW]
    cut_off = _TimedReleases(clock, times_out_at=NOW + timedelta(seconds=30))
    with pytest.raises(_TimedOut):  # no stop_at: the first run sweeps until Lambda cuts it off
        sweep(schedule, cut_off, now=NOW)
    assert schedule.cursor == SweepCursor(bucket_of(start + timedelta(minutes=30)))  # its 30 buckets kept
    queued = [ref for ref, _delay in cut_off.sent]
    for run in range(1, 10):
        began = clock[0] = NOW + timedelta(minutes=run)
        releases = _TimedReleases(clock, times_out_at=began + timedelta(seconds=30))
        done = sweep(schedule, releases, now=began, stop_at=began + timedelta(seconds=15), clock=lambda: clock[0])
        assert done.buckets == 15 or done.left == 0  # never cut off: it stopped beginning buckets at its stop_at
        queued += [ref for ref, _delay in releases.sent]
    every = [ref for refs in schedule.index.values() for ref in refs]
    assert sorted(queued, key=str) == sorted(every, key=str)  # each exactly once: no bucket re-done, none missed
    assert schedule.cursor is not None and schedule.cursor.bucket >= bucket_of(NOW)


class _SqsLike(MemoryReleases):
    """SendMessageBatch as the adapter makes it: 10 releases a call, 20 ms of `clock` a call; a call begun at
    `deadline` or later is cut off by Lambda's timeout."""

    def __init__(self, clock: list[datetime], deadline: datetime) -> None:
        super().__init__()
        self.clock, self.deadline = clock, deadline

    def send_releases(self, refs: Sequence[ReleaseRef], *, delay_seconds: int) -> None:
        for start in range(0, len(refs), 10):
            if self.clock[0] >= self.deadline:
                raise _TimedOut("Task timed out after 30.00 seconds")
            self.clock[0] += timedelta(milliseconds=20)
            super().send_releases(refs[start : start + 10], delay_seconds=delay_seconds)


def test_a_bucket_larger_than_one_run_can_queue_is_gone_through_over_several_runs_and_the_sweep_moves_on() -> None:
    """Every MKT request accepted during a zone's night is deferred to 08:00 there: one bucket. The cursor moved after
    whole buckets only, so a bucket of more releases than one run's 30 s could queue (about 15,000) was begun again
    by every run and never finished, nor any bucket after it: those recipients stayed SCHEDULED (found by a review).
    The cursor now moves after each page of the bucket."""
    schedule = MemoryScheduleStore(MemoryStore())
    due = datetime(2026, 12, 5, 0, 0, tzinfo=UTC)  # 08:00 in Singapore
    for n in range(20_000):
        schedule.index_release(bucket_of(due), ReleaseRef(f"r{n:05d}", iso(due)), expires_at=0)
    later = due + timedelta(minutes=1)
    schedule.index_release(bucket_of(later), ReleaseRef("next-minute", iso(later)), expires_at=0)
    schedule.cursor = SweepCursor(bucket_of(due - timedelta(minutes=11)))
    queued: list[ReleaseRef] = []
    clock = [due]
    for minute in range(5):  # sweeps a minute apart, as EventBridge runs them
        began = clock[0] = due - timedelta(minutes=10) + timedelta(minutes=minute)
        releases = _SqsLike(clock, deadline=began + timedelta(seconds=30))
        sweep(schedule, releases, now=began, stop_at=began + timedelta(seconds=15), clock=lambda: clock[0])
        queued += [ref for ref, _delay in releases.sent]
    assert len(set(queued)) == 20_001
    assert len(queued) == 20_001  # each page once: none re-done
    assert schedule.cursor is not None and schedule.cursor.within is None
    assert schedule.cursor.bucket >= bucket_of(later)


def test_a_run_cut_off_inside_a_bucket_leaves_the_cursor_at_its_last_whole_page() -> None:
    schedule = MemoryScheduleStore(MemoryStore())
    due = datetime(2026, 12, 5, 0, 0, tzinfo=UTC)
    refs = [ReleaseRef(f"r{n:04d}", iso(due)) for n in range(1_200)]
    for ref in refs:
        schedule.index_release(bucket_of(due), ref, expires_at=0)
    before = SweepCursor(bucket_of(due - timedelta(minutes=1)))
    schedule.cursor = before
    clock = [due]
    cut_off = _SqsLike(clock, deadline=due + timedelta(seconds=1.5))  # 75 calls: the second page's 25th
    with pytest.raises(_TimedOut):
        sweep(schedule, cut_off, now=due)
    assert schedule.cursor == SweepCursor(before.bucket, refs[PAGE - 1])
    clock[0] = due + timedelta(minutes=1)
    again = MemoryReleases()
    done = sweep(schedule, again, now=due + timedelta(minutes=1))
    assert [ref for ref, _ in again.sent] == refs[PAGE:]  # from the page that was cut off on
    assert (done.releases, schedule.cursor) == (len(refs) - PAGE, SweepCursor(bucket_of(due + timedelta(minutes=10))))


@given(
    accepted=st.integers(min_value=0, max_value=86_400 * 1000),
    ahead=st.integers(min_value=1, max_value=30 * 86_400 * 1000),
    swept_before=st.integers(min_value=0, max_value=3_600_000),
)
def test_an_indexed_release_is_never_in_a_bucket_an_earlier_sweep_read(
    accepted: int, ahead: int, swept_before: int
) -> None:
    """A send_at too far for a direct delay goes to a bucket no sweep started before the accept has read, and the
    sweep that reads it needs a delay SQS allows."""
    at = NOW + timedelta(milliseconds=accepted)
    send_at = at + timedelta(milliseconds=ahead)
    if goes_direct(send_at, at):
        assert (send_at - at).total_seconds() <= MAX_SQS_DELAY_SECONDS
        return
    earlier_sweep = at - timedelta(milliseconds=swept_before)
    read_by_it = bucket_of(earlier_sweep + LOOKAHEAD - timedelta(microseconds=1))
    assert bucket_of(send_at) > read_by_it
    first_reader = bucket_start(bucket_of(send_at)) - LOOKAHEAD + timedelta(microseconds=1)
    assert (send_at - first_reader).total_seconds() <= MAX_SQS_DELAY_SECONDS
    assert DIRECT_WINDOW > LOOKAHEAD


# ---------------------------------------------------------------- accept, release, cancel


def test_scheduled_recipients_are_held_not_queued(world) -> None:  # type: ignore[no-untyped-def]
    store, schedule, releases, queues = world
    send_at = NOW + timedelta(minutes=5)
    _accept(store, queues, [_spec(["+6591234567", "+85251234567"], send_at), _spec(["+447911123456"], None)])
    statuses = {r.to: r.status for r in store.messages.values()}
    assert statuses == {
        "+6591234567": Status.SCHEDULED,
        "+85251234567": Status.SCHEDULED,
        "+447911123456": Status.ACCEPTED,
    }
    assert {r.send_at for r in store.messages.values() if r.status is Status.SCHEDULED} == {iso(send_at)}
    queued = [r.id for packs in queues.sent.values() for p in packs for r in p.recipients]
    assert queued == ["b1.00002"]  # only the immediate one
    ref = ReleaseRef("b1", iso(send_at))
    assert releases.sent == [(ref, 300)]  # five minutes: straight onto the release queue, delayed
    assert all(p.pack_id.startswith("b1@20261204T090500000000:") for p in schedule.held_packs(ref))


def test_a_send_at_beyond_the_direct_window_goes_to_its_minute_bucket(world) -> None:  # type: ignore[no-untyped-def]
    store, schedule, releases, queues = world
    send_at = NOW + timedelta(days=2, seconds=30)
    _accept(store, queues, [_spec(["+6591234567"], send_at)])
    assert releases.sent == []
    ref = ReleaseRef("b1", iso(send_at))
    assert schedule.index == {"202612060900": {ref}}
    schedule.cursor = SweepCursor(bucket_of(send_at - timedelta(minutes=30)))  # as the sweeps since deploying left it
    # Sweeps until the bucket comes within the lookahead queue nothing; then one release, delayed to send_at.
    assert sweep(schedule, releases, now=send_at - timedelta(minutes=11)).releases == 0
    done = sweep(schedule, releases, now=send_at - timedelta(minutes=9, seconds=50))
    assert (done.releases, releases.sent) == (1, [(ref, 590)])
    assert sweep(schedule, releases, now=send_at - timedelta(minutes=9)).releases == 0  # read once


def test_the_release_claims_and_queues_the_held_packs(world) -> None:  # type: ignore[no-untyped-def]
    store, schedule, releases, queues = world
    send_at = NOW + timedelta(minutes=1)
    _accept(store, queues, [_spec(["+6591234567", "+6591234568"], send_at)])
    ref = ReleaseRef("b1", iso(send_at))
    early = release(ref, schedule, queues, releases, now=send_at - timedelta(seconds=2))
    assert early.requeued and releases.sent[-1] == (ref, 2) and not queues.sent
    done = release(ref, schedule, queues, releases, now=send_at)
    assert (done.packs, done.released) == (1, 2)
    assert {r.status for r in store.messages.values()} == {Status.QUEUED}
    (pack,) = [p for packs in queues.sent.values() for p in packs]
    # Released again (a repeated message, a retry after a crash): the same pack under the same id, which dispatch
    # skips; never a new pack.
    release(ref, schedule, queues, releases, now=send_at)
    again = [p for packs in queues.sent.values() for p in packs]
    assert [p.pack_id for p in again] == [pack.pack_id, pack.pack_id] and again[0] == again[1]


class _DiesAtTheSecondPack(MemoryQueues):
    """Provider queues a release dies at while queueing a group's second pack (`dead`)."""

    dead = True

    def send_packs(self, provider: ProviderName, packs: Sequence[DispatchPack], *, delay_seconds: int = 0) -> None:
        if self.dead and any(p.pack_id.endswith(":1") for p in packs):
            raise RuntimeError("the release died here")
        super().send_packs(provider, packs, delay_seconds=delay_seconds)


def test_a_repeated_release_never_resends_a_pack_a_dispatcher_has_handed_on(world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A release dies half way (its second pack not queued); the first pack is dead-lettered by its dispatcher (its
    recipients FAILED, told so); the release runs again (SQS, or a redrive of ReleaseDeadLetterQueue): it queues
    the pack it had not, and leaves the dead-lettered one alone (dispatch would take its DEAD claim as a redrive)."""
    store, schedule, releases, accepting = world
    monkeypatch.setitem(RECIPIENTS_PER_CALL, ProviderName.ALIYUN, 2)  # two packs: b1.00000-1, b1.00002
    send_at = NOW + timedelta(minutes=1)
    _accept(store, accepting, [_spec(["+6591234567", "+6591234568", "+6591234569"], send_at)])
    ref = ReleaseRef("b1", iso(send_at))

    queues = _DiesAtTheSecondPack()
    with pytest.raises(RuntimeError):
        release(ref, schedule, queues, releases, now=send_at)
    (first,) = queues.sent[ProviderName.ALIYUN]
    claims, webhooks = MemoryClaims(), MemoryWebhooks()
    down = ProviderError(ErrorCategory.RETRYABLE, "ServiceUnavailable", "", 503)
    failing = DispatchDeps(
        provider=ScriptedProvider(answer=lambda _m: down),
        store=store,
        claims=claims,
        queues=MemoryQueues(),
        receipts=store,
        webhooks=webhooks,
    )
    with pytest.raises(RetryPack):  # its last receive: recorded FAILED, on its way to the dead-letter queue
        dispatch_pack(first, failing, now=send_at, last_attempt=True)
    assert {store.messages[r.id].status for r in first.recipients} == {Status.FAILED}

    queues.dead, queues.sent = False, defaultdict(list)
    later = send_at + timedelta(minutes=5)
    done = release(ref, schedule, queues, releases, now=later)
    dispatch = _dispatch_deps(store, claims, webhooks)
    for pack in [p for packs in queues.sent.values() for p in packs]:
        dispatch_pack(pack, dispatch, now=later, last_attempt=False)
    assert [m.message_id for call in dispatch.provider.calls for m in call] == ["b1.00002"]  # type: ignore[attr-defined]
    assert {i: r.status for i, r in store.messages.items()} == {
        "b1.00000": Status.FAILED,
        "b1.00001": Status.FAILED,
        "b1.00002": Status.SUBMITTED,
    }
    assert (done.packs, done.released, done.handed_on) == (1, 1, 2)


def test_cancel_before_the_release_leaves_the_recipient_out(world) -> None:  # type: ignore[no-untyped-def]
    store, schedule, releases, queues = world
    send_at = NOW + timedelta(minutes=1)
    _accept(store, queues, [_spec(["+6591234567", "+6591234568"], send_at, client_ref=None)])
    webhooks = MemoryWebhooks()
    answer = cancel.cancel_message(_deps(store, schedule, webhooks), "b1.00000", now=NOW)
    assert answer is not None and (answer.canceled, answer.not_cancelable) == (["b1.00000"], [])
    assert store.messages["b1.00000"].status is Status.CANCELED
    assert store.messages["b1.00000"].events[-1]["status"] == "CANCELED"  # type: ignore[index]
    done = release(ReleaseRef("b1", iso(send_at)), schedule, queues, releases, now=send_at)
    (pack,) = [p for packs in queues.sent.values() for p in packs]
    assert ([r.id for r in pack.recipients], done.not_released) == (["b1.00001"], 1)
    # After the release, once a dispatcher holds its pack: not cancelable, with its status; the canceled one stays
    # canceled.
    claims = MemoryClaims()
    assert claims.claim(pack.pack_id, now=send_at, lease_seconds=120) is Claim.CLAIMED
    after = cancel.cancel_batch(_deps(store, schedule, webhooks, claims=claims), "b1", now=send_at)
    assert after is not None
    assert after.canceled == ["b1.00000"]
    assert [(n.id, n.status) for n in after.not_cancelable] == [("b1.00001", Status.QUEUED)]
    assert cancel.cancel_message(_deps(store, schedule, webhooks), "b9.00000", now=NOW) is None
    assert cancel.cancel_batch(_deps(store, schedule, webhooks), "b9", now=NOW) is None


def test_a_canceled_recipient_with_a_callback_gets_a_canceled_event(world) -> None:  # type: ignore[no-untyped-def]
    store, schedule, _releases, queues = world
    spec = _spec(["+6591234567"], NOW + timedelta(hours=1))
    spec.status_callback = "https://hooks.example.com/sms"
    _accept(store, queues, [spec])
    webhooks = MemoryWebhooks()
    cancel.cancel_batch(_deps(store, schedule, webhooks), "b1", now=NOW)
    assert [(d.event.id, d.event.type) for d in webhooks.sent] == [("b1.00000.canceled", "message.canceled")]
    # Again: told again under the same event id, which a receiver drops (an earlier cancel that stopped between its
    # moves and its events is announced this way).
    cancel.cancel_batch(_deps(store, schedule, webhooks), "b1", now=NOW)
    assert {d.event.id for d in webhooks.sent} == {"b1.00000.canceled"}


def test_a_canceled_recipient_gives_its_spend_back_once_and_only_its_owner_may_cancel(world) -> None:  # type: ignore[no-untyped-def]
    store, schedule, _releases, queues = world
    _accept(store, queues, [_spec(["+6591234567", "+6591234568"], NOW + timedelta(hours=1))])
    for message_id, record in list(store.messages.items()):
        store.messages[message_id] = record.model_copy(update={"cost": "0.05", "owner": "key-a"})
    spend = MemorySpendReleases()
    deps = _deps(store, schedule, MemoryWebhooks(), spend)
    assert cancel.cancel_message(deps, "b1.00000", now=NOW, owner="key-b") is None  # another key's: not found
    assert store.messages["b1.00000"].status is Status.SCHEDULED and spend.calls == 0
    answer = cancel.cancel_message(deps, "b1.00000", now=NOW, owner="key-a")
    assert answer is not None and answer.canceled == ["b1.00000"]
    assert spend.released == {"b1.00000"}
    assert spend.given_back[("2026-12", "key:key-a")] == Decimal("0.05")
    cancel.cancel_batch(deps, "b1", now=NOW, owner="key-a")  # the other one; the first is not given back twice
    assert spend.released == {"b1.00000", "b1.00001"}
    assert spend.given_back[("2026-12", "key:key-a")] == Decimal("0.10")


def _dispatch_deps(store: MemoryStore, claims: MemoryClaims, webhooks: MemoryWebhooks) -> DispatchDeps:
    provider = ScriptedProvider(ProviderName.ALIYUN)
    return DispatchDeps(
        provider=provider, store=store, claims=claims, queues=MemoryQueues(), receipts=store, webhooks=webhooks
    )


def test_a_queued_recipient_is_canceled_while_no_dispatcher_holds_its_pack(world) -> None:  # type: ignore[no-untyped-def]
    store, schedule, _releases, queues = world
    _accept(store, queues, [_spec(["+6591234567", "+6591234568"], None)])
    (pack,) = [p for packs in queues.sent.values() for p in packs]
    assert {r.accept_pack_id() for r in store.messages.values()} == {pack.pack_id}
    claims, webhooks = MemoryClaims(), MemoryWebhooks()
    deps = _deps(store, schedule, webhooks, claims=claims)
    # One recipient of a shared pack cannot be canceled alone (the pack is what a cancel takes): its batch can.
    alone = cancel.cancel_message(deps, "b1.00000", now=NOW)
    assert alone is not None and (alone.canceled, [n.id for n in alone.not_cancelable]) == ([], ["b1.00000"])
    answer = cancel.cancel_batch(deps, "b1", now=NOW)
    assert answer is not None and (answer.canceled, answer.not_cancelable) == (["b1.00000", "b1.00001"], [])
    assert {r.status for r in store.messages.values()} == {Status.CANCELED}
    # The dispatcher that receives the pack sends nothing.
    dispatch = _dispatch_deps(store, claims, webhooks)
    summary = dispatch_pack(pack, dispatch, now=NOW, last_attempt=False)
    assert dispatch.provider.calls == [] and summary.skipped == 2  # type: ignore[attr-defined]
    assert len(webhooks.sent) == 0  # no callback asked for; and nothing moved twice
    assert cancel.cancel_message(deps, "b1.00001", now=NOW) == cancel.CancelAnswer(
        canceled=["b1.00001"], not_cancelable=[]
    )


def test_a_single_recipient_request_is_canceled_by_its_message_id(world) -> None:  # type: ignore[no-untyped-def]
    store, schedule, _releases, queues = world
    _accept(store, queues, [_spec(["+6591234567"], None)])
    answer = cancel.cancel_message(_deps(store, schedule, MemoryWebhooks()), "b1.00000", now=NOW)
    assert answer is not None and answer.canceled == ["b1.00000"]
    assert store.messages["b1.00000"].status is Status.CANCELED


def test_a_pack_a_dispatcher_claimed_first_is_not_cancelable(world) -> None:  # type: ignore[no-untyped-def]
    store, schedule, _releases, queues = world
    _accept(store, queues, [_spec(["+6591234567"], None)])
    (pack,) = [p for packs in queues.sent.values() for p in packs]
    claims = MemoryClaims()
    assert claims.claim(pack.pack_id, now=NOW, lease_seconds=120) is Claim.CLAIMED  # being sent
    answer = cancel.cancel_batch(_deps(store, schedule, MemoryWebhooks(), claims=claims), "b1", now=NOW)
    assert answer is not None
    assert (answer.canceled, [(n.id, n.status) for n in answer.not_cancelable]) == ([], [("b1.00000", Status.QUEUED)])
    assert store.messages["b1.00000"].status is Status.ACCEPTED


def test_a_cancel_interrupted_after_taking_the_pack_is_finished_by_the_dispatcher(world) -> None:  # type: ignore[no-untyped-def]
    store, _schedule, _releases, queues = world
    spec = _spec(["+6591234567"], None)
    spec.status_callback = "https://hooks.example.com/sms"
    _accept(store, queues, [spec])
    (pack,) = [p for packs in queues.sent.values() for p in packs]
    claims, webhooks = MemoryClaims(), MemoryWebhooks()
    assert claims.cancel(pack.pack_id, now=NOW)  # and then the cancel request died
    dispatch_pack(pack, _dispatch_deps(store, claims, webhooks), now=NOW, last_attempt=False)
    assert store.messages["b1.00000"].status is Status.CANCELED
    assert [(d.event.id, d.event.type) for d in webhooks.sent] == [("b1.00000.canceled", "message.canceled")]


def test_a_cancel_racing_the_release_never_both_sends_and_cancels(world) -> None:  # type: ignore[no-untyped-def]
    store, schedule, releases, queues = world
    numbers = [f"+65912345{n:02d}" for n in range(60)]
    send_at = NOW + timedelta(minutes=1)
    _accept(store, queues, [_spec(numbers, send_at)])
    webhooks, claims = MemoryWebhooks(), MemoryClaims()
    answers: list[cancel.CancelAnswer] = []
    start = threading.Barrier(2)

    def cancel_all() -> None:
        start.wait()
        for n in range(len(numbers)):
            answer = cancel.cancel_message(_deps(store, schedule, webhooks, claims=claims), f"b1.{n:05d}", now=send_at)
            assert answer is not None
            answers.append(answer)

    def release_all() -> None:
        start.wait()
        release(ReleaseRef("b1", iso(send_at)), schedule, queues, releases, now=send_at)

    threads = [threading.Thread(target=cancel_all), threading.Thread(target=release_all)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then the dispatchers: whatever a cancel took (a recipient, or a released pack) is never sent.
    deps = _dispatch_deps(store, claims, webhooks)
    for pack in [p for packs in queues.sent.values() for p in packs]:
        dispatch_pack(pack, deps, now=send_at, last_attempt=False)
    sent = {m.message_id for call in deps.provider.calls for m in call}  # type: ignore[attr-defined]
    canceled = {i for a in answers for i in a.canceled}
    assert sent.isdisjoint(canceled)
    assert sent | canceled == {f"b1.{n:05d}" for n in range(len(numbers))}
    assert {r.id for r in store.messages.values() if r.status is Status.CANCELED} == canceled


@pytest.mark.parametrize("claimed_before_the_read", [["b1.00000"], []])
def test_a_batch_cancel_answers_truly_for_a_recipient_the_release_claims_under_it(  # type: ignore[no-untyped-def]
    world, claimed_before_the_read: list[str]
) -> None:
    """The cancel reads b1.00001 SCHEDULED; the release claims it (QUEUED) just before the cancel's move of it. Its
    answer must say what becomes of it: canceled, if the cancel takes its pack (for a packmate read QUEUED, or as the
    batch's own), never "not cancelable" for a recipient the dispatcher then finishes CANCELED."""
    store, schedule, releases, queues = world
    send_at = NOW + timedelta(minutes=1)
    _accept(store, queues, [_spec(["+6591234567", "+6591234568"], send_at)])
    ref = ReleaseRef("b1", iso(send_at))
    schedule.claim_for_release(claimed_before_the_read, now=send_at)  # the release half way (its claims in parallel)
    move = schedule.cancel_scheduled

    def the_release_claims_first(ids: Sequence[str], *, now: datetime) -> object:
        schedule.claim_for_release(["b1.00000", "b1.00001"], now=now)
        return move(ids, now=now)

    schedule.cancel_scheduled = the_release_claims_first  # type: ignore[method-assign,assignment]
    claims, webhooks = MemoryClaims(), MemoryWebhooks()
    answer = cancel.cancel_batch(_deps(store, schedule, webhooks, claims=claims), "b1", now=send_at)
    schedule.cancel_scheduled = move  # type: ignore[method-assign]
    release(ref, schedule, queues, releases, now=send_at)  # the release goes on
    deps = _dispatch_deps(store, claims, webhooks)
    for pack in [p for packs in queues.sent.values() for p in packs]:
        dispatch_pack(pack, deps, now=send_at, last_attempt=False)
    sent = {m.message_id for call in deps.provider.calls for m in call}  # type: ignore[attr-defined]
    ended_canceled = {i for i, r in store.messages.items() if r.status is Status.CANCELED}
    assert answer is not None
    assert set(answer.canceled) == ended_canceled and sent.isdisjoint(ended_canceled)
    assert {n.id for n in answer.not_cancelable} == sent
    assert (answer.canceled, answer.not_cancelable) == (["b1.00000", "b1.00001"], [])


def test_plan_batch_schedules_per_send_at_group() -> None:
    first, second = NOW + timedelta(hours=1), NOW + timedelta(hours=2)
    plan = plan_batch(
        [_spec(["+6591234567"], second), _spec(["+6591234568"], first), _spec(["+6591234569"], None)],
        batch_id="b2",
        now=NOW,
        retention_days=90,
        opt_outs=None,
    )
    assert [g.ref.send_at for g in plan.held] == [iso(first), iso(second)]
    assert [[r.id for p in g.packs for r in p.recipients] for g in plan.held] == [["b2.00001"], ["b2.00000"]]
    assert [r.id for packs in plan.packs.values() for p in packs for r in p.recipients] == ["b2.00002"]


def test_a_retry_across_the_start_of_quiet_hours_does_not_send_a_recipient_twice(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An accept queued its packs and died before finishing; SQS delivers the body again 40 s later, inside the
    recipient's quiet hours. Planned again at that time, the recipient queued at once would also be held for 08:00
    (another pack id: texted twice). The retry plans as of the first attempt."""

    class DiesOnce(MemoryStore):
        died = False

        def finish_batch(self, batch) -> None:  # type: ignore[no-untyped-def]
            if not self.died:
                self.died = True
                raise RuntimeError("Lambda timed out after queueing its packs")
            super().finish_batch(batch)

    store, queues = DiesOnce(), MemoryQueues()
    schedule, releases = MemoryScheduleStore(store), MemoryReleases()
    monkeypatch.setitem(
        hooks.installed, hooks.SCHEDULE_DEPS, lambda: hold.ScheduleDeps(store=schedule, releases=releases)
    )
    spec = MessageSpec.model_validate({"to": ["+6591234567"], "text": "Sale tonight", "type": "MKT"})
    before = datetime(2026, 12, 3, 12, 59, 50, tzinfo=UTC)  # 20:59:50 in Singapore: not quiet yet
    with pytest.raises(RuntimeError):
        accept([spec], batch_id="b1", source="sqs", now=before, retention_days=90, store=store, queues=queues)
    assert [r.id for packs in queues.sent.values() for p in packs for r in p.recipients] == ["b1.00000"]
    later = before + timedelta(seconds=40)  # 21:00:30: quiet
    accept([spec], batch_id="b1", source="sqs", now=later, retention_days=90, store=store, queues=queues)
    assert store.batches["b1"].state == "QUEUED" and not schedule.held
    queues.sent.clear()
    for ref in list(schedule.held):
        release(ref, schedule, queues, releases, now=datetime(2026, 12, 4, 0, 0, 1, tzinfo=UTC))
    assert not queues.sent


def test_a_batch_still_being_accepted_is_not_canceled_nor_any_of_its_messages(world) -> None:  # type: ignore[no-untyped-def]
    """A cancel while the accept writes its records would miss those not written yet (sent after the cancel
    answered), and a pack it took could hold recipients written after it looked: refused until all are written."""
    store, schedule, _releases, queues = world
    _accept(store, queues, [_spec(["+6591234567", "+6591234568"], None)])
    store.batches["b1"] = store.batches["b1"].model_copy(update={"state": "ACCEPTING"})
    last = store.messages.pop("b1.00001")  # as while its records are written: the second not yet
    claims = MemoryClaims()
    deps = _deps(store, schedule, MemoryWebhooks(), claims=claims)
    with pytest.raises(cancel.BatchStillAccepting, match="b1 is still being accepted"):
        cancel.cancel_batch(deps, "b1", now=NOW)
    with pytest.raises(cancel.BatchStillAccepting):
        cancel.cancel_message(deps, "b1.00000", now=NOW)
    assert claims.state == {} and store.messages["b1.00000"].status is Status.ACCEPTED
    # Every record written, the header still ACCEPTING (an accept stopped while queueing, never retried): its packs
    # may be on their queues, and a cancel now misses nobody.
    store.messages["b1.00001"] = last
    answer = cancel.cancel_batch(deps, "b1", now=NOW)
    assert answer is not None and answer.canceled == ["b1.00000", "b1.00001"]
    assert {r.status for r in store.messages.values()} == {Status.CANCELED}


def test_two_send_ats_within_one_millisecond_get_distinct_pack_ids(world) -> None:  # type: ignore[no-untyped-def]
    store, schedule, releases, queues = world
    a = NOW + timedelta(minutes=5, microseconds=123_100)
    b = NOW + timedelta(minutes=5, microseconds=123_900)  # same millisecond, another microsecond
    _accept(store, queues, [_spec(["+6591234567"], a), _spec(["+6591234568"], b)])
    ids = [p.pack_id for ref in schedule.held for p in schedule.held_packs(ref)]
    assert len(set(ids)) == 2  # a pack id is sent once: the same id for both groups left the second QUEUED
    claims, webhooks = MemoryClaims(), MemoryWebhooks()
    deps = _dispatch_deps(store, claims, webhooks)
    for at in (a, b):
        release(ReleaseRef("b1", iso(at)), schedule, queues, releases, now=at)
    for pack in [p for packs in queues.sent.values() for p in packs]:
        dispatch_pack(pack, deps, now=b, last_attempt=False)
    sent = {m.message_id for call in deps.provider.calls for m in call}  # type: ignore[attr-defined]
    assert sent == {"b1.00000", "b1.00001"}


def test_canceling_one_released_recipient_does_not_cancel_its_still_scheduled_packmate(world) -> None:  # type: ignore[no-untyped-def]
    from globesms.scheduling import cancel
    from tests.unit.test_scheduling import _deps

    store, schedule, releases, queues = world
    send_at = NOW + timedelta(minutes=1)
    _accept(store, queues, [_spec(["+6591234567", "+6591234568"], send_at)])
    # A release claimed the first recipient and stopped there (a crash; SQS brings it back later).
    schedule.claim_for_release(["b1.00000"], now=send_at)
    claims, webhooks = MemoryClaims(), MemoryWebhooks()
    answer = cancel.cancel_message(_deps(store, schedule, webhooks, claims=claims), "b1.00000", now=send_at)
    assert answer is not None and answer.canceled == []  # its pack goes out with b1.00001: the batch can be canceled
    # The release runs again; then the dispatcher.
    release(ReleaseRef("b1", iso(send_at)), schedule, queues, releases, now=send_at)
    deps = _dispatch_deps(store, claims, webhooks)
    for pack in [p for packs in queues.sent.values() for p in packs]:
        dispatch_pack(pack, deps, now=send_at, last_attempt=False)
    assert store.messages["b1.00001"].status is not Status.CANCELED  # nobody asked to cancel it


def test_a_scheduled_mkt_landing_in_quiet_hours_is_judged_by_validity_from_its_send_at() -> None:
    now = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    send_at = datetime(2026, 12, 4, 13, 30, tzinfo=UTC)  # 21:30 in Singapore, three days ahead
    spec = _spec(["+6591234567"], send_at, type="MKT").model_copy(update={"validity_seconds": 86_400})
    plan = plan_batch([spec], batch_id="q1", now=now, retention_days=90, opt_outs=None)
    # 08:00 the next morning is 10.5 h after send_at, well within a day's validity counted from send_at
    assert plan.errors == [], plan.errors
    assert [r.send_at for r in plan.records] == ["2026-12-05T00:00:00.000000Z"]


@pytest.mark.parametrize(("days_ahead", "refused"), [(5, False), (6, True), (20, True)])
def test_a_send_at_beyond_what_the_deployment_keeps_is_refused(world, days_ahead: int, refused: bool) -> None:  # type: ignore[no-untyped-def]
    # With RetentionDays 7 the table's TTL would delete a send scheduled 20 days ahead (its record, held packs and
    # index entry) before its send_at: answered SCHEDULED, then never sent and no status left.
    from globesms.accept.service import SendAtPassed

    store, _schedule, _releases, queues = world
    body = [_spec(["+6591234567"], NOW + timedelta(days=days_ahead))]
    if not refused:
        accept(body, batch_id="b1", source="api", now=NOW, retention_days=7, store=store, queues=queues)
        return
    with pytest.raises(SendAtPassed, match="at most 5 days ahead here: messages are kept 7 days") as failed:
        accept(body, batch_id="b1", source="api", now=NOW, retention_days=7, store=store, queues=queues)
    assert failed.value.field == "send_at" and store.messages == {}
