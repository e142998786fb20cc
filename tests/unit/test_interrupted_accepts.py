"""An accept that stopped half way and that no retry can resume any more ends INTERRUPTED (reconcile/interrupted.py):
its recipients no provider was asked to send CANCELED, once its retry window (accept/resume.py `settle_after`) is
over, never before; a pack a dispatcher holds is left to it; a retry afterwards sends nobody."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from globesms import hooks
from globesms.accept import resume
from globesms.accept.idempotency_outcomes import WINDOW_SECONDS, BatchDoneBefore
from globesms.accept.queries import get_batch
from globesms.accept.service import accept
from globesms.domain.status import Status
from globesms.guardrails.ports import Reservation
from globesms.guardrails.release import UNWRITTEN_SEQ
from globesms.models.api import MessageSpec
from globesms.models.limits import MAX_RECIPIENTS_PER_REQUEST
from globesms.models.outbound import ProviderName
from globesms.models.records import MessageRecord, message_id
from globesms.reconcile.interrupted import RUN_LEASE, InterruptedSummary, settle_batch, settle_interrupted
from globesms.routing.route_table import parse_route_table
from globesms.scheduling import hold
from globesms.scheduling.cancel import CancelDeps
from tests.fakes import (
    MemoryClaims,
    MemoryQueues,
    MemoryReleases,
    MemoryScheduleStore,
    MemorySpendReleases,
    MemoryStore,
    MemoryWebhooks,
)
from tests.samples import REGISTRY

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
DEADLINE = NOW + timedelta(seconds=30)
HK = [f"+8525123{i:04d}" for i in range(120)]  # Alibaba (template): 1,000 a pack -> one pack
SG = [f"+659123{i:04d}" for i in range(3)]
CALLBACK = "https://hooks.example.com/sms"
ROOT = Path(__file__).resolve().parents[2]
LOGIN = {"id": "login", "params": {"minutes": 5, "code": "123456"}}
ROUTES = parse_route_table(
    {
        "version": 1,
        "default": {"text": [{"provider": "aliyun"}], "template": [{"provider": "tencent"}]},
        "countries": {"HK": {"template": [{"provider": "aliyun"}]}},
    },
    "test",
)


class World:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.store = MemoryStore()
        self.schedule = MemoryScheduleStore(self.store)
        self.queues = MemoryQueues()
        self.claims = MemoryClaims()
        self.webhooks = MemoryWebhooks()
        self.spend = MemorySpendReleases()
        releases = MemoryReleases()
        monkeypatch.setattr("globesms.accept.planning.current_table", lambda: ROUTES)
        monkeypatch.setattr("globesms.accept.planning.template_registry", lambda: REGISTRY)
        monkeypatch.setitem(
            hooks.installed, hooks.SCHEDULE_DEPS, lambda: hold.ScheduleDeps(store=self.schedule, releases=releases)
        )

    @property
    def deps(self) -> CancelDeps:
        return CancelDeps(
            store=self.store, schedule=self.schedule, claims=self.claims, webhooks=self.webhooks, spend=self.spend
        )

    def accept(self, *, source: str = "api", keyless: bool = True, batch_id: str = "b1") -> None:
        accept(
            specs(),
            batch_id=batch_id,
            source=source,
            now=NOW,
            retention_days=90,
            store=self.store,
            queues=self.queues,
            new_batch_id=keyless,
            accepting_until=DEADLINE,
        )

    def records(self, batch_id: str = "b1") -> list[MessageRecord]:
        return sorted((r for r in self.store.messages.values() if r.batch_id == batch_id), key=lambda r: r.id)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    return World(monkeypatch)


def specs() -> list[MessageSpec]:
    return [
        MessageSpec.model_validate({"to": HK, "template": LOGIN, "status_callback": CALLBACK}),
        MessageSpec.model_validate({"to": SG, "template": LOGIN}),
    ]


def stopped_while_queueing(world: World, **accept_args: object) -> None:
    """Every record written, Alibaba's pack queued, then Tencent's queue fails: the accept stops ACCEPTING."""
    world.queues.fail_for.add(ProviderName.TENCENT)
    with pytest.raises(RuntimeError):
        world.accept(**accept_args)  # type: ignore[arg-type]
    world.queues.fail_for.clear()


def statuses(records: Sequence[MessageRecord]) -> set[Status]:
    return {r.status for r in records}


def test_a_keyless_accept_that_stopped_ends_interrupted_once_its_lease_is_over(world: World) -> None:
    stopped_while_queueing(world)
    header = world.store.batches["b1"]
    assert header.state == "ACCEPTING" and header.settle_after is not None
    # A keyless request has no retry: settled a minute after its lease (the deadline and its 5 s margin), not before.
    assert header.settle_after == int((DEADLINE + timedelta(seconds=5 + 60)).timestamp())
    before = settle_interrupted(world.deps, now=datetime.fromtimestamp(header.settle_after - 1, UTC))
    assert before == InterruptedSummary() and world.store.batches["b1"].state == "ACCEPTING"

    done = settle_interrupted(world.deps, now=datetime.fromtimestamp(header.settle_after, UTC))

    records = world.records()
    assert done == InterruptedSummary(batches=1, canceled=len(HK) + len(SG))
    assert statuses(records) == {Status.CANCELED}
    ended = world.store.batches["b1"]
    assert ended.state == "INTERRUPTED" and ended.accepted == len(records) and ended.settle_after is None
    assert world.store.open_accepts(due_by=2**40) == []
    # The queued Alibaba pack was taken before any dispatcher: a dispatcher receiving it finds it canceled.
    assert {world.claims.state[r.accept_pack_id()] for r in records if r.accept_pack_id()} == {"CANCELED"}
    assert len(world.webhooks.sent) == len(HK)  # the recipients with a status_callback are told
    assert {d.event.type for d in world.webhooks.sent} == {"message.canceled"}
    costed = {r.id for r in records if r.cost and float(r.cost) > 0}
    assert costed and world.spend.released == costed  # never charged: their reservations given back


def test_a_pack_a_dispatcher_holds_is_left_to_it(world: World) -> None:
    stopped_while_queueing(world)
    alibaba = next(r.accept_pack_id() for r in world.records() if r.provider is ProviderName.ALIYUN)
    assert alibaba is not None
    world.claims.claim(alibaba, now=NOW, lease_seconds=60)  # a dispatcher took the queued pack

    header = world.store.batches["b1"]
    done = settle_interrupted(world.deps, now=datetime.fromtimestamp(header.settle_after or 0, UTC))

    assert done == InterruptedSummary(batches=1, canceled=len(SG))
    by_provider = {p: statuses([r for r in world.records() if r.provider is p]) for p in ProviderName}
    assert by_provider[ProviderName.ALIYUN] == {Status.ACCEPTED}  # the dispatcher moves them on
    assert by_provider[ProviderName.TENCENT] == {Status.CANCELED}
    view = get_batch(world.store, "b1", limit=1_000, after=None)  # on their way: shown QUEUED, as a cancel shows them
    assert view is not None and view.state == "INTERRUPTED"
    assert {m.status for m in view.messages if m.provider is ProviderName.ALIYUN} == {Status.QUEUED}


def test_an_accept_that_stopped_while_writing_its_records_ends_with_those_it_wrote(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = world.store.put_messages

    def half_then_fail(messages: Sequence[MessageRecord], deadlines: Sequence[object] = ()) -> None:
        written(messages[:50])
        raise RuntimeError("throttled past its retries")

    monkeypatch.setattr(world.store, "put_messages", half_then_fail)
    with pytest.raises(RuntimeError):
        world.accept()
    assert world.queues.sent == {} or not any(world.queues.sent.values())  # nothing queued before every record
    header = world.store.batches["b1"]

    settle_interrupted(world.deps, now=datetime.fromtimestamp(header.settle_after or 0, UTC))

    ended = world.store.batches["b1"]
    assert ended.state == "INTERRUPTED" and ended.accepted == 50
    assert len(world.records()) == 50 and statuses(world.records()) == {Status.CANCELED}


@pytest.mark.parametrize(
    ("source", "keyless", "window"),
    [
        ("api", False, timedelta(seconds=WINDOW_SECONDS)),  # an Idempotency-Key's retry may resume it for 24 h
        ("sqs", False, resume.INTAKE_RETRY_WINDOW),  # make redrive may send the body again for 14 days
    ],
)
def test_a_batch_a_retry_can_still_resume_is_left_until_its_window_is_over(
    world: World, source: str, keyless: bool, window: timedelta
) -> None:
    stopped_while_queueing(world, source=source, keyless=keyless)
    header = world.store.batches["b1"]
    lease_end = DEADLINE + timedelta(seconds=5)
    assert header.settle_after == int((lease_end + window + resume.SETTLE_MARGIN).timestamp())

    assert settle_interrupted(world.deps, now=lease_end + window).batches == 0
    assert settle_interrupted(world.deps, now=lease_end + window + resume.SETTLE_MARGIN).batches == 1


def test_a_retry_after_the_batch_ended_sends_nobody(world: World) -> None:
    stopped_while_queueing(world, keyless=False)
    header = world.store.batches["b1"]
    settle_interrupted(world.deps, now=datetime.fromtimestamp(header.settle_after or 0, UTC))
    queued_before = sum(len(p) for p in world.queues.sent.values())

    with pytest.raises(BatchDoneBefore) as replay:
        world.accept(keyless=False)

    assert sum(len(p) for p in world.queues.sent.values()) == queued_before
    answer = replay.value.answer
    assert {m.status for m in answer.messages} == {Status.CANCELED}


def test_a_resume_that_took_the_header_first_wins(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    stopped_while_queueing(world)
    header = world.store.batches["b1"]
    monkeypatch.setattr(world.store, "take_over_batch", lambda batch, previous: False)
    summary = InterruptedSummary()

    settle_batch(world.deps, "b1", now=datetime.fromtimestamp(header.settle_after or 0, UTC), summary=summary)

    assert summary == InterruptedSummary() and statuses(world.records()) == {Status.ACCEPTED}


class Killed(BaseException):
    """The Lambda runtime stopping the run at its timeout: nothing after it in the run happens."""


def test_a_run_stopped_after_its_moves_is_finished_by_the_next_events_and_spend_included(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped_while_queueing(world)
    at = datetime.fromtimestamp(world.store.batches["b1"].settle_after or 0, UTC)

    def stopped(*args: object, **kwargs: object) -> None:
        raise Killed  # between the records' moves to CANCELED and their events and spend

    with monkeypatch.context() as patched:
        patched.setattr("globesms.scheduling.cancel.settle_canceled", stopped)
        with pytest.raises(Killed):
            settle_interrupted(world.deps, now=at)
    assert world.store.batches["b1"].state == "INTERRUPTED" and world.webhooks.sent == []
    assert world.store.open_accepts(due_by=int(at.timestamp())) == ["b1"]  # still indexed: not ended whole

    assert settle_interrupted(world.deps, now=at + timedelta(minutes=1)).batches == 0  # its lease is not over yet
    done = settle_interrupted(world.deps, now=at + RUN_LEASE)  # the first run after it

    assert done.batches == 1 and world.store.open_accepts(due_by=2**40) == []
    assert statuses(world.records()) == {Status.CANCELED}
    assert len(world.webhooks.sent) == len(HK)
    assert world.spend.released == {r.id for r in world.records() if r.cost and float(r.cost) > 0}


def test_a_retry_during_a_stopped_run_sends_nobody(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    stopped_while_queueing(world, keyless=False)
    at = datetime.fromtimestamp(world.store.batches["b1"].settle_after or 0, UTC)
    cancel = world.claims.cancel
    calls: list[str] = []

    def stopped_at_the_second(pack_id: str, *, now: datetime) -> bool:
        calls.append(pack_id)
        if len(calls) == 2:
            raise Killed
        return cancel(pack_id, now=now)

    with monkeypatch.context() as patched:
        patched.setattr(world.claims, "cancel", stopped_at_the_second)
        with pytest.raises(Killed):
            settle_interrupted(world.deps, now=at)
    queued = sum(len(p) for p in world.queues.sent.values())

    with pytest.raises(BatchDoneBefore):  # the header said INTERRUPTED before the first cancel
        world.accept(keyless=False)

    assert sum(len(p) for p in world.queues.sent.values()) == queued
    settle_interrupted(world.deps, now=at + RUN_LEASE)
    assert statuses(world.records()) == {Status.CANCELED}


def test_a_run_that_begins_while_another_goes_on_leaves_the_batch_to_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs start every minute and may overlap (a 120 s timeout): the second must not finish the batch while the
    first still moves records it will then never tell anyone about."""
    stopped_while_queueing(world)
    at = datetime.fromtimestamp(world.store.batches["b1"].settle_after or 0, UTC)
    second: list[InterruptedSummary] = []
    cancel = world.claims.cancel

    def meanwhile_another_run(pack_id: str, *, now: datetime) -> bool:
        if not second:
            second.append(settle_interrupted(world.deps, now=at + timedelta(seconds=30)))
        return cancel(pack_id, now=now)

    monkeypatch.setattr(world.claims, "cancel", meanwhile_another_run)
    first = settle_interrupted(world.deps, now=at)

    assert second == [InterruptedSummary()]  # the first run's lease: left alone
    assert first.batches == 1 and statuses(world.records()) == {Status.CANCELED}
    assert len(world.webhooks.sent) == len(HK)


