"""An accept that stopped half way is resumed by the next attempt of the same body (accept/resume.py): whatever
changed between the attempts (here the route table), every recipient ends up in exactly one pack id, each pack id
always holds the same recipients, and every record names the pack it is in."""

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from globesms import hooks
from globesms.accept import resume
from globesms.accept.idempotency_outcomes import BatchDoneBefore, KeyInProgress
from globesms.accept.intake import IntakeDeferred, accept_intake
from globesms.accept.service import LEASE_MARGIN, accept
from globesms.consent import screen as consent_screen
from globesms.counts.tally import batch_counts
from globesms.dispatch.records import outcome_records
from globesms.domain.status import Status
from globesms.models.api import MessageSpec
from globesms.models.errors import RecipientError
from globesms.models.outbound import ProviderName, SendOutcome
from globesms.models.packs import DispatchPack
from globesms.models.records import BatchRecord, MessageRecord
from globesms.models.views import AcceptResponse
from globesms.routing.route_table import RouteTable, parse_route_table
from globesms.routing.templates import parse_registry
from globesms.scheduling import hold
from tests.fakes import MemoryQueues, MemoryReleases, MemoryScheduleStore, MemoryStore
from tests.samples import REGISTRY

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
HK = [f"+8525123{i:04d}" for i in range(120)]  # Alibaba OTP: 50 a pack
SG = [f"+659123{i:04d}" for i in range(5)]
LOGIN = {"id": "login", "params": {"minutes": 5, "code": "123456"}}


def table(hk: str, sg: str) -> RouteTable:
    return parse_route_table(
        {
            "version": 1,
            "default": {"text": [{"provider": "aliyun"}], "template": [{"provider": "tencent"}]},
            "countries": {"HK": {"template": [{"provider": hk}]}, "SG": {"template": [{"provider": sg}]}},
        },
        "test",
    )


FIRST = table(hk="aliyun", sg="tencent")
CHANGED = table(hk="huawei", sg="aliyun")  # every recipient routed elsewhere by the time of the resume


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("globesms.accept.planning.template_registry", lambda: REGISTRY)


@pytest.fixture
def schedule(monkeypatch: pytest.MonkeyPatch) -> tuple[MemoryScheduleStore, MemoryReleases]:
    """Where accept holds scheduled recipients' packs and sends their releases."""
    held, releases = MemoryScheduleStore(MemoryStore()), MemoryReleases()
    monkeypatch.setitem(hooks.installed, hooks.SCHEDULE_DEPS, lambda: hold.ScheduleDeps(store=held, releases=releases))
    return held, releases


def specs(send_at: datetime | None = None) -> list[MessageSpec]:
    otp = MessageSpec.model_validate({"to": HK, "template": LOGIN, "type": "OTP"})
    if send_at is None:
        return [otp, MessageSpec.model_validate({"to": SG, "template": LOGIN})]
    # Built without validation: send_at's bounds are checked against the real clock.
    later = MessageSpec.model_validate({"to": SG, "template": LOGIN}).model_copy(update={"send_at": send_at})
    return [otp, later]


def run(
    store: MemoryStore,
    queues: MemoryQueues,
    routes: RouteTable,
    monkeypatch: pytest.MonkeyPatch,
    *,
    body: list[MessageSpec] | None = None,
    now: datetime = NOW,
    until: datetime | None = None,
) -> AcceptResponse:
    monkeypatch.setattr("globesms.accept.planning.current_table", lambda: routes)
    return accept(
        body or specs(),
        batch_id="B1",
        source="sqs",
        now=now,
        retention_days=90,
        store=store,
        queues=queues,
        accepting_until=until,
    )


def sent_once_each(packs: Sequence[DispatchPack], records: dict[str, MessageRecord]) -> None:
    """Every pack id always carries the same recipients; every record is in exactly one pack id, the one it names."""
    by_id: dict[str, set[str]] = {}
    for pack in packs:
        recipients = {r.id for r in pack.recipients}
        assert by_id.setdefault(pack.pack_id, recipients) == recipients, f"{pack.pack_id} changed its recipients"
    packs_of: dict[str, list[str]] = defaultdict(list)
    for pack_id, recipients in by_id.items():
        for recipient in recipients:
            packs_of[recipient].append(pack_id)
    assert set(packs_of) == set(records)
    for record_id, pack_ids in packs_of.items():
        assert pack_ids == [records[record_id].accept_pack_id()], record_id


def all_sent(queues: MemoryQueues) -> list[DispatchPack]:
    return [pack for packs in queues.sent.values() for pack in packs]


