"""Receipt deadlines and the reconcile run (reconcile/): every SUBMITTED message ends final by its deadline."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from globesms.dispatch.records import outcome_record, outcome_records
from globesms.domain.history import HistoryStep
from globesms.domain.status import Status
from globesms.errors import ErrorCategory, ProviderError
from globesms.models.outbound import DEFAULT_VALIDITY_SECONDS, MessageType, ProviderName, SendOutcome
from globesms.models.packs import DispatchPack
from globesms.models.receipts import DeliveryReport, StatusAnswer, StatusQueryFailed
from globesms.models.records import MessageRecord
from globesms.receipts.apply import record_push
from globesms.reconcile.deadline import (
    DUE_SHARDS,
    DeadlineEntry,
    DeadlinePolicy,
    deadline_entries,
    minute_epoch,
    minute_of,
    minutes_between,
    receipt_deadline,
)
from globesms.reconcile.decision import ApplyReport, Expire, Reschedule, decide, retry
from globesms.reconcile.service import (
    ProviderOutcomes,
    ReconcileDeps,
    ReconcileSummary,
    UnavailableQuery,
    reconcile_due,
)
from globesms.stats.tally import tally_outcomes
from tests.fakes import MemoryDeadlines, MemoryRateLimiter, MemoryStore, MemoryWebhooks

SUBMITTED_AT = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
POLICY = DeadlinePolicy(grace_seconds=600, pending_extension_seconds=900, retry_seconds=120)
CALLBACK = "https://hooks.example.com/sms"


# ------------------------------------------------------------------------------------------------ deadlines


@pytest.mark.parametrize(
    ("validity", "kind", "expected"),
    [
        (None, MessageType.OTP, 600 + 600),
        (None, MessageType.NOTIFY, 86_400 + 600),
        (None, MessageType.MKT, 86_400 + 600),
        (300, MessageType.OTP, 300 + 600),
        (7200, MessageType.NOTIFY, 7200 + 600),
        (0, MessageType.OTP, 600 + 600),  # no usable validity: the type's default
    ],
)
def test_the_deadline_is_validity_or_the_types_default_plus_the_grace(
    validity: int | None, kind: MessageType, expected: int
) -> None:
    assert receipt_deadline(1_000_000, validity, kind, POLICY) == 1_000_000 + expected
    assert set(DEFAULT_VALIDITY_SECONDS) == set(MessageType)


@given(st.integers(min_value=0, max_value=4_102_444_800), st.lists(st.text(min_size=1, max_size=30), min_size=1))
def test_an_entry_falls_in_the_bucket_of_its_minute_and_one_of_the_shards(epoch: int, ids: list[str]) -> None:
    entry = DeadlineEntry(epoch, tuple(ids))
    minute, _, shard = entry.bucket.partition("#")
    assert minute == minute_of(epoch)
    assert minute_epoch(minute) <= epoch < minute_epoch(minute) + 60
    assert 0 <= int(shard) < DUE_SHARDS
    assert entry.key.startswith(f"{epoch:010d}#")  # a bucket's entries sort by deadline


def test_an_entrys_key_is_the_same_for_the_same_messages_and_differs_otherwise() -> None:
    one = DeadlineEntry(1_000, ("B.00000", "B.00001"))
    assert one.key == DeadlineEntry(1_000, ("B.00000", "B.00001")).key  # a pack written again overwrites its own
    assert one.key != DeadlineEntry(1_000, ("B.00000", "B.00002")).key
    assert one.key != DeadlineEntry(1_000, ("B.00000",)).key
    assert one.key != DeadlineEntry(1_001, ("B.00000", "B.00001")).key


def test_the_minutes_between_a_watermark_and_now_are_consecutive_and_include_now() -> None:
    now = int(datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC).timestamp())
    assert list(minutes_between("2026-12-31T23:57", now)) == [
        "2026-12-31T23:57",
        "2026-12-31T23:58",
        "2026-12-31T23:59",
    ]
    assert list(minutes_between("2027-01-01T00:00", now)) == []


# ------------------------------------------------------------------------------------------------ decisions


def record(provider: str = "huawei", tries: int | None = None, **extra: object) -> MessageRecord:
    due_at = int(SUBMITTED_AT.timestamp()) + 1200
    return MessageRecord.model_validate(
        {
            "id": "B.00000",
            "batch_id": "B",
            "to": "+6591234567",
            "provider": provider,
            "type": "OTP",
            "status": "SUBMITTED",
            "text": "code 1",
            "provider_message_id": "pm-1",
            "status_callback": CALLBACK,
            "created_at": "2026-12-02T10:00:00Z",
            "updated_at": "2026-12-02T10:00:00Z",
            "submitted_at": "2026-12-02T10:00:00Z",
            "receipt_due_at": due_at,
            "reconcile_tries": tries,
            **extra,
        }
    )


def pulled(status: Status | None, raw: str = "1", code: str | None = "DELIVERED") -> DeliveryReport:
    return DeliveryReport(
        provider=ProviderName.ALIYUN,
        provider_message_id="pm-1",
        status=status,
        raw_status=raw,
        error_code=code,
        provider_time="Thu, 02 Dec 2026 18:00:05 +0800",
        kind="pulled",
    )


@pytest.mark.parametrize(
    ("answer", "tries", "expected"),
    [
        (None, None, Expire()),  # no status query (Huawei)
        (StatusAnswer(report=pulled(Status.DELIVERED)), None, ApplyReport(pulled(Status.DELIVERED))),
        (StatusAnswer(report=pulled(Status.UNDELIVERED, "2", "SMSC_FAIL")), 1, None),
        (StatusAnswer(pending=True), None, Reschedule(1000 + 900, 1)),
        (StatusAnswer(pending=True), 1, Expire()),  # moved once already: the last try
        (StatusAnswer(report=pulled(None, "3", None)), None, Reschedule(1000 + 900, 1)),  # not final: pending
    ],
)
def test_the_decision_past_a_deadline(answer: StatusAnswer | None, tries: int | None, expected: object) -> None:
    verdict = decide(record(tries=tries), answer, 1000, POLICY)
    if expected is None:
        assert isinstance(verdict, ApplyReport) and verdict.report.status is Status.UNDELIVERED
    else:
        assert verdict == expected


def test_a_failed_query_is_asked_again_later_without_using_up_the_extension() -> None:
    assert retry(record(tries=0), 1000, POLICY) == Reschedule(1120, 0, failures=1)


def test_a_pulled_status_naming_another_number_is_no_answer_about_the_message() -> None:
    # A pushed report with another number is held, never applied; a pulled one was applied unchecked.
    store = store_of(record("aliyun"))
    another = DeliveryReport(
        provider=ProviderName.ALIYUN,
        provider_message_id="pm-1",
        status=Status.UNDELIVERED,
        raw_status="2",
        to="+447911123456",
        kind="pulled",
    )
    query = Query("QueryMessage", StatusAnswer(report=another))
    run(store, Clock(SUBMITTED_AT + timedelta(seconds=1200)), {ProviderName.ALIYUN: query})
    assert query.asked == ["B.00000"]
    assert store.messages["B.00000"].status is Status.SUBMITTED  # asked again later, as after a failed query


def test_a_submitted_outcome_gets_its_deadline_and_an_entry() -> None:
    pack = DispatchPack.model_validate(
        {
            "pack_id": "B:aliyun:0",
            "batch_id": "B",
            "provider": "aliyun",
            "created_at": "2026-12-02T10:00:00Z",
            "contents": [{"type": "OTP", "text": "code 1", "validity_seconds": 300}],
            "recipients": [{"id": "B.00000", "to": "+6591234567", "c": 0}],
        }
    )
    submitted = outcome_record(pack, 0, SendOutcome("B.00000", provider_message_id="pm-1"), SUBMITTED_AT, POLICY)
    expected = int(SUBMITTED_AT.timestamp()) + 300 + 600
    assert submitted.receipt_due_at == expected
    refused = SendOutcome("B.00000", error=ProviderError(ErrorCategory.RECIPIENT, "MOBILE_NUMBER_ILLEGAL"))
    failed = outcome_record(pack, 0, refused, SUBMITTED_AT, POLICY)
    assert (failed.status, failed.receipt_due_at) == (Status.FAILED, None)
    assert deadline_entries([submitted, failed]) == [DeadlineEntry(expected, ("B.00000",))]


def test_a_packs_records_each_take_their_own_contents_fields_and_deadline() -> None:
    # outcome_records works out each content once for the whole pack: recipients of two contents, interleaved,
    # each get their own content's text and validity (and so deadline), whatever the order of the outcomes; a
    # recipient's own history, its outcome's status, error and provider id stay its own.
    failover_step = HistoryStep("B.00002.failover", Status.FAILED, "CIRCUIT_OPEN", "2026-12-02T09:59:00Z").to_item()
    pack = DispatchPack.model_validate(
        {
            "pack_id": "B:aliyun:0",
            "batch_id": "B",
            "provider": "aliyun",
            "created_at": "2026-12-02T10:00:00Z",
            "contents": [
                {"type": "OTP", "text": "code 1", "validity_seconds": 300},
                {"type": "NOTIFY", "text": "your parcel", "validity_seconds": 7200},
            ],
            "recipients": [
                {"id": f"B.{i:05d}", "to": f"+659123456{i}", "c": i % 2, "history": [failover_step] if i == 2 else None}
                for i in range(5)
            ],
        }
    )
    unknown = ProviderError(ErrorCategory.UNKNOWN_OUTCOME, "TIMEOUT")
    refused = ProviderError(ErrorCategory.RECIPIENT, "MOBILE_NUMBER_ILLEGAL", "bad number")
    outcomes = [
        (3, SendOutcome("B.00003", provider_message_id="pm-3")),
        (0, SendOutcome("B.00000", provider_message_id="pm-0")),
        (1, SendOutcome("B.00001", error=unknown)),
        (2, SendOutcome("B.00002", provider_message_id="pm-2")),
        (4, SendOutcome("B.00004", error=refused)),
    ]
    records = outcome_records(pack, outcomes, SUBMITTED_AT, POLICY)
    epoch = int(SUBMITTED_AT.timestamp())
    assert [(r.id, r.text, r.type, r.status, r.receipt_due_at, r.provider_message_id) for r in records] == [
        ("B.00003", "your parcel", MessageType.NOTIFY, Status.SUBMITTED, epoch + 7200 + 600, "pm-3"),
        ("B.00000", "code 1", MessageType.OTP, Status.SUBMITTED, epoch + 300 + 600, "pm-0"),
        ("B.00001", "your parcel", MessageType.NOTIFY, Status.SENDING, None, None),
        ("B.00002", "code 1", MessageType.OTP, Status.SUBMITTED, epoch + 300 + 600, "pm-2"),
        ("B.00004", "code 1", MessageType.OTP, Status.FAILED, None, None),
    ]
    by_id = {r.id: r for r in records}
    assert by_id["B.00002"].events == [failover_step]
    assert [(e["id"], e["status"], e["error_code"]) for e in by_id["B.00001"].events or []] == [
        ("sending", "SENDING", "TIMEOUT")
    ]
    assert (by_id["B.00004"].error_category, by_id["B.00004"].error_code) == ("recipient", "MOBILE_NUMBER_ILLEGAL")
    assert all(r.events is None for r in (by_id["B.00000"], by_id["B.00003"], by_id["B.00004"]))
    assert len({r.updated_at for r in records}) == 1 and by_id["B.00003"].submitted_at == by_id["B.00003"].updated_at


def test_a_packs_entries_are_one_per_deadline_in_order() -> None:
    records = [record(id=f"B.{i:05d}", receipt_due_at=2_000 if i % 2 else 1_000) for i in range(5)]
    assert deadline_entries(records) == [
        DeadlineEntry(1_000, ("B.00000", "B.00002", "B.00004")),
        DeadlineEntry(2_000, ("B.00001", "B.00003")),
    ]


# ------------------------------------------------------------------------------------------------ the run


class Query:
    """A scripted status query: answers in order; an exception instance is raised."""

    def __init__(self, operation: str, *answers: StatusAnswer | Exception) -> None:
        self.status_query_operation = operation
        self.answers = list(answers)
        self.asked: list[str] = []

    def query_status(self, record: MessageRecord, *, now: datetime) -> StatusAnswer:
        self.asked.append(record.id)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def run(
    store: MemoryStore,
    clock: Clock,
    queries: dict[ProviderName, Query] | None = None,
    limit: int = 300,
    deadlines: MemoryDeadlines | None = None,
    max_checks: int = 100_000,
) -> tuple[object, MemoryWebhooks, MemoryDeadlines]:
    webhooks, deadlines = MemoryWebhooks(), deadlines or MemoryDeadlines(store)
    deps = ReconcileDeps(
        receipts=store,
        deadlines=deadlines,
        queries=queries or {},
        limiter=MemoryRateLimiter({"QueryMessage": limit, "PullSmsSendStatusByPhoneNumber": limit}),
        webhooks=webhooks,
        clock=clock,
    )
    return reconcile_due(deps, POLICY, max_checks=max_checks), webhooks, deadlines


def store_of(*records: MessageRecord) -> MemoryStore:
    """The records as the dispatcher writes them: with their deadline entries."""
    store = MemoryStore()
    store.put_messages(records, deadline_entries(records))
    return store


def test_nothing_happens_before_the_deadline() -> None:
    store = store_of(record())
    summary, webhooks, _ = run(store, Clock(SUBMITTED_AT + timedelta(seconds=1199)))
    assert store.messages["B.00000"].status is Status.SUBMITTED
    assert webhooks.sent == []
    assert summary.examined == 0  # type: ignore[attr-defined]


def test_a_huawei_message_without_a_receipt_ends_expired_no_receipt_with_its_webhook() -> None:
    store = store_of(record("huawei"))
    run(store, Clock(SUBMITTED_AT + timedelta(seconds=1200)))
    message = store.messages["B.00000"]
    assert (message.status, message.error_code) == (Status.EXPIRED, "NO_RECEIPT")
    assert message.events and message.events[-1]["error_code"] == "NO_RECEIPT"
    _, webhooks, _ = run(store, Clock(SUBMITTED_AT + timedelta(seconds=1300)))
    assert webhooks.sent == []  # settled once


def test_the_expiry_webhook_is_sent() -> None:
    store = store_of(record("huawei"))
    _, webhooks, _ = run(store, Clock(SUBMITTED_AT + timedelta(seconds=1260)))
    assert [d.event.type for d in webhooks.sent] == ["message.expired"]


def test_a_pulled_final_status_is_applied_like_a_receipt() -> None:
    query = Query("QueryMessage", StatusAnswer(report=pulled(Status.DELIVERED)))
    store = store_of(record("aliyun"))
    _, webhooks, _ = run(store, Clock(SUBMITTED_AT + timedelta(seconds=1200)), {ProviderName.ALIYUN: query})
    message = store.messages["B.00000"]
    assert message.status is Status.DELIVERED
    assert message.events and message.events[-1]["type"] == "pulled"
    assert [d.event.type for d in webhooks.sent] == ["message.delivered"]


def test_still_delivering_moves_the_deadline_once_then_the_message_expires() -> None:
    query = Query("QueryMessage", StatusAnswer(pending=True), StatusAnswer(pending=True))
    store = store_of(record("aliyun"))
    clock = Clock(SUBMITTED_AT + timedelta(seconds=1200))
    run(store, clock, {ProviderName.ALIYUN: query})
    assert store.messages["B.00000"].status is Status.SUBMITTED
    assert store.messages["B.00000"].reconcile_tries == 1
    clock.now += timedelta(seconds=899)
    run(store, clock, {ProviderName.ALIYUN: query})
    assert query.asked == ["B.00000"]  # not due again yet
    clock.now += timedelta(seconds=1)
    run(store, clock, {ProviderName.ALIYUN: query})
    assert (store.messages["B.00000"].status, store.messages["B.00000"].error_code) == (Status.EXPIRED, "NO_RECEIPT")


def test_an_unreadable_answer_is_never_a_final_status() -> None:
    query = Query("QueryMessage", *[StatusQueryFailed("MALFORMED_RESPONSE")] * 5)
    store = store_of(record("aliyun"))
    clock = Clock(SUBMITTED_AT + timedelta(seconds=1200))
    for _ in range(5):
        summary, _, _ = run(store, clock, {ProviderName.ALIYUN: query})
        assert store.messages["B.00000"].status is Status.SUBMITTED
        assert summary.retried == 1  # type: ignore[attr-defined]
        clock.now += timedelta(seconds=POLICY.retry_seconds)
    assert store.messages["B.00000"].reconcile_tries in (None, 0)


def test_queries_take_permits_from_the_shared_limiter_and_what_is_left_waits() -> None:
    records = [record("aliyun", id=f"B.{i:05d}") for i in range(5)]  # one deadline: one entry
    store = store_of(*records)
    query = Query("QueryMessage", *[StatusAnswer(report=pulled(Status.DELIVERED))] * 5)
    clock = Clock(SUBMITTED_AT + timedelta(seconds=1200))
    summary, _, deadlines = run(store, clock, {ProviderName.ALIYUN: query}, limit=2)
    assert summary.settled == 2 and summary.throttled >= 1  # type: ignore[attr-defined]
    assert deadlines.mark == (records[0].receipt_due_at or 0) - 1  # the next run reads the entry again
    clock.now += timedelta(seconds=1)
    again, _, _ = run(store, clock, {ProviderName.ALIYUN: query}, limit=3, deadlines=deadlines)
    assert again.settled == 3  # type: ignore[attr-defined]
    assert sorted(query.asked) == [r.id for r in records]  # the two settled first were passed over, not asked again
    assert deadlines.mark == int(clock.now.timestamp())


class Ticking(Clock):
    """The wall clock of a run: each query takes 50 ms, and the run's waits pass as they would."""

    def sleep(self, seconds: float) -> None:
        assert 0 < seconds <= 1
        self.now += timedelta(seconds=seconds)