def test_the_run_lease_outlasts_the_reconcile_functions_timeout() -> None:
    template = load_template()
    timeout = template["Resources"]["ReconcileFunction"]["Properties"]["Timeout"]
    assert timedelta(seconds=int(timeout)) < RUN_LEASE


def test_a_run_out_of_time_leaves_the_batch_to_the_next(world: World) -> None:
    stopped_while_queueing(world)
    at = datetime.fromtimestamp(world.store.batches["b1"].settle_after or 0, UTC)
    ticks = iter([at, at + timedelta(seconds=90)])  # the check before the batch, then before its first page

    done = settle_interrupted(world.deps, now=at, clock=lambda: next(ticks), stop_at=at + timedelta(seconds=60))

    assert done == InterruptedSummary(left_for_next_run=1)
    assert world.store.batches["b1"].state == "INTERRUPTED" and statuses(world.records()) == {Status.ACCEPTED}
    assert settle_interrupted(world.deps, now=at + timedelta(minutes=1)).batches == 1
    assert statuses(world.records()) == {Status.CANCELED}


def test_a_batch_under_a_running_attempts_lease_is_left(world: World) -> None:
    stopped_while_queueing(world)
    header = world.store.batches["b1"]
    late = datetime.fromtimestamp(header.settle_after or 0, UTC)
    # A resume took the header over with a lease of its own (its settle_after not yet rewritten, as if read old).
    world.store.batches["b1"] = header.model_copy(update={"accepting_until": int(late.timestamp()) + 60})

    assert settle_interrupted(world.deps, now=late).batches == 0