def test_a_resume_after_every_record_was_written_sends_the_first_packs_whatever_changed(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, queues = MemoryStore(), MemoryQueues()
    queues.fail_for.add(ProviderName.TENCENT)  # Alibaba's three packs go, then the queue fails
    with pytest.raises(RuntimeError):
        run(store, queues, FIRST, monkeypatch)
    first_packs = all_sent(queues)
    assert len(first_packs) == 3 and store.batches["B1"].state == "ACCEPTING"
    puts = store.put_calls

    queues.fail_for.clear()
    answer = run(store, queues, CHANGED, monkeypatch)

    assert store.put_calls == puts  # nothing planned or written again
    assert store.batches["B1"].state == "QUEUED" and answer.accepted == 125
    assert all_sent(queues)[:3] == first_packs
    resent = all_sent(queues)[3:]
    assert [p.pack_id for p in resent] == ["B1:aliyun:0", "B1:aliyun:1", "B1:aliyun:2", "B1:tencent:0"]
    assert resent[:3] == first_packs  # the same packs, which dispatch's claims skip
    sent_once_each(all_sent(queues), store.messages)
    assert {r.provider for r in store.messages.values() if r.to in SG} == {ProviderName.TENCENT}


class Stopped(BaseException):
    """The runtime stopping an invocation at its deadline: no code of it runs after (not even `except Exception`)."""


class StopsWriting(MemoryStore):
    """Writes the first `keep` records of the next put, then fails (`error`), or is stopped at its deadline."""

    def __init__(self, keep: int, error: BaseException | None = None) -> None:
        super().__init__()
        self.keep: int | None = keep
        self.error = error or Stopped()

    def put_messages(self, messages, deadlines=()):  # type: ignore[no-untyped-def]
        if self.keep is None:
            return super().put_messages(messages, deadlines)
        super().put_messages(messages[: self.keep])
        self.keep = None
        raise self.error


def test_a_resume_after_some_records_were_written_keeps_them_and_packs_the_rest_under_new_ids(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, queues = StopsWriting(keep=70), MemoryQueues()
    with pytest.raises(Stopped):
        run(store, queues, FIRST, monkeypatch)
    assert len(store.messages) == 70 and not queues.sent  # nothing queued before every record is written

    answer = run(store, queues, CHANGED, monkeypatch)

    header = store.batches["B1"]
    assert (header.state, header.accepted, header.resumes, answer.accepted) == ("QUEUED", 125, 1, 125)
    records = store.messages
    # The 70 written stand as written (Alibaba, their packs); the 55 not written follow the new routes, packed anew.
    assert {records[f"B1.{i:05d}"].provider for i in range(70)} == {ProviderName.ALIYUN}
    assert {records[f"B1.{i:05d}"].provider for i in range(70, 120)} == {ProviderName.HUAWEI}
    assert {records[f"B1.{i:05d}"].provider for i in range(120, 125)} == {ProviderName.ALIYUN}
    assert sorted(p.pack_id for p in all_sent(queues)) == [
        "B1:aliyun:0",
        "B1:aliyun:1",  # the 20 of the first attempt's second pack that were written
        "B1~1:aliyun:0",
        "B1~1:huawei:0",
    ]
    sent_once_each(all_sent(queues), records)
    assert [m.provider for m in answer.messages] == [records[m.id].provider for m in answer.messages]


def test_a_resume_keeps_a_written_record_the_new_plan_would_refuse(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, queues = StopsWriting(keep=3), MemoryQueues()
    with pytest.raises(Stopped):
        run(store, queues, FIRST, monkeypatch)
    # The template is no longer registered: as a provider's own template id, no route can carry it.
    unregistered = parse_registry({"version": 1, "templates": {}}, "test")
    monkeypatch.setattr("globesms.accept.planning.template_registry", lambda: unregistered)

    answer = run(store, queues, FIRST, monkeypatch)

    assert answer.accepted == 3 and answer.rejected == 122  # the others refused this time
    assert [m.id for m in answer.messages] == ["B1.00000", "B1.00001", "B1.00002"]
    assert not {e.index for e in answer.errors} & {0, 1, 2}
    sent_once_each(all_sent(queues), store.messages)


def test_held_packs_of_a_resumed_accept_are_the_first_ones(monkeypatch, schedule) -> None:  # type: ignore[no-untyped-def]
    schedule, _releases = schedule  # the held packs
    send_at = NOW + timedelta(hours=2)
    store, queues = MemoryStore(), MemoryQueues()
    queues.fail_for.add(ProviderName.ALIYUN)
    with pytest.raises(RuntimeError):
        run(store, queues, FIRST, monkeypatch, body=specs(send_at))
    queues.fail_for.clear()

    run(store, queues, CHANGED, monkeypatch, body=specs(send_at))

    (ref,) = schedule.held
    assert [p.pack_id for p in schedule.held_packs(ref)] == [f"B1@{hold.pack_time(ref.send_at)}:tencent:0"]
    sent_once_each([*all_sent(queues), *schedule.held_packs(ref)], store.messages)


def test_an_accept_is_not_resumed_before_its_deadline(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, queues = StopsWriting(keep=10), MemoryQueues()
    with pytest.raises(Stopped):
        run(store, queues, FIRST, monkeypatch, until=NOW + timedelta(seconds=30))
    # The deadline, and a margin for a write sent just before it that lands just after.
    assert store.batches["B1"].accepting_until == (NOW + timedelta(seconds=30) + LEASE_MARGIN).timestamp()
    with pytest.raises(resume.BatchInProgress) as busy:
        run(store, queues, FIRST, monkeypatch, now=NOW + timedelta(seconds=34))
    assert isinstance(busy.value, KeyInProgress)  # answered as a key in progress: come back later
    assert len(store.messages) == 10 and not queues.sent and store.batches["B1"].resumes is None

    run(store, queues, FIRST, monkeypatch, now=NOW + timedelta(seconds=36))
    assert store.batches["B1"].state == "QUEUED" and len(store.messages) == 125


def test_an_accept_that_failed_with_an_error_may_be_resumed_at_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, queues = StopsWriting(keep=10, error=TimeoutError("DynamoDB timed out")), MemoryQueues()
    with pytest.raises(TimeoutError):
        run(store, queues, FIRST, monkeypatch, until=NOW + timedelta(seconds=30))
    assert store.batches["B1"].accepting_until is None  # it stopped, and said so

    run(store, queues, FIRST, monkeypatch, now=NOW + timedelta(seconds=1))
    assert store.batches["B1"].state == "QUEUED" and len(store.messages) == 125


def test_an_intake_body_whose_batch_is_being_accepted_is_left_for_a_later_receive(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, queues = StopsWriting(keep=10), MemoryQueues()
    monkeypatch.setattr("globesms.accept.planning.current_table", lambda: FIRST)
    body = '{"batch_id": "B1", "messages": [{"to": "+85251234567", "text": "hello"}]}'
    with pytest.raises(Stopped):
        accept_intake(
            body, sqs_message_id="m1", now=NOW, retention_days=90, store=store, queues=queues, accepting_until=NOW
        )
    store.batches["B1"].accepting_until = int((NOW + timedelta(minutes=1)).timestamp())
    with pytest.raises(IntakeDeferred):
        accept_intake(body, sqs_message_id="m2", now=NOW, retention_days=90, store=store, queues=queues)


def test_a_header_begun_by_another_accept_since_this_one_looked_stops_it(monkeypatch, mocker) -> None:  # type: ignore[no-untyped-def]
    store, queues = StopsWriting(keep=10), MemoryQueues()
    with pytest.raises(Stopped):
        run(store, queues, FIRST, monkeypatch)
    mocker.patch.object(store, "get_batch", return_value=None)  # as if it looked just before the other began
    with pytest.raises(resume.BatchInProgress):
        run(store, queues, CHANGED, monkeypatch)
    assert len(store.messages) == 10 and not queues.sent


def test_two_resumes_at_once_only_one_packs_the_unwritten_recipients(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, queues = StopsWriting(keep=10), MemoryQueues()
    with pytest.raises(Stopped):
        run(store, queues, FIRST, monkeypatch)
    read = store.list_batch_messages

    def read_then_lose_the_race(batch_id, *, limit, after):  # type: ignore[no-untyped-def]
        store.batches["B1"] = store.batches["B1"].model_copy(update={"resumes": 1})  # the other resume took it
        return read(batch_id, limit=limit, after=after)

    monkeypatch.setattr(store, "list_batch_messages", read_then_lose_the_race)
    with pytest.raises(resume.BatchInProgress):
        run(store, queues, CHANGED, monkeypatch)
    assert len(store.messages) == 10 and not queues.sent


def refusing_sg(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """SG's numbers opted out (refused at planning) while `on`: the first attempt counts fewer than a resume."""
    screen_numbers = consent_screen.refuse_opted_out
    state = {"on": True}

    def refuse(records, check):  # type: ignore[no-untyped-def]
        if not state["on"]:
            return screen_numbers(records, None)
        refused = [r for r in records if r.to in SG]
        errors = [RecipientError(index=_index(r.id), to=r.to, code="OPTED_OUT", message="opted out") for r in refused]
        return [r for r in records if r.to not in SG], errors

    monkeypatch.setattr(consent_screen, "refuse_opted_out", refuse)
    return state


def _index(record_id: str) -> int:
    return int(record_id.rpartition(".")[2])


def stopped_before_sg_opted_in(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[StopsWriting, MemoryQueues, BatchRecord]:
    """An accept stopped after 70 of its 120 records (SG's 5 numbers opted out then), SG opted in again since: the
    store, the queues and the stopped attempt's header as it was read then."""
    opted_out = refusing_sg(monkeypatch)
    store, queues = StopsWriting(keep=70), MemoryQueues()
    with pytest.raises(Stopped):
        run(store, queues, FIRST, monkeypatch)
    stale = store.batches["B1"].model_copy(deep=True)
    assert stale.accepted == 120
    opted_out["on"] = False
    return store, queues, stale


def test_a_resume_that_read_the_header_before_another_took_it_over_stops(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, queues, stale = stopped_before_sg_opted_in(monkeypatch)
    late: list[BaseException] = []
    put = MemoryStore.put_messages

    def put_then_a_late_resume_looks(self, messages, deadlines=()):  # type: ignore[no-untyped-def]
        # While the first resume writes its 55 records, a second one (which read the header before the first took
        # it over) lists 50 of them: 120 records, as many as that header counts.
        put(self, messages[:50])
        with monkeypatch.context() as patched:
            patched.setattr(self, "get_batch", lambda batch_id: stale)
            with pytest.raises(resume.BatchInProgress) as stopped:
                run(self, queues, CHANGED, monkeypatch)
        late.append(stopped.value)
        put(self, messages[50:])

    monkeypatch.setattr(StopsWriting, "put_messages", put_then_a_late_resume_looks)
    answer = run(store, queues, CHANGED, monkeypatch)

    assert late and answer.accepted == 125 and store.batches["B1"].accepted == 125
    sent_once_each(all_sent(queues), store.messages)

    # Once the batch is finished, a resume holding the old header stops too, and writes nothing over it.
    monkeypatch.setattr(store, "get_batch", lambda batch_id: stale)
    with pytest.raises(resume.BatchInProgress):
        run(store, queues, CHANGED, monkeypatch)
    assert (store.batches["B1"].state, store.batches["B1"].accepted) == ("QUEUED", 125)


def test_two_resumes_whose_deadlines_fall_in_one_second_are_told_apart(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # They share the stopped attempt's planning time, their resume number and (deadlines in one second) their lease:
    # the loser of the take-over read the winner's header as its own and went on, and, planned with other routes,
    # put recipients in two pack ids and one pack id on two sets of recipients (a review).
    store, queues = StopsWriting(keep=70), MemoryQueues()
    with pytest.raises(Stopped):
        run(store, queues, FIRST, monkeypatch)
    take_over, finish = store.take_over_batch, store.finish_batch

    def still_running(batch: BatchRecord) -> None:
        raise Stopped()  # the other resume has queued its packs and is still at work: ACCEPTING, under its lease

    def the_other_resume_takes_it_first(batch: BatchRecord, previous: BatchRecord) -> bool:
        monkeypatch.setattr(store, "take_over_batch", take_over)
        monkeypatch.setattr(store, "finish_batch", still_running)
        with pytest.raises(Stopped):
            run(store, queues, FIRST, monkeypatch, until=NOW + timedelta(seconds=30, milliseconds=100))
        monkeypatch.setattr(store, "finish_batch", finish)
        return take_over(batch, previous)

    monkeypatch.setattr(store, "take_over_batch", the_other_resume_takes_it_first)
    with pytest.raises(resume.BatchInProgress):
        run(store, queues, CHANGED, monkeypatch, until=NOW + timedelta(seconds=30, milliseconds=700))
    assert store.batches["B1"].state == "ACCEPTING"  # the other's, untouched
    sent_once_each(all_sent(queues), store.messages)


def test_a_resume_refuses_an_otp_to_a_number_a_stored_otp_record_texts(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Index 0 is refused for its route by the first attempt, so index 1 (the same number) was its first OTP and was
    # written; the resume, with a route that now takes index 0, planned index 0 as the first and kept index 1 as
    # stored: two codes to one number (a review).
    number = "+85251230000"
    body = [
        MessageSpec.model_validate({"to": number, "template": {"id": "promo", "params": {}}, "type": "OTP"}),
        MessageSpec.model_validate(
            {"to": [number, *(f"+8525124{i:04d}" for i in range(40))], "template": LOGIN, "type": "OTP"}
        ),
    ]
    store, queues = StopsWriting(keep=5), MemoryQueues()
    with pytest.raises(Stopped):
        run(store, queues, table(hk="aliyun", sg="tencent"), monkeypatch, body=body)  # promo: no Alibaba version
    assert "B1.00001" in store.messages and "B1.00000" not in store.messages
    answer = run(store, queues, table(hk="tencent", sg="tencent"), monkeypatch, body=body)
    texted = [r.id for p in all_sent(queues) for r in p.recipients if r.to == number]
    assert texted == ["B1.00001"]
    assert [(e.index, e.code) for e in answer.errors if e.index == 0] == [(0, "DUPLICATE_RECIPIENT")]


def test_a_batch_cancel_that_read_the_header_before_a_resume_took_it_over_is_refused(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The resume plans 125 where the stopped attempt planned 120 (SG opted in again) and has written 120 records
    # when the cancel lists them: against the header it read first, nothing was left to write, and the resume's 5
    # last records went out after the cancel answered, in a pack it never took (a review).
    from globesms.scheduling.cancel import BatchStillAccepting, CancelDeps, cancel_batch
    from tests.fakes import MemoryClaims, MemorySpendReleases, MemoryWebhooks

    store, queues, stale = stopped_before_sg_opted_in(monkeypatch)
    deps = CancelDeps(store, MemoryScheduleStore(store), MemoryClaims(), MemoryWebhooks(), MemorySpendReleases())
    refused: list[BaseException] = []
    put, get_batch = MemoryStore.put_messages, store.get_batch

    def put_while_a_cancel_runs(self, messages, deadlines=()):  # type: ignore[no-untyped-def]
        put(self, messages[:50])
        reads = iter([stale])  # the cancel's first read came before the resume took the header over
        with monkeypatch.context() as patched:
            patched.setattr(self, "get_batch", lambda batch_id: next(reads, None) or get_batch(batch_id))
            with pytest.raises(BatchStillAccepting) as still:
                cancel_batch(deps, "B1", now=NOW)
        refused.append(still.value)
        put(self, messages[50:])

    monkeypatch.setattr(StopsWriting, "put_messages", put_while_a_cancel_runs)
    assert run(store, queues, FIRST, monkeypatch).accepted == 125 and refused
    assert not any(r.status is Status.CANCELED for r in store.messages.values())


def test_a_partial_resume_sends_no_more_recipients_than_were_reserved(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tests.unit.test_guardrails import MemoryLedger

    opted_out = refusing_sg(monkeypatch)
    ledger = MemoryLedger()
    store, queues = StopsWriting(keep=118), MemoryQueues()
    body = [MessageSpec.model_validate({"to": [*SG, *HK], "template": LOGIN})]  # SG first: indexes 0-4

    def attempt() -> AcceptResponse:
        monkeypatch.setattr("globesms.accept.planning.current_table", lambda: FIRST)
        return accept(
            body, batch_id="B1", source="sqs", now=NOW, retention_days=90, store=store, queues=queues, ledger=ledger
        )

    with pytest.raises(Stopped):
        attempt()
    assert ledger.held["B1"] == 120
    opted_out["on"] = False  # SG's five may be texted now: planned first, but the reservation covers 120

    answer = attempt()

    assert answer.accepted == 120 and set(store.messages) >= {f"B1.{i:05d}" for i in range(5, 123)}
    sent_once_each(all_sent(queues), store.messages)


def test_a_record_handed_on_since_is_not_packed_again(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store, queues = MemoryStore(), MemoryQueues()
    queues.fail_for.add(ProviderName.TENCENT)
    with pytest.raises(RuntimeError):
        run(store, queues, FIRST, monkeypatch)
    queues.fail_for.clear()
    # The first pack was sent (its claim expired since, after 14 days); one of the second's was canceled.
    for i in range(50):
        store.messages[f"B1.{i:05d}"].status = Status.DELIVERED
    store.messages["B1.00060"].status = Status.CANCELED
    queues.sent.clear()

    run(store, queues, FIRST, monkeypatch)

    assert [(p.pack_id, len(p.recipients)) for p in all_sent(queues)] == [
        ("B1:aliyun:1", 49),
        ("B1:aliyun:2", 20),
        ("B1:tencent:0", 5),
    ]


def test_held_packs_of_a_resume_are_released_by_the_clock_not_the_first_attempts_time(monkeypatch, schedule) -> None:  # type: ignore[no-untyped-def]
    _held, releases = schedule
    store, queues = StopsWriting(keep=10), MemoryQueues()
    with pytest.raises(Stopped):
        run(store, queues, FIRST, monkeypatch, body=specs(NOW + timedelta(minutes=10)))

    run(store, queues, FIRST, monkeypatch, body=specs(NOW + timedelta(minutes=10)), now=NOW + timedelta(minutes=4))

    assert [delay for _ref, delay in releases.sent] == [6 * 60]


def test_the_intake_writes_its_invocations_deadline(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = StopsWriting(keep=0)
    monkeypatch.setattr("globesms.accept.planning.current_table", lambda: FIRST)
    body = '{"batch_id": "B1", "messages": [{"to": "+85251234567", "text": "hello"}]}'
    deadline = NOW + timedelta(seconds=40)
    with pytest.raises(Stopped):
        accept_intake(
            body,
            sqs_message_id="m",
            now=NOW,
            retention_days=90,
            store=store,
            queues=MemoryQueues(),
            accepting_until=deadline,
        )
    assert store.batches["B1"].accepting_until == (deadline + LEASE_MARGIN).timestamp()


def dispatched(store: MemoryStore, pack: DispatchPack, *, failed_over: int | None = None) -> None:
    """What a dispatcher writes for a pack it sent: each record rewritten whole, without its pack_key
    (dispatch/records.py); `failed_over`: a position whose recipient went to Tencent instead (dispatch/failover.py)."""
    outcomes = [
        (i, SendOutcome(message_id=r.id, provider_message_id=f"p-{r.id}"))
        for i, r in enumerate(pack.recipients)
        if i != failed_over
    ]
    store.put_messages(outcome_records(pack, outcomes, NOW))
    if failed_over is not None:
        moved = store.messages[pack.recipients[failed_over].id]
        update = {"provider": ProviderName.TENCENT, "status": Status.QUEUED, "pack_key": None}
        store.put_messages([moved.model_copy(update=update)])


class FirstPackOnly(MemoryQueues):
    """The queue takes Alibaba's first pack, then fails."""

    broken = True

    def send_packs(self, provider, packs, *, delay_seconds=0):  # type: ignore[no-untyped-def]
        if self.broken:
            super().send_packs(provider, packs[:1])
            raise RuntimeError("queue unavailable")
        return super().send_packs(provider, packs, delay_seconds=delay_seconds)


@pytest.mark.parametrize("failed_over", [None, 0])
def test_a_resume_after_a_pack_was_dispatched_packs_only_those_never_handed_on(monkeypatch, failed_over) -> None:  # type: ignore[no-untyped-def]
    store, queues = MemoryStore(), FirstPackOnly()
    with pytest.raises(RuntimeError):
        run(store, queues, FIRST, monkeypatch)
    (first,) = all_sent(queues)
    dispatched(store, first, failed_over=failed_over)
    queues.broken = False
    queues.sent.clear()

    run(store, queues, FIRST, monkeypatch)

    # The sent pack (its claim taken: skipped) holds nobody now; the others hold what they held, nobody twice.
    assert [(p.pack_id, len(p.recipients)) for p in all_sent(queues)] == [
        ("B1:aliyun:1", 50),
        ("B1:aliyun:2", 20),
        ("B1:tencent:0", 5),
    ]
    assert not {r.id for r in first.recipients} & {r.id for p in all_sent(queues) for r in p.recipients}


def test_a_resume_keeps_in_its_held_pack_a_recipient_a_release_claimed(monkeypatch, schedule) -> None:  # type: ignore[no-untyped-def]
    schedule, _releases = schedule  # the held packs
    send_at = NOW + timedelta(minutes=2)

    class StopsFinishing(MemoryStore):
        def finish_batch(self, batch):  # type: ignore[no-untyped-def]
            raise Stopped()  # every record written, every pack queued or held

    store, queues = StopsFinishing(), MemoryQueues()
    with pytest.raises(Stopped):
        run(store, queues, FIRST, monkeypatch, body=specs(send_at))
    store.__class__ = MemoryStore
    (ref,) = schedule.held
    (held,) = schedule.held_packs(ref)
    schedule.store = store
    schedule.claim_for_release([r.id for r in held.recipients[:2]], now=send_at)  # then the release died

    run(store, queues, FIRST, monkeypatch, body=specs(send_at), now=send_at)

    assert schedule.held_packs(ref) == [held]  # the release's retry sends all five


def test_an_accept_whose_header_write_was_retried_by_the_client_goes_on(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    class RetriedBegin(MemoryStore):
        """The first try of the conditional put was applied, its answer lost: the retry finds this very header."""

        def begin_batch(self, batch):  # type: ignore[no-untyped-def]
            assert super().begin_batch(batch) is None
            return super().begin_batch(batch)

    store = RetriedBegin()
    answer = run(store, MemoryQueues(), FIRST, monkeypatch, until=NOW + timedelta(seconds=30))
    assert answer.accepted == 125 and store.batches["B1"].state == "QUEUED"


class MemoryAccount:
    """The SpendAccount contract in memory: `MemoryLedger`'s reservations, and give-backs once per message id to
    the counters a batch's reservation was added to (as the DynamoDB ledger's markers make them)."""

    def __init__(self) -> None:
        from tests.unit.test_guardrails import MemoryLedger

        self.ledger = MemoryLedger()
        self.amounts: dict[str, tuple[str, object]] = {}  # batch id -> (month, amount)
        self.released: set[str] = set()

    def try_reserve(self, hold):  # type: ignore[no-untyped-def]
        kept = self.ledger.try_reserve(hold)
        if kept is not None:
            self.amounts.setdefault(hold.batch_id, (hold.month, hold.amount))
        return kept

    def spent(self, month, scopes):  # type: ignore[no-untyped-def]
        return self.ledger.spent(month, scopes)

    def release(self, month, amounts):  # type: ignore[no-untyped-def]
        self.ledger.release(month, amounts)

    def reservation(self, batch_id):  # type: ignore[no-untyped-def]
        from globesms.guardrails.ports import Reservation

        if batch_id not in self.amounts:
            return None
        month, amount = self.amounts[batch_id]
        return Reservation(month, self.ledger.held[batch_id], amount, ("all",))  # type: ignore[arg-type]

    def release_once(self, month, scopes, amounts, expires_at):  # type: ignore[no-untyped-def]
        from decimal import Decimal

        fresh = {m: a for m, a in amounts.items() if m not in self.released}
        self.released |= set(fresh)
        total = sum(fresh.values(), Decimal(0))
        for scope in scopes:
            self.ledger.counters[(scope, month)] -= total
        return total


def test_a_resume_that_writes_fewer_records_than_it_reserved_for_gives_the_rest_back_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from decimal import Decimal

    opted_out = refusing_sg(monkeypatch)
    opted_out["on"] = False
    account, store = MemoryAccount(), StopsWriting(keep=5)
    body = [MessageSpec.model_validate({"to": [*HK[:5], *SG], "template": LOGIN})]

    def attempt() -> AcceptResponse:
        monkeypatch.setattr("globesms.accept.planning.current_table", lambda: FIRST)
        return accept(
            body, batch_id="B1", source="sqs", now=NOW, retention_days=90, store=store, queues=MemoryQueues(),
            ledger=account,  # type: ignore[arg-type]
        )  # fmt: skip

    with pytest.raises(Stopped):
        attempt()
    reserved = account.ledger.counters[("all", "2026-11")]
    opted_out["on"] = True  # the SG numbers opted out before the resume: it writes none of the 5 it reserved for
    attempt()
    assert store.batches["B1"].state == "QUEUED" and len(store.messages) == 5
    held = sum(Decimal(r.cost) for r in store.messages.values() if r.cost)
    assert reserved > held and account.ledger.counters[("all", "2026-11")] == held  # the rest given back
    with pytest.raises(BatchDoneBefore):  # a later delivery of the same body: its answer, nothing more given back
        attempt()
    assert account.ledger.counters[("all", "2026-11")] == held


class HeaderFails(MemoryStore):
    def begin_batch(self, batch):  # type: ignore[no-untyped-def]
        raise RuntimeError("throttled")


@pytest.mark.parametrize("new_batch_id", [True, False])
def test_a_header_that_cannot_be_begun_gives_back_what_no_retry_can_resume(monkeypatch, new_batch_id) -> None:  # type: ignore[no-untyped-def]
    # A keyless API request's batch id is minted for it: no retry can resume it, and no header may exist for the
    # reconcile run to end. A batch a retry can resume keeps its reservation for that retry.
    account = MemoryAccount()
    monkeypatch.setattr("globesms.accept.planning.current_table", lambda: FIRST)
    body = [MessageSpec.model_validate({"to": HK[:3], "template": LOGIN})]
    with pytest.raises(RuntimeError):
        accept(
            body, batch_id="B1", source="api", now=NOW, retention_days=90, store=HeaderFails(), queues=MemoryQueues(),
            ledger=account, new_batch_id=new_batch_id,  # type: ignore[arg-type]
        )  # fmt: skip
    assert (account.ledger.counters[("all", "2026-11")] == 0) is new_batch_id


def test_a_resume_keeps_the_owner_the_batch_was_accepted_for(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # GLOBESMS_INTAKE_OWNER changed by a deploy between the attempts: the records written on resume belonged to the
    # new owner, so their give-backs went to a key counter nothing was reserved against.
    from globesms.guardrails.release import release_unsent
    from tests.fakes import MemorySpendReleases

    account, store = MemoryAccount(), StopsWriting(keep=2)
    body = [MessageSpec.model_validate({"to": HK[:5], "template": LOGIN})]

    def attempt(owner: str) -> AcceptResponse:
        monkeypatch.setattr("globesms.accept.planning.current_table", lambda: FIRST)
        return accept(
            body, batch_id="B1", source="sqs", now=NOW, retention_days=90, store=store, queues=MemoryQueues(),
            ledger=account, owner=owner,  # type: ignore[arg-type]
        )  # fmt: skip

    with pytest.raises(Stopped):
        attempt("intake-a")
    attempt("intake-b")
    assert {r.owner for r in store.messages.values()} == {"intake-a"} and store.batches["B1"].owner == "intake-a"
    releases = MemorySpendReleases()
    release_unsent(releases, [r.model_copy(update={"status": Status.FAILED}) for r in store.messages.values()])
    assert {scope for _month, scope in releases.given_back} == {"all", "key:intake-a"}


def test_a_resume_counts_the_written_records_against_the_reservation_whatever_the_otp_guard_says(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The resume's OTP chunk changed (SG refused by a permission since), so the guard screened the written OTP
    records again and refused them (counted by the first attempt). They left the spend's order, fresh recipients
    took their slots of the reservation, and they were put back: 102 recipients written for 100 reserved, past the
    spend limit."""
    from decimal import Decimal

    from globesms.guardrails import gate, otp_guard
    from globesms.guardrails.limits import LimitsDoc
    from globesms.guardrails.permissions import PermissionsDoc
    from globesms.guardrails.prices import current_prices
    from tests.unit.test_otp_guard import MemoryOtpCounters

    limits = LimitsDoc.model_validate({"version": 1, "monthly_spend": "4.40", "otp_velocity": {"per_hour": 1}})

    def rules(otp_allow: list[str] | None) -> gate.Rules:
        permissions = {"version": 1, **({"types": {"OTP": {"allow": otp_allow}}} if otp_allow else {})}
        return gate.Rules(current_prices(), PermissionsDoc.model_validate(permissions), limits)

    body = [
        MessageSpec.model_validate({"to": [*HK[:2], SG[0]], "text": "code 1", "type": "OTP"}),
        MessageSpec.model_validate({"to": HK[2:102], "text": "hello"}),  # Alibaba, 0.044 each: 100 fit
    ]
    account, store = MemoryAccount(), StopsWriting(keep=2)
    guard = otp_guard.OtpGuard(MemoryOtpCounters())

    def attempt() -> AcceptResponse:
        return accept(
            body, batch_id="B1", source="sqs", now=NOW, retention_days=90, store=store, queues=MemoryQueues(),
            ledger=account, otp=guard,  # type: ignore[arg-type]
        )  # fmt: skip

    monkeypatch.setattr(gate, "current_rules", lambda: rules(None))
    with pytest.raises(Stopped):
        attempt()
    assert account.ledger.held["B1"] == 100 and sorted(store.messages) == ["B1.00000", "B1.00001"]
    monkeypatch.setattr(gate, "current_rules", lambda: rules(["HK"]))  # OTP to SG no longer allowed

    answer = attempt()

    written = list(store.messages.values())
    assert len(written) == answer.accepted == 100
    assert {"B1.00000", "B1.00001"} <= set(store.messages)  # written, they stand
    assert sum(Decimal(r.cost) for r in written if r.cost) <= Decimal("4.40")


def test_a_body_never_takes_the_spend_reservation_another_body_made_under_its_batch_id(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Two intake bodies naming one batch id, accepted at once: A reserves, then B (another consumer) runs before A
    writes its header. The reservation marker was keyed by batch id alone, so B took A's (1 recipient) as its own:
    9 of its 10 refused SPEND_LIMIT_REACHED with no limit configured, and A refused BATCH_ID_CONFLICT, its
    reservation never given back. The marker names its body: B is refused BATCH_ID_CONFLICT, A goes on."""
    from decimal import Decimal

    from globesms.accept.service import BatchIdConflict

    account = MemoryAccount()
    first = [MessageSpec.model_validate({"to": HK[:1], "text": "first body"})]
    second = [MessageSpec.model_validate({"to": HK[1:11], "text": "second body"})]
    outcomes: list[object] = []

    class Racing(MemoryStore):
        raced = False

        def begin_batch(self, batch):  # type: ignore[no-untyped-def]
            if not self.raced:  # A has reserved; B, received by another consumer, runs now
                self.raced = True
                try:
                    outcomes.append(attempt(second))
                except BatchIdConflict as exc:
                    outcomes.append(exc)
            return super().begin_batch(batch)

    store = Racing()

    def attempt(body: list[MessageSpec]) -> AcceptResponse:
        return accept(
            body, batch_id="order-7", source="sqs", now=NOW, retention_days=90, store=store, queues=MemoryQueues(),
            ledger=account,  # type: ignore[arg-type]
        )  # fmt: skip

    answer = attempt(first)

    assert isinstance(outcomes[0], BatchIdConflict)
    assert (answer.accepted, answer.rejected) == (1, 0) and store.batches["order-7"].accepted == 1
    written = sum((Decimal(r.cost) for r in store.messages.values() if r.cost), Decimal(0))
    assert set(store.messages) == {"order-7.00000"} and written > 0
    assert account.ledger.counters[("all", "2026-11")] == written  # A's reservation, A's records


def test_a_batch_an_attempt_of_the_version_before_wrote_is_resumed_as_this_bodys(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """That version hashed the body as written (LOGIN's params are not in name order); retried after the deploy,
    its body is the same, not another one (BATCH_ID_CONFLICT: the recipients it had not written never sent)."""
    import hashlib

    monkeypatch.setattr("globesms.accept.canonical.template_registry", lambda: REGISTRY)  # `login` registered
    store, queues = MemoryStore(), MemoryQueues()
    queues.fail_for.add(ProviderName.TENCENT)
    with pytest.raises(RuntimeError):
        run(store, queues, FIRST, monkeypatch)
    written = hashlib.sha256("\n".join(s.model_dump_json() for s in specs()).encode()).hexdigest()
    assert store.batches["B1"].body_hash != written  # this form sorts LOGIN's params
    store.batches["B1"] = store.batches["B1"].model_copy(update={"body_hash": written})
    queues.fail_for.clear()
    answer = run(store, queues, FIRST, monkeypatch)
    assert store.batches["B1"].state == "QUEUED" and answer.accepted == 125
    sent_once_each(all_sent(queues), store.messages)


def test_a_resume_keeps_how_many_recipients_the_batch_holds_scheduled(monkeypatch, schedule) -> None:  # type: ignore[no-untyped-def]
    # The header says how many records were created SCHEDULED: a poll shows those the status counts have not counted
    # yet as SCHEDULED, the others as ACCEPTED (QUEUED).
    later = specs(NOW + timedelta(hours=2))
    store, queues = StopsWriting(keep=70), MemoryQueues()
    with pytest.raises(Stopped):
        run(store, queues, FIRST, monkeypatch, body=later)
    assert (store.batches["B1"].state, store.batches["B1"].scheduled) == ("ACCEPTING", len(SG))
    run(store, queues, CHANGED, monkeypatch, body=later)  # planned again, the 70 written standing
    assert (store.batches["B1"].state, store.batches["B1"].scheduled) == ("QUEUED", len(SG))

    store, queues = MemoryStore(), MemoryQueues()
    queues.fail_for.add(ProviderName.ALIYUN)
    with pytest.raises(RuntimeError):
        run(store, queues, FIRST, monkeypatch, body=later)
    queues.fail_for.clear()
    # Every record written, by a version whose header did not say: counted from the stored records.
    store.batches["B1"] = store.batches["B1"].model_copy(update={"scheduled": None})
    run(store, queues, CHANGED, monkeypatch, body=later)
    assert (store.batches["B1"].state, store.batches["B1"].scheduled) == ("QUEUED", len(SG))
    assert batch_counts(store.batch_tally("B1"), len(HK) + len(SG), len(SG)) == {"ACCEPTED": 120, "SCHEDULED": 5}