class TakesTime(Query):
    def __init__(self, clock: Ticking, *answers: StatusAnswer | Exception) -> None:
        super().__init__("PullSmsSendStatusByPhoneNumber", *answers)
        self.clock = clock

    def query_status(self, record: MessageRecord, *, now: datetime) -> StatusAnswer:
        self.clock.now += timedelta(milliseconds=50)
        return super().query_status(record, now=now)


def test_a_run_with_time_left_waits_for_the_next_seconds_permits() -> None:
    # A Tencent pack of 200 whose receipts were lost (one entry), 10 queries a second: one run settles it in about
    # 20 s of its 90. It used to leave the entry after the first second's 10 permits, 10 messages a run (a review).
    records = [record("tencent", id=f"B.{i:05d}", provider_message_id=f"sn-{i}") for i in range(200)]
    store = store_of(*records)
    clock = Ticking(SUBMITTED_AT + timedelta(seconds=1300))
    query = TakesTime(clock, *[StatusAnswer(report=pulled(Status.DELIVERED))] * 200)
    limiter = MemoryRateLimiter({"PullSmsSendStatusByPhoneNumber": 10})
    deps = ReconcileDeps(store, MemoryDeadlines(store), {ProviderName.TENCENT: query}, limiter, MemoryWebhooks(), clock,
                         sleep=clock.sleep)  # fmt: skip
    started = clock.now
    summary = reconcile_due(deps, POLICY, stop_at=started + timedelta(seconds=90))
    assert (summary.settled, summary.throttled) == (200, 0)
    seconds = Counter(second for second, _ in limiter.granted)
    assert max(seconds.values()) == 10 and clock.now - started < timedelta(seconds=25)