def test_a_finished_accept_leaves_nothing_to_settle(world: World) -> None:
    world.accept()
    assert world.store.batches["b1"].state == "QUEUED" and world.store.batches["b1"].settle_after is None
    assert world.store.open_accepts(due_by=2**40) == []


def load_template() -> dict[str, Any]:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # intrinsic functions: not read here
    loaded: dict[str, Any] = yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)  # noqa: S506
    return loaded


def test_the_intake_retry_window_is_the_dead_letter_queues_retention() -> None:
    template = load_template()
    retention = template["Resources"]["IntakeDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"]
    assert timedelta(seconds=int(retention)) == resume.INTAKE_RETRY_WINDOW


def test_a_header_listed_before_its_time_is_left(world: World) -> None:
    """The index may list a header whose settle_after moved later since (a resume wrote it): the header decides."""
    stopped_while_queueing(world, keyless=False)
    header = world.store.batches["b1"]
    summary = InterruptedSummary()

    settle_batch(world.deps, "b1", now=datetime.fromtimestamp((header.settle_after or 0) - 1, UTC), summary=summary)

    assert summary == InterruptedSummary() and world.store.batches["b1"].state == "ACCEPTING"


def test_the_spend_reserved_for_recipients_never_written_is_given_back_once(world: World) -> None:
    stopped_while_queueing(world)
    records = world.records()
    never_written = records[-5:]  # as if the attempt stopped before writing them
    for record in never_written:
        del world.store.messages[record.id]
    costs = [Decimal(r.cost or 0) for r in records]
    unwritten_cost = sum(costs[-5:], Decimal(0))
    assert unwritten_cost > 0
    world.spend.reservations["b1"] = Reservation(month="2026-11", count=len(records), amount=sum(costs, Decimal(0)))
    header = world.store.batches["b1"]
    due = datetime.fromtimestamp(header.settle_after or 0, UTC)

    settle_interrupted(world.deps, now=due)

    unwritten_marker = message_id("b1", UNWRITTEN_SEQ)
    written_ids = {r.id for r in records[:-5] if r.cost and Decimal(r.cost) > 0}
    assert world.spend.released == written_ids | {unwritten_marker}  # the canceled ones, and the rest unwritten
    given_back = sum((Decimal(r.cost or 0) for r in records[:-5]), Decimal(0)) + unwritten_cost
    assert world.spend.given_back == {("2026-11", "all"): given_back}  # the whole reservation, nothing twice
    # A run that goes on with the batch (a stopped one's) gives nothing back again.
    world.store.batches["b1"] = header.model_copy(update={"state": "INTERRUPTED"})
    settle_batch(world.deps, "b1", now=due, summary=InterruptedSummary())
    assert world.spend.given_back == {("2026-11", "all"): given_back}