def test_a_run_waits_for_permits_only_while_it_has_time() -> None:
    records = [record("tencent", id=f"B.{i:05d}", provider_message_id=f"sn-{i}") for i in range(50)]
    store = store_of(*records)
    clock = Ticking(SUBMITTED_AT + timedelta(seconds=1300))
    query = TakesTime(clock, *[StatusAnswer(report=pulled(Status.DELIVERED))] * 50)
    deadlines = MemoryDeadlines(store)
    deps = ReconcileDeps(store, deadlines, {ProviderName.TENCENT: query},
                         MemoryRateLimiter({"PullSmsSendStatusByPhoneNumber": 10}), MemoryWebhooks(), clock,
                         sleep=clock.sleep)  # fmt: skip
    stop_at = clock.now + timedelta(seconds=2)
    summary = reconcile_due(deps, POLICY, stop_at=stop_at)
    assert 10 <= summary.settled <= 30 and summary.throttled == 1 and clock.now <= stop_at
    assert deadlines.mark == (records[0].receipt_due_at or 0) - 1  # the next run reads the entry again


def tencent_and_alibaba(store: MemoryStore, clock: Ticking, *, alibaba_rate: int) -> tuple[ReconcileDeps, Query, Query]:
    """A run's dependencies with both providers' queries answering DELIVERED (50 ms each), Tencent's at 10 a second,
    the run waiting for permits as the handler's does."""
    answers = [StatusAnswer(report=pulled(Status.DELIVERED))] * 1200
    tencent_query, alibaba_query = TakesTime(clock, *answers), TakesTime(clock, *answers)
    alibaba_query.status_query_operation = "QueryMessage"
    limiter = MemoryRateLimiter({"PullSmsSendStatusByPhoneNumber": 10, "QueryMessage": alibaba_rate})
    queries = {ProviderName.TENCENT: tencent_query, ProviderName.ALIYUN: alibaba_query}
    deps = ReconcileDeps(store, MemoryDeadlines(store), queries, limiter, MemoryWebhooks(), clock, sleep=clock.sleep)
    return deps, tencent_query, alibaba_query


def test_a_backlog_waiting_for_permits_leaves_the_run_to_the_entries_behind_it() -> None:
    # Waiting until the end of the run for Tencent's permits (10 a second), it left the Alibaba entry due next only
    # the last second: 10 of 100 settled (a review). Waits are a third of the run; then the others go on.
    tencent = [record("tencent", id=f"T.{i:05d}", batch_id="T", provider_message_id=f"sn-{i}") for i in range(300)]
    due = (tencent[0].receipt_due_at or 0) + 60  # the next minute
    alibaba = [
        record("aliyun", id=f"A.{i:05d}", batch_id="A", provider_message_id=f"a-{i}", receipt_due_at=due)
        for i in range(100)
    ]
    store = store_of(*tencent, *alibaba)
    clock = Ticking(SUBMITTED_AT + timedelta(seconds=1400))
    deps, tencent_query, _ = tencent_and_alibaba(store, clock, alibaba_rate=300)
    summary = reconcile_due(deps, POLICY, stop_at=clock.now + timedelta(seconds=20))
    deadlines = deps.deadlines
    assert all(store.messages[r.id].status is Status.DELIVERED for r in alibaba)
    assert 10 < len(tencent_query.asked) < 300 and summary.throttled == 1  # asked for no more once it stopped waiting
    assert deadlines.mark == (tencent[0].receipt_due_at or 0) - 1  # the Tencent entry is read again next run