def test_a_batch_whose_records_hold_its_whole_reservation_gives_back_no_rest(world: World) -> None:
    stopped_while_queueing(world)
    records = world.records()
    total = sum((Decimal(r.cost or 0) for r in records), Decimal(0))
    world.spend.reservations["b1"] = Reservation(month="2026-11", count=len(records), amount=total)
    settle_interrupted(world.deps, now=datetime.fromtimestamp(world.store.batches["b1"].settle_after or 0, UTC))
    assert message_id("b1", UNWRITTEN_SEQ) not in world.spend.released


def test_a_batch_whose_items_have_expired_gives_nothing_back(world: World) -> None:
    """RetentionDays shorter than the retry window: the table's TTL may have deleted records that were sent, whose
    cost would otherwise count as never written."""
    stopped_while_queueing(world)
    records = world.records()
    world.spend.reservations["b1"] = Reservation(month="2026-11", count=len(records) + 5, amount=Decimal(100))
    header = world.store.batches["b1"]
    due = datetime.fromtimestamp(header.settle_after or 0, UTC)
    world.store.batches["b1"] = header.model_copy(update={"expires_at": int(due.timestamp())})
    settle_interrupted(world.deps, now=due)
    assert message_id("b1", UNWRITTEN_SEQ) not in world.spend.released