def test_entries_left_for_want_of_permits_use_none_of_the_runs_message_budget() -> None:
    # 1,200 one-message Tencent entries (OTP packs), then an Alibaba one: each entry skipped once Tencent's waits
    # were spent counted as an examined message, the budget (1,000) ran out on them, and the Alibaba entry was left
    # with a third of the run unused (a review). Each operation also waits on its own share.
    base = int(SUBMITTED_AT.timestamp()) + 1200
    tencent = [
        record(
            "tencent",
            id=f"T{i:04d}.00000",
            batch_id=f"T{i:04d}",
            provider_message_id=f"sn-{i}",
            receipt_due_at=base + i,
        )
        for i in range(1200)
    ]
    alibaba = [
        record("aliyun", id=f"A.{i:05d}", batch_id="A", provider_message_id=f"a-{i}", receipt_due_at=base + 1300)
        for i in range(100)
    ]
    store = store_of(*tencent, *alibaba)
    clock = Ticking(SUBMITTED_AT + timedelta(seconds=2600))
    deps, tencent_query, _ = tencent_and_alibaba(store, clock, alibaba_rate=5)  # both must wait
    summary = reconcile_due(deps, POLICY, stop_at=clock.now + timedelta(seconds=90))  # max_messages 1,000
    assert all(store.messages[r.id].status is Status.DELIVERED for r in alibaba)
    # Examined: those asked about, and the one whose permit the run stopped waiting for.
    assert summary.examined == len(tencent_query.asked) + 100 + 1 < 1000


def test_a_query_that_fails_unforeseen_is_a_failed_query_not_a_failed_run() -> None:
    # Raised, it failed every run at the same message: the deadlines behind it, and the sweep of interrupted accepts
    # after them, were never reached (a review: an answer nested too deep for the JSON parser).
    broken = record("aliyun")
    behind = record("huawei", id="B.00001", receipt_due_at=(broken.receipt_due_at or 0) + 60)
    store = store_of(broken, behind)
    query = Query("QueryMessage", RecursionError("maximum recursion depth exceeded"))
    summary, _, _ = run(store, Clock(SUBMITTED_AT + timedelta(seconds=1300)), {ProviderName.ALIYUN: query})
    assert (summary.retried, summary.query_errors) == (1, 1)  # type: ignore[attr-defined]  # the second: its alarm
    assert store.messages["B.00001"].status is Status.EXPIRED
    assert store.messages[broken.id].status is Status.SUBMITTED  # asked again later, as after any failed query


def test_a_run_that_reads_its_budget_of_records_leaves_the_rest_for_the_next() -> None:
    first = [record("huawei", id=f"B.{i:05d}") for i in range(3)]
    later = [
        record("huawei", id=f"C.{i:05d}", batch_id="C", receipt_due_at=(r.receipt_due_at or 0) + 90)
        for i, r in enumerate(first)
    ]
    store = store_of(*first, *later)
    clock = Clock(SUBMITTED_AT + timedelta(seconds=1400))
    summary, _, deadlines = run(store, clock, max_checks=3)
    assert summary.expired == 3  # type: ignore[attr-defined]
    assert deadlines.mark is not None and deadlines.mark < (later[0].receipt_due_at or 0)
    again, _, _ = run(store, clock, deadlines=deadlines)
    assert again.expired == 3  # type: ignore[attr-defined]
    assert {m.status for m in store.messages.values()} == {Status.EXPIRED}


def test_a_run_out_of_time_starts_no_entry_and_keeps_its_watermark() -> None:
    store = store_of(record("huawei"))
    clock = Clock(SUBMITTED_AT + timedelta(seconds=1200))
    deadlines = MemoryDeadlines(store)
    deadlines.mark = int(SUBMITTED_AT.timestamp())
    webhooks = MemoryWebhooks()
    deps = ReconcileDeps(store, deadlines, {}, MemoryRateLimiter({}), webhooks, clock)
    summary = reconcile_due(deps, POLICY, stop_at=clock.now)  # the function's time is up already
    assert (summary.checked, store.messages["B.00000"].status) == (0, Status.SUBMITTED)
    assert deadlines.mark == int(SUBMITTED_AT.timestamp())  # the next run starts where this one did
    assert reconcile_due(deps, POLICY, stop_at=clock.now + timedelta(seconds=60)).expired == 1


def test_a_late_real_receipt_beats_expired_no_receipt_and_sends_its_webhook() -> None:
    store = store_of(record("huawei"))
    run(store, Clock(SUBMITTED_AT + timedelta(seconds=1200)))
    late = DeliveryReport(
        provider=ProviderName.HUAWEI,
        provider_message_id="pm-1",
        status=Status.DELIVERED,
        raw_status="DELIVRD",
        provider_time="2026-12-02T10:30:00Z",
    )
    result = record_push([late], store=store, now=SUBMITTED_AT + timedelta(hours=1))
    message = store.messages["B.00000"]
    assert message.status is Status.DELIVERED
    assert message.error_code is None
    assert [d.event.type for d in result.webhooks] == ["message.delivered"]
    # ... and once it is a real final status, nothing changes it any more.
    undelivered = DeliveryReport(
        provider=ProviderName.HUAWEI, provider_message_id="pm-1", status=Status.UNDELIVERED, raw_status="UNDELIV"
    )
    record_push([undelivered], store=store, now=SUBMITTED_AT + timedelta(hours=2))
    assert store.messages["B.00000"].status is Status.DELIVERED


def test_a_late_carrier_expired_receipt_puts_its_error_in_place_of_no_receipt() -> None:
    store = store_of(record("huawei"))
    run(store, Clock(SUBMITTED_AT + timedelta(seconds=1200)))
    late = DeliveryReport(
        provider=ProviderName.HUAWEI,
        provider_message_id="pm-1",
        status=Status.EXPIRED,
        raw_status="EXPIRED",
        error_code="EXPIRED",
        description="validity period expired at the SMSC",
        provider_time="2026-12-02T10:30:00Z",
    )
    result = record_push([late], store=store, now=SUBMITTED_AT + timedelta(hours=1))
    message = store.messages["B.00000"]
    assert message.status is Status.EXPIRED
    assert (message.error_category, message.error_code, message.error_message) == (
        "recipient",
        "EXPIRED",
        "validity period expired at the SMSC",
    )
    assert [e.get("error_code") for e in message.events or []][-2:] == ["NO_RECEIPT", "EXPIRED"]  # both kept
    assert result.webhooks == []  # the customer has message.expired already (its id: the message's and status's)


def test_a_real_expired_receipt_is_not_the_exception() -> None:
    expired = DeliveryReport(
        provider=ProviderName.HUAWEI, provider_message_id="pm-1", status=Status.EXPIRED, raw_status="EXPIRED"
    )
    store = store_of(record("huawei"))
    record_push([expired], store=store, now=SUBMITTED_AT)
    late = DeliveryReport(
        provider=ProviderName.HUAWEI, provider_message_id="pm-1", status=Status.DELIVERED, raw_status="DELIVRD"
    )
    record_push([late], store=store, now=SUBMITTED_AT + timedelta(hours=1))
    assert store.messages["B.00000"].status is Status.EXPIRED


def test_a_receipt_that_comes_first_wins_over_the_expiry() -> None:
    store = store_of(record("huawei"))
    delivered = DeliveryReport(
        provider=ProviderName.HUAWEI, provider_message_id="pm-1", status=Status.DELIVERED, raw_status="DELIVRD"
    )
    record_push([delivered], store=store, now=SUBMITTED_AT)
    summary, webhooks, _ = run(store, Clock(SUBMITTED_AT + timedelta(seconds=1200)))
    assert store.messages["B.00000"].status is Status.DELIVERED
    assert webhooks.sent == [] and summary.expired == 0  # type: ignore[attr-defined]


def test_a_runs_final_answers_are_handed_to_the_route_statistics_once() -> None:
    query = Query("QueryMessage", StatusAnswer(report=pulled(Status.DELIVERED)))
    store = store_of(record("aliyun"), record("huawei", id="B.00001"))
    at = SUBMITTED_AT + timedelta(seconds=1200)
    summary, _, _ = run(store, Clock(at), {ProviderName.ALIYUN: query})
    finals = summary.finals  # type: ignore[attr-defined]
    assert sorted((m.id, m.status) for m in finals) == [("B.00000", Status.DELIVERED), ("B.00001", Status.EXPIRED)]
    tallies = tally_outcomes(finals, at)
    assert sorted((k.provider, t.delivered, t.expired) for k, t in tallies.items()) == [
        (ProviderName.ALIYUN, 1, 0),
        (ProviderName.HUAWEI, 0, 1),
    ]
    again, _, _ = run(store, Clock(at + timedelta(seconds=60)), {ProviderName.ALIYUN: query})
    assert again.finals == []  # type: ignore[attr-defined]