def test_the_unwritten_marker_is_no_recipients_id() -> None:
    assert UNWRITTEN_SEQ >= MAX_RECIPIENTS_PER_REQUEST  # recipients are numbered 0 .. MAX_RECIPIENTS_PER_REQUEST - 1


def test_an_interrupted_batch_says_how_many_of_the_records_it_wrote_are_scheduled(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = world.store.put_messages

    def some_then_fail(messages: Sequence[MessageRecord], deadlines: Sequence[object] = ()) -> None:
        written(messages[: len(HK) + 1])  # every HK recipient and one of the scheduled
        raise RuntimeError("throttled past its retries")

    monkeypatch.setattr(world.store, "put_messages", some_then_fail)
    send_at = NOW + timedelta(hours=2)  # set past validation, which checks send_at against the real clock
    body = [specs()[0], specs()[1].model_copy(update={"send_at": send_at})]
    with pytest.raises(RuntimeError):
        accept(body, batch_id="b1", source="api", now=NOW, retention_days=90, store=world.store, queues=world.queues)
    assert world.store.batches["b1"].scheduled == len(SG)  # as planned

    settle_interrupted(world.deps, now=datetime.fromtimestamp(world.store.batches["b1"].settle_after or 0, UTC))

    ended = world.store.batches["b1"]
    assert (ended.state, ended.accepted, ended.scheduled) == ("INTERRUPTED", len(HK) + 1, 1)