def test_a_runs_outcomes_by_provider_keep_pulled_answers_apart_from_missing_receipts() -> None:
    """A pulled answer is the carrier's outcome (the delivery-rate alarms); an expiry for want of any says the
    provider's receipts are missing (`ReceiptsMissing`), never that a carrier failed to deliver."""
    query = Query(
        "QueryMessage", StatusAnswer(report=pulled(Status.DELIVERED)), StatusAnswer(report=pulled(Status.UNDELIVERED))
    )
    store = store_of(record("aliyun"), record("aliyun", id="B.00001"), record("huawei", id="B.00002"))
    summary, _, _ = run(store, Clock(SUBMITTED_AT + timedelta(seconds=1200)), {ProviderName.ALIYUN: query})
    assert summary.outcomes_by_provider() == {  # type: ignore[attr-defined]
        ProviderName.ALIYUN: ProviderOutcomes(delivered=1, undelivered=1, receipts_missing=0),
        ProviderName.HUAWEI: ProviderOutcomes(delivered=0, undelivered=0, receipts_missing=1),
    }


def test_a_late_receipt_after_the_expiry_changes_the_message_and_is_not_counted_again() -> None:
    store = store_of(record("huawei"))
    at = SUBMITTED_AT + timedelta(seconds=1200)
    summary, _, _ = run(store, Clock(at))
    assert [m.status for m in summary.finals] == [Status.EXPIRED]  # type: ignore[attr-defined]
    late = DeliveryReport(
        provider=ProviderName.HUAWEI, provider_message_id="pm-1", status=Status.DELIVERED, raw_status="DELIVRD"
    )
    pushed = record_push([late], store=store, now=at + timedelta(seconds=60))
    assert store.messages["B.00000"].status is Status.DELIVERED
    assert (pushed.finals, pushed.delivered) == ([], 1)  # one outcome per message in the route statistics


class FailsOnSecondWrite(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def save_delivery(self, record: MessageRecord, *, expected_version: int) -> bool:
        self.writes += 1
        if self.writes > 1:
            raise OSError("DynamoDB unavailable")
        return super().save_delivery(record, expected_version=expected_version)


def test_a_run_that_fails_midway_still_queues_the_events_and_hands_over_the_outcomes_it_settled() -> None:
    records = [record("huawei"), record("huawei", id="B.00001")]
    store = FailsOnSecondWrite()
    store.put_messages(records, deadline_entries(records))
    webhooks, summary = MemoryWebhooks(), ReconcileSummary()
    deps = ReconcileDeps(
        receipts=store,
        deadlines=MemoryDeadlines(store),
        queries={},
        limiter=MemoryRateLimiter({}),
        webhooks=webhooks,
        clock=Clock(SUBMITTED_AT + timedelta(seconds=1200)),
    )
    with pytest.raises(OSError):
        reconcile_due(deps, POLICY, summary=summary)
    (expired,) = [m for m in store.messages.values() if m.status is Status.EXPIRED]
    assert [d.event.id for d in webhooks.sent] == [f"{expired.id}.expired"]  # its customer still hears of it
    assert [m.id for m in summary.finals] == [expired.id]  # and the caller counts it: the next run will not


class PushedMeanwhile(Query):
    """The provider's late push is applied while the run's status query is under way."""

    def __init__(self, store: MemoryStore, *answers: StatusAnswer) -> None:
        super().__init__("QueryMessage", *answers)
        self.store = store
        self.push_finals: list[MessageRecord] = []

    def query_status(self, record: MessageRecord, *, now: datetime) -> StatusAnswer:
        pushed = DeliveryReport(
            provider=ProviderName.ALIYUN, provider_message_id="pm-1", status=Status.DELIVERED, raw_status="1"
        )
        self.push_finals = record_push([pushed], store=self.store, now=now).finals
        return super().query_status(record, now=now)


def test_an_outcome_a_late_push_settled_during_the_run_is_counted_by_the_push_alone() -> None:
    store = store_of(record("aliyun"))
    query = PushedMeanwhile(store, StatusAnswer(report=pulled(Status.DELIVERED)))
    summary, _, _ = run(store, Clock(SUBMITTED_AT + timedelta(seconds=1200)), {ProviderName.ALIYUN: query})
    assert store.messages["B.00000"].status is Status.DELIVERED
    assert [m.status for m in query.push_finals] == [Status.DELIVERED]
    assert summary.finals == []  # type: ignore[attr-defined]  # the push's write moved it, and counted it


def test_a_query_that_keeps_failing_still_ends_the_message_some_day() -> None:
    # e.g. the RAM user may send but not call QueryMessage (Forbidden.RAM, a gateway `Code`), or an endpoint that
    # answers HTML: StatusQueryFailed on every try
    query = Query("QueryMessage", *[StatusQueryFailed("Forbidden.RAM")] * 10_000)
    store = store_of(record("aliyun"))
    clock = Clock(SUBMITTED_AT + timedelta(seconds=1200))
    deadlines = MemoryDeadlines(store)
    for _ in range(2 * 24 * 30):  # every minute for a day
        run(store, clock, {ProviderName.ALIYUN: query}, deadlines=deadlines)
        clock.now += timedelta(seconds=60)
    message = store.messages["B.00000"]
    # Asked every 2 minutes, max_query_failures times in a row (an hour), then ended as without a query.
    assert message.status is Status.EXPIRED and message.error_code == "NO_RECEIPT"
    assert 25 <= len(query.asked) <= 35


class AlwaysFails:
    status_query_operation = "QueryMessage"

    def query_status(self, record, *, now):  # type: ignore[no-untyped-def]
        raise StatusQueryFailed("Forbidden.RAM")


def test_messages_whose_queries_keep_failing_do_not_hold_back_everyone_elses_deadlines() -> None:
    from globesms.reconcile.deadline import deadline_entries
    from globesms.reconcile.service import ReconcileDeps, reconcile_due
    from tests.fakes import MemoryRateLimiter, MemoryWebhooks

    stuck = [record("aliyun", id=f"A{k}.{i:05d}", batch_id=f"A{k}") for k in range(3) for i in range(1000)]
    due = int(SUBMITTED_AT.timestamp()) + 1200
    huawei = record("huawei", id="H.00000", batch_id="H", receipt_due_at=due + 3600)
    store = MemoryStore()
    for k in range(3):
        store.put_messages(stuck[k * 1000 : (k + 1) * 1000], deadline_entries(stuck[k * 1000 : (k + 1) * 1000]))
    store.put_messages([huawei], deadline_entries([huawei]))
    deadlines = MemoryDeadlines(store)
    clock = Clock(SUBMITTED_AT + timedelta(seconds=1200))
    deps = ReconcileDeps(
        receipts=store,
        deadlines=deadlines,
        queries={ProviderName.ALIYUN: AlwaysFails()},
        limiter=MemoryRateLimiter({"QueryMessage": 10**6}),
        webhooks=MemoryWebhooks(),
        clock=clock,
    )
    for _minute in range(3 * 60):  # a run a minute for 3 hours (the default budget: 1,000 messages a run)
        reconcile_due(deps, POLICY, max_messages=1000)
        clock.now += timedelta(seconds=60)
        if store.messages["H.00000"].status is Status.EXPIRED:
            break
    late = (clock.now.timestamp() - (due + 3600)) / 60
    assert store.messages["H.00000"].status is Status.EXPIRED and late < 10


def test_a_takeovers_entry_comes_after_a_run_that_started_meanwhile() -> None:
    # The takeover writes its entry seconds after its invocation began; a run that started in between has moved the
    # watermark past that start: an entry dated then was never read.
    from tests.fakes import MemoryClaims
    from tests.unit import test_dispatch as td

    store, claims, provider = td.EntriesLost(), MemoryClaims(), td.ScriptedProvider()
    with pytest.raises(RuntimeError):
        td.run(td.pack(1), provider, store, claims)
    store.fail = False
    takeover = td.NOW + timedelta(hours=1)  # past the OTP's deadline
    deadlines = MemoryDeadlines(store)
    clock = Clock(takeover + timedelta(seconds=1))
    run(store, clock, deadlines=deadlines)  # the run that started in between
    td.run(td.pack(1), provider, store, claims, now=takeover, clock=lambda: clock.now.timestamp())
    for _ in range(3):
        clock.now += timedelta(seconds=60)
        run(store, clock, deadlines=deadlines)
    assert store.messages["B.00000"].status is not Status.SUBMITTED


def test_the_failed_queries_count_from_the_first_failure_however_late_the_run_reached_it() -> None:
    late = record("aliyun")
    now = (late.receipt_due_at or 0) + 2 * 3600  # a backlog, a stopped run: first reached two hours late
    assert retry(late, now, POLICY) == Reschedule(now + POLICY.retry_seconds, 0, failures=1)
    worn = late.model_copy(update={"query_failures": POLICY.max_query_failures})
    assert retry(worn, now, POLICY) == Expire()


def test_a_query_that_cannot_be_made_takes_no_permit_and_its_backlog_is_given_up_within_the_hour() -> None:
    """An unavailable query (missing credentials, an invalid GLOBESMS_RATE_LIMITS) calls nobody. Taking a permit for
    each try, a backlog of 200 Tencent messages (10 permits a second) still had 180 waiting after 90 minutes (a
    review found it): the hour the docs promise held for a handful only."""
    records = [record("tencent", id=f"B.{i:05d}") for i in range(200)]
    store = store_of(*records)
    deadlines, limiter = MemoryDeadlines(store), MemoryRateLimiter({"PullSmsSendStatusByPhoneNumber": 10})
    clock = Clock(SUBMITTED_AT + timedelta(seconds=1200))
    unavailable = UnavailableQuery("PullSmsSendStatusByPhoneNumber", "GLOBESMS_RATE_LIMITS is invalid")
    for _ in range(70):  # a run a minute
        deps = ReconcileDeps(
            receipts=store,
            deadlines=deadlines,
            queries={ProviderName.TENCENT: unavailable},
            limiter=limiter,
            webhooks=MemoryWebhooks(),
            clock=clock,
        )
        reconcile_due(deps, POLICY, max_checks=100_000)
        clock.now += timedelta(seconds=60)
    assert [m.status for m in store.messages.values() if m.status is Status.SUBMITTED] == []
    assert limiter.granted == []  # nobody called: no permit taken
