import itertools
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from globesms.accept.queries import message_view
from globesms.dispatch.failover import reroute
from globesms.dispatch.service import DispatchDeps, dispatch_pack
from globesms.dispatch.summary import DispatchSummary
from globesms.domain.history import RECEIPT_FAILOVER_STEP as RESEND_STEP
from globesms.domain.history import HistoryStep
from globesms.domain.status import Status
from globesms.errors import ErrorCategory, ProviderError
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.packs import DispatchPack
from globesms.models.receipts import DeliveryReport, EchoRange, HeldReceipts
from globesms.models.records import MessageRecord
from globesms.providers.huawei import receipts as huawei_receipts
from globesms.providers.tencent import receipts as tencent
from globesms.receipts.apply import PushResult, apply_held_receipts, record_push
from globesms.receipts.failover import resend_pack
from globesms.receipts.implied_status import implied_status, status_after
from globesms.stats.ports import MemoryRouteStats
from tests.fakes import (
    MemoryClaims,
    MemoryQueues,
    MemoryStore,
    MemoryWebhooks,
    ScriptedProvider,
)

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
CALLBACK = "https://hooks.example.com/sms"


def message(status: Status = Status.SUBMITTED, pmid: str | None = "pm-B.00000", **extra: object) -> MessageRecord:
    return MessageRecord.model_validate(
        {
            "id": "B.00000",
            "batch_id": "B",
            "to": "+85251234567",
            "provider": "huawei",
            "type": "NOTIFY",
            "status": status,
            "template_id": "1",
            "provider_message_id": pmid,
            "status_callback": CALLBACK,
            "created_at": "2026-11-26T09:59:00Z",
            "updated_at": "2026-11-26T09:59:00Z",
            "submitted_at": "2026-11-26T09:59:01Z" if status is Status.SUBMITTED else None,
            **extra,
        }
    )


def report(
    status: Status | None = Status.DELIVERED,
    raw: str = "DELIVRD",
    pmid: str = "pm-B.00000",
    echo: EchoRange | None = None,
    part: int | None = None,
    parts: int | None = None,
    time: str = "2026-11-26T10:00:00Z",
) -> DeliveryReport:
    return DeliveryReport(
        provider=ProviderName.HUAWEI,
        provider_message_id=pmid,
        status=status,
        raw_status=raw,
        error_code=None if status is Status.DELIVERED else raw,
        to="+85251234567",
        echo=echo,
        provider_time=time,
        part=part,
        parts=parts,
    )


def huawei_pack() -> DispatchPack:
    """One Huawei template message to B.00000, with a status callback."""
    return DispatchPack.model_validate(
        {
            "pack_id": "B:huawei:0",
            "batch_id": "B",
            "provider": "huawei",
            "created_at": "2026-11-26T09:59:00Z",
            "contents": [{"type": "NOTIFY", "template_id": "1", "status_callback": CALLBACK}],
            "recipients": [{"id": "B.00000", "to": "+85251234567", "c": 0}],
        }
    )


def store_with(record: MessageRecord) -> MemoryStore:
    store = MemoryStore()
    store.messages[record.id] = record
    return store


def test_a_receipt_naming_a_message_with_another_number_changes_nothing() -> None:
    """A provider's message ids are not secret (every message view and event shows them): a report carrying one
    with another number is about some other send. Until 2026-12-06 it moved the message (an OTP's UNDELIVERED could
    start a failover resend: a second paid SMS). A number the parser could not write as E.164 proves nothing."""
    store = store_with(message())
    other = replace(report(Status.UNDELIVERED, "UNDELIV"), to="+6591234567")
    result = record_push([other], store=store, now=NOW)
    assert (result.wrong_number, result.applied, result.held, result.webhooks) == (1, 0, 0, [])
    assert store.messages["B.00000"].status is Status.SUBMITTED
    assert not store.held  # nor kept to be applied later
    unreadable = replace(report(Status.UNDELIVERED, "UNDELIV"), to="0912 345")
    assert record_push([unreadable], store=store, now=NOW).applied == 1
    assert store.messages["B.00000"].status is Status.UNDELIVERED


def test_a_receipt_moves_a_submitted_message_to_its_final_status_and_keeps_the_raw_values() -> None:
    store = store_with(message())
    result = record_push([report(Status.UNDELIVERED, "UNDELIV")], store=store, now=NOW)
    record = store.messages["B.00000"]
    assert (result.applied, record.status, record.error_code) == (1, Status.UNDELIVERED, "UNDELIV")
    assert record.events is not None and record.events[0]["raw_status"] == "UNDELIV"
    assert [d.event.id for d in result.webhooks] == ["B.00000.undelivered"]
    assert result.webhooks[0].event.type == "message.undelivered"
    assert result.webhooks[0].url == CALLBACK


def test_a_repeated_receipt_changes_nothing_but_is_acknowledged_and_its_event_requeued() -> None:
    store = store_with(message())
    record_push([report()], store=store, now=NOW)
    again = record_push([report()], store=store, now=NOW)
    record = store.messages["B.00000"]
    assert (again.applied, again.duplicates, record.version) == (0, 1, 1)
    assert len(record.events or []) == 1
    assert [d.event.id for d in again.webhooks] == ["B.00000.delivered"]  # same id: the receiver dedupes


def test_a_final_status_is_never_overwritten_by_a_later_receipt() -> None:
    store = store_with(message())
    record_push([report(Status.DELIVERED, "DELIVRD")], store=store, now=NOW)
    later = record_push([report(Status.UNDELIVERED, "UNDELIV", time="2026-11-26T10:05:00Z")], store=store, now=NOW)
    record = store.messages["B.00000"]
    assert record.status is Status.DELIVERED
    assert len(record.events or []) == 2  # still kept in the history
    assert later.webhooks == []


def test_an_intermediate_report_is_history_only() -> None:
    store = store_with(message())
    result = record_push([report(None, "ACCEPTD")], store=store, now=NOW)
    assert store.messages["B.00000"].status is Status.SUBMITTED
    assert result.applied == 1 and result.webhooks == []


def test_a_receipt_before_the_submitted_write_is_held_and_applied_by_dispatch() -> None:
    store = store_with(message(status=Status.ACCEPTED, pmid=None))
    early = record_push([report(echo=EchoRange("B", 0, 0))], store=store, now=NOW)
    assert (early.held, store.messages["B.00000"].status) == (1, Status.ACCEPTED)

    pack = huawei_pack()
    webhooks = MemoryWebhooks()
    provider = ScriptedProvider(name=ProviderName.HUAWEI)
    deps = DispatchDeps(
        provider=provider,
        store=store,
        claims=MemoryClaims(),
        queues=MemoryQueues(),
        receipts=store,
        webhooks=webhooks,
    )
    dispatch_pack(pack, deps, now=NOW, last_attempt=False)
    assert store.messages["B.00000"].status is Status.DELIVERED
    assert [d.event.id for d in webhooks.sent] == ["B.00000.delivered"]


def held_then_dispatched(route_stats: MemoryRouteStats, store: MemoryStore | None = None) -> DispatchSummary:
    """B.00000's DELIVERED receipt held before its SUBMITTED write, then its pack dispatched with `route_stats`."""
    store = store or MemoryStore()
    store.messages["B.00000"] = message(status=Status.ACCEPTED, pmid=None)
    record_push([report(echo=EchoRange("B", 0, 0))], store=store, now=NOW)
    return dispatch_huawei_pack(store, route_stats)


def test_the_outcome_of_a_receipt_dispatch_applies_is_counted_in_the_route_statistics() -> None:
    # A fast provider's receipt can reach the receipts handler before dispatch writes SUBMITTED; dispatch makes the
    # message final then, and the route statistics count it as they count a pushed one (once: the push held it).
    route_stats = MemoryRouteStats()
    summary = held_then_dispatched(route_stats)
    ((key, tally),) = route_stats.rows.items()
    assert (key.country, key.provider, key.message_type) == ("HK", ProviderName.HUAWEI, MessageType.NOTIFY)
    assert (tally.delivered, tally.outcomes, route_stats.updates) == (1, 1, 1)
    assert (summary.delivered, summary.undelivered, summary.route_stats_not_written) == (1, 0, 0)  # metrics too


class HandlerAppliesFirst(MemoryStore):
    """The receipts handler, having held the receipt, reads the record again just after the dispatcher's SUBMITTED
    write and applies the receipt itself, before the dispatcher looks for what was held."""

    def __init__(self) -> None:
        super().__init__()
        self.pushes: list[PushResult] = []

    def held_receipts(
        self, provider: ProviderName, message_ids: Sequence[str], provider_message_ids: Sequence[str]
    ) -> HeldReceipts:
        if not self.pushes:
            self.pushes.append(record_push([report(echo=EchoRange("B", 0, 0))], store=self, now=NOW))
        return super().held_receipts(provider, message_ids, provider_message_ids)


def test_a_held_receipt_both_the_handler_and_dispatch_apply_is_counted_once() -> None:
    store, route_stats = HandlerAppliesFirst(), MemoryRouteStats()
    summary = held_then_dispatched(route_stats, store)
    assert store.messages["B.00000"].status is Status.DELIVERED
    ((handler_push,),) = [store.pushes]
    # The handler's write moved it: counted there (statistics and metrics); dispatch found that write: not again.
    assert ([r.status for r in handler_push.finals], handler_push.delivered) == ([Status.DELIVERED], 1)
    assert (route_stats.rows, summary.delivered) == ({}, 0)


class DispatchAppliesFirst(MemoryStore):
    """The dispatcher writes SUBMITTED and applies the held receipt between the handler's hold and its re-read."""

    def __init__(self, route_stats: MemoryRouteStats) -> None:
        super().__init__()
        self.route_stats = route_stats
        self.dispatched: list[DispatchSummary] = []

    def hold_receipt(self, *args: Any, **kwargs: Any) -> bool:
        held = super().hold_receipt(*args, **kwargs)
        if not self.dispatched:
            self.dispatched.append(dispatch_huawei_pack(self, self.route_stats))
        return held


def test_a_held_receipt_dispatch_applies_before_the_handlers_re_read_is_counted_once() -> None:
    route_stats = MemoryRouteStats()
    store = DispatchAppliesFirst(route_stats)
    store.messages["B.00000"] = message(status=Status.ACCEPTED, pmid=None)
    pushed = record_push([report(echo=EchoRange("B", 0, 0))], store=store, now=NOW)
    assert store.messages["B.00000"].status is Status.DELIVERED
    (dispatched,) = store.dispatched
    assert (dispatched.delivered, sum(t.delivered for t in route_stats.rows.values())) == (1, 1)
    assert (pushed.finals, pushed.delivered) == ([], 0)  # the handler's re-read found dispatch's write


def test_a_failed_route_statistics_write_never_fails_the_pack() -> None:
    class Down(MemoryRouteStats):
        def add(self, tallies: object) -> None:
            raise OSError("down")

    summary = held_then_dispatched(Down())
    assert (summary.submitted, summary.route_stats_not_written) == (0, 1)


class HeldLookupCounter(MemoryStore):
    """Counts the held receipts dispatch looks for (`held_receipts` calls)."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def held_receipts(
        self, provider: ProviderName, message_ids: Sequence[str], provider_message_ids: Sequence[str]
    ) -> HeldReceipts:
        self.lookups += 1
        return super().held_receipts(provider, message_ids, provider_message_ids)


def dispatch_huawei_pack(store: MemoryStore, route_stats: MemoryRouteStats | None = None) -> DispatchSummary:
    deps = DispatchDeps(
        provider=ScriptedProvider(name=ProviderName.HUAWEI),
        store=store,
        claims=MemoryClaims(),
        queues=MemoryQueues(),
        receipts=store,
        webhooks=MemoryWebhooks(),
        route_stats=route_stats,
    )
    return dispatch_pack(huawei_pack(), deps, now=NOW, last_attempt=False)


@pytest.mark.parametrize(
    ("marks", "looked_for"),
    [
        ({}, False),  # nothing was ever held
        ({"OTHER": 2_000_000_000}, False),  # only another batch's receipts
        ({"@tencent": 2_000_000_000}, False),  # another provider's unknown receipts
        ({"B": int(NOW.timestamp()) - 3600}, False),  # B's, but from before its pack could have been sent
        ({"B": int(NOW.timestamp())}, True),
        ({"@huawei": int(NOW.timestamp())}, True),  # Huawei's for a message it could not name: maybe B's
    ],
)
def test_dispatch_looks_for_held_receipts_only_when_one_can_be_there(marks: dict[str, int], looked_for: bool) -> None:
    store = HeldLookupCounter()
    store.messages["B.00000"] = message(status=Status.ACCEPTED, pmid=None)
    store.hold_marks.update(marks)

    dispatch_huawei_pack(store)

    assert store.messages["B.00000"].status is Status.SUBMITTED
    assert store.lookups == int(looked_for)


def test_a_receipt_held_before_the_submitted_write_raises_the_mark_dispatch_reads() -> None:
    store = HeldLookupCounter()
    store.messages["B.00000"] = message(status=Status.ACCEPTED, pmid=None)
    record_push([report(echo=EchoRange("B", 0, 0))], store=store, now=NOW)
    assert set(store.hold_marks) == {"B"}

    dispatch_huawei_pack(store)

    assert store.lookups == 1
    assert store.messages["B.00000"].status is Status.DELIVERED


@pytest.mark.parametrize("spelled", ["msg:B.00000", "B.00000"])  # the key receipts held for a message had; its id
def test_a_provider_id_spelled_like_our_message_id_does_not_settle_that_message(spelled: str) -> None:
    # A receipt-token holder knows our message ids (they are in every webhook event), not the provider's.
    store = store_with(message(status=Status.ACCEPTED, pmid=None))  # accepted (scheduled, say), not sent yet
    forged = replace(report(Status.DELIVERED, "DELIVRD"), provider_message_id=spelled, to=None)
    assert record_push([forged], store=store, now=NOW).unmatched == 1  # no echo, no number: it names nobody

    dispatch_huawei_pack(store)  # the real send: SUBMITTED with provider id pm-B.00000

    record = store.messages["B.00000"]
    assert (record.status, record.provider_message_id) == (Status.SUBMITTED, "pm-B.00000")


def test_a_receipt_held_for_a_message_with_another_provider_id_is_not_applied_to_its_send() -> None:
    store = store_with(message(status=Status.ACCEPTED, pmid=None))
    early = record_push([report(pmid="pm-another-send", echo=EchoRange("B", 0, 0))], store=store, now=NOW)
    assert early.held == 1  # echo and number name the message: held for it

    dispatch_huawei_pack(store)  # the send got pm-B.00000: the held receipt is about something else

    record = store.messages["B.00000"]
    assert (record.status, record.provider_message_id) == (Status.SUBMITTED, "pm-B.00000")


def test_a_receipt_for_an_unknown_id_is_kept_for_reconciliation() -> None:
    store = MemoryStore()
    result = record_push([report(pmid="somebody-else")], store=store, now=NOW)
    assert result.unmatched == 1
    assert store.held[(ProviderName.HUAWEI, "somebody-else")][0]["raw_status"] == "DELIVRD"
    again = record_push([report(pmid="somebody-else")], store=store, now=NOW)
    assert again.duplicates == 1
    assert result.matched == again.matched == 0  # no evidence our messages' receipts reach us (ReceiptsPushed)


def test_every_receipt_that_finds_one_of_our_messages_is_matched_repeats_and_early_ones_included() -> None:
    store = store_with(message(status=Status.ACCEPTED, pmid=None))
    early = record_push([report(pmid="pm-B.00000", echo=EchoRange("B", 0, 0))], store=store, now=NOW)
    assert (early.held, early.matched) == (1, 1)
    dispatch_huawei_pack(store)  # SUBMITTED with pm-B.00000: the held receipt applied there
    repeat = record_push([report(pmid="pm-B.00000")], store=store, now=NOW)
    assert (repeat.duplicates, repeat.matched) == (1, 1)


def test_an_unknown_outcome_is_settled_by_its_receipt_through_the_echo() -> None:
    store = store_with(message(status=Status.SENDING, pmid=None))
    result = record_push([report(pmid="pm-late", echo=EchoRange("B", 0, 499))], store=store, now=NOW)
    record = store.messages["B.00000"]
    assert (result.applied, record.status, record.provider_message_id) == (1, Status.DELIVERED, "pm-late")


@pytest.mark.parametrize(
    "other_call",
    [
        {"status": Status.SUBMITTED, "provider_message_id": "pm-other"},  # sent by another call: its own id
        {"status": Status.SENDING, "provider_message_id": None, "provider": "tencent"},  # another provider's
    ],
)
def test_an_echo_range_skips_the_numbers_messages_that_cannot_be_the_reports(other_call: dict[str, object]) -> None:
    # Two specs of a request may text one number; Huawei's waves (a repeated number opens a new call) and
    # Alibaba's groups (type, sender id, validity) interleave calls, so a lower id from the call's first on may
    # be another call's message.
    store = MemoryStore()
    store.messages["B.00001"] = message(id="B.00001", **other_call)
    store.messages["B.00002"] = message(status=Status.SENDING, pmid=None, id="B.00002")
    result = record_push([report(pmid="pm-late", echo=EchoRange("B", 0, 499))], store=store, now=NOW)
    mine, other = store.messages["B.00002"], store.messages["B.00001"]
    assert (result.applied, mine.status, mine.provider_message_id) == (1, Status.DELIVERED, "pm-late")
    assert other.status is other_call["status"] and other.events is None


def test_a_parts_first_final_report_stands_as_a_one_part_messages_does() -> None:
    # A stale UNDELIVERED for a part already reported delivered failed the whole message (and could resend an OTP
    # that was delivered, through the receipt failover).
    events = [
        {"id": f"r{n}", "type": "receipt", "status": status.value, "part": part, "parts": 2}
        for n, (status, part) in enumerate([(Status.DELIVERED, 1), (Status.UNDELIVERED, 1), (Status.DELIVERED, 2)])
    ]
    assert implied_status(events) is Status.DELIVERED
    assert implied_status([events[1], events[0], events[2]]) is Status.UNDELIVERED  # its first said UNDELIVERED


def test_a_long_message_is_delivered_when_all_its_parts_are() -> None:
    store = store_with(message())
    record_push([report(part=2, parts=2)], store=store, now=NOW)
    assert store.messages["B.00000"].status is Status.SUBMITTED
    record_push([report(part=1, parts=2)], store=store, now=NOW)
    assert store.messages["B.00000"].status is Status.DELIVERED


class CountingStore(MemoryStore):
    """Counts the lookups a push makes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def message_id_for_provider_ref(self, provider: ProviderName, provider_message_id: str) -> str | None:
        self.calls.append("index")
        return super().message_id_for_provider_ref(provider, provider_message_id)

    def message_for_provider_ref(self, provider: ProviderName, provider_message_id: str) -> MessageRecord | None:
        self.calls.append("index+read")
        return super().message_for_provider_ref(provider, provider_message_id)

    def read_messages(self, message_ids: Sequence[str]) -> dict[str, MessageRecord]:
        self.calls.append(f"read {len(message_ids)}")
        return super().read_messages(message_ids)

    def reload(self, message_id: str) -> MessageRecord | None:
        self.calls.append("reload")
        return super().reload(message_id)


def ten_messages(store: MemoryStore) -> None:
    for seq in range(10):
        store.messages[f"B.{seq:05d}"] = message(
            pmid=f"pm-{seq}", id=f"B.{seq:05d}", to=f"+852512345{seq:02d}", version=1
        )


def test_a_push_reads_the_messages_it_names_in_one_request() -> None:
    store = CountingStore()
    ten_messages(store)
    reports = [replace(report(pmid=f"pm-{seq}"), to=f"+852512345{seq:02d}") for seq in range(10)]
    result = record_push(reports, store=store, now=NOW)
    assert result.applied == 10
    assert store.calls == ["index"] * 10 + ["read 10"]
    assert {m.status for m in store.messages.values()} == {Status.DELIVERED}


def test_a_report_whose_echo_names_its_message_needs_no_index_lookup() -> None:
    store = CountingStore()
    ten_messages(store)
    reports = [
        replace(report(pmid=f"pm-{seq}", echo=EchoRange("B", seq, seq)), to=f"+852512345{seq:02d}") for seq in range(10)
    ]
    assert record_push(reports, store=store, now=NOW).applied == 10
    assert store.calls == ["read 10"]
    assert {m.status for m in store.messages.values()} == {Status.DELIVERED}


def test_an_echo_naming_a_message_with_another_provider_id_is_looked_up_by_the_index() -> None:
    """A guessed (or stale) echo: the message it names does not carry the report's provider id, so the report goes
    where the index says, as if it had no echo."""
    store = CountingStore()
    ten_messages(store)
    wrong_echo = replace(report(pmid="pm-7", echo=EchoRange("B", 3, 3)), to="+85251234507")
    assert record_push([wrong_echo], store=store, now=NOW).applied == 1
    assert store.calls == ["read 1", "index+read"]
    assert store.messages["B.00007"].status is Status.DELIVERED
    assert store.messages["B.00003"].status is Status.SUBMITTED


def test_reports_for_one_message_in_one_push_each_start_from_the_last_write() -> None:
    store = CountingStore()
    store.messages["B.00000"] = message(version=1)
    parts = [report(part=1, parts=2), report(part=1, parts=2), report(part=2, parts=2)]  # one repeated
    result = record_push(parts, store=store, now=NOW)
    record = store.messages["B.00000"]
    assert (result.applied, result.duplicates, record.status, record.version) == (2, 1, Status.DELIVERED, 3)
    assert "reload" not in store.calls  # no write conflicted with one of this push's own


class ConflictingStore(MemoryStore):
    """Another writer bumps the version once, between our read and our write."""

    def __init__(self) -> None:
        super().__init__()
        self.conflicts = 1

    def save_delivery(self, record: MessageRecord, *, expected_version: int) -> bool:
        if self.conflicts:
            self.conflicts -= 1
            stored = self.messages[record.id]
            self.messages[record.id] = stored.model_copy(update={"version": stored.version + 1})
            return False
        return super().save_delivery(record, expected_version=expected_version)


def test_a_concurrent_write_is_retried_on_the_fresh_record() -> None:
    store = ConflictingStore()
    store.messages["B.00000"] = message()
    record_push([report()], store=store, now=NOW)
    assert store.messages["B.00000"].status is Status.DELIVERED
    assert store.messages["B.00000"].version == 2


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], None),
        ([{"status": None}], None),
        ([{"status": "DELIVERED"}], Status.DELIVERED),
        ([{"status": "EXPIRED"}, {"status": "DELIVERED"}], Status.EXPIRED),
        ([{"status": "DELIVERED", "part": 1, "parts": 3}], None),
        ([{"status": "DELIVERED", "part": p, "parts": 3} for p in (1, 2, 3)], Status.DELIVERED),
        (
            [{"status": "DELIVERED", "part": 1, "parts": 2}, {"status": "UNDELIVERED", "part": 2, "parts": 2}],
            Status.UNDELIVERED,
        ),
    ],
)
def test_implied_status(events: list[dict[str, object]], expected: Status | None) -> None:
    assert implied_status(events) is expected


@given(st.permutations([{"status": "DELIVERED", "part": p, "parts": 3} for p in (1, 2, 3)] + [{"status": None}]))
def test_all_parts_in_any_order_deliver_and_never_regress(events: list[dict[str, object]]) -> None:
    statuses = [status_after(Status.SUBMITTED, events[: i + 1]) for i in range(len(events))]
    assert statuses[-1] is Status.DELIVERED
    for before, after in itertools.pairwise(statuses):
        assert after.rank >= before.rank


def test_a_receipt_that_beat_an_unknown_outcome_settles_it_and_clears_the_error() -> None:
    store = store_with(message(status=Status.QUEUED, pmid=None))
    early = record_push([report(pmid="pm-late", echo=EchoRange("B", 0, 0))], store=store, now=NOW)
    assert early.held == 1
    pack = huawei_pack()
    timeout = ProviderError(ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT", "")
    provider = ScriptedProvider(name=ProviderName.HUAWEI, answer=lambda m: timeout)
    deps = DispatchDeps(
        provider=provider,
        store=store,
        claims=MemoryClaims(),
        queues=MemoryQueues(),
        receipts=store,
        webhooks=MemoryWebhooks(),
    )
    dispatch_pack(pack, deps, now=NOW, last_attempt=False)
    record = store.messages["B.00000"]
    assert (record.status, record.provider_message_id, record.error_code) == (Status.DELIVERED, "pm-late", None)
    view = message_view(record, None)
    assert [(e.type, e.status) for e in view.events] == [
        ("status", Status.ACCEPTED),
        ("status", Status.SENDING),
        ("receipt", Status.DELIVERED),
    ]
    assert view.error is None


def interrupted_dispatch(
    store: MemoryStore,
    claims: MemoryClaims,
    webhooks: MemoryWebhooks,
    queues: MemoryQueues | None = None,
    pack: DispatchPack | None = None,
) -> None:
    pack = pack or huawei_pack()
    provider = ScriptedProvider(name=ProviderName.HUAWEI)
    deps = DispatchDeps(
        provider=provider,
        store=store,
        claims=claims,
        queues=queues or MemoryQueues(),
        receipts=store,
        webhooks=webhooks,
    )
    dispatch_pack(pack, deps, now=NOW, last_attempt=False)
    assert provider.calls == []  # never sent again


def expired_claim() -> MemoryClaims:
    """B:huawei:0 claimed by a dispatcher that died: its lease ran out."""
    claims = MemoryClaims()
    claims.claim("B:huawei:0", now=NOW - timedelta(minutes=5), lease_seconds=120)
    return claims


def test_an_interrupted_pack_queues_the_events_of_what_the_earlier_attempt_recorded() -> None:
    # The earlier attempt wrote FAILED (the provider refused the number) and died before queueing its event: the
    # attempt that takes the pack over queues it (a repeat has the same id).
    store = store_with(message(status=Status.FAILED, pmid=None, error_category="recipient"))
    webhooks = MemoryWebhooks()
    interrupted_dispatch(store, expired_claim(), webhooks)
    assert store.messages["B.00000"].status is Status.FAILED  # not overwritten
    assert [d.event.id for d in webhooks.sent] == ["B.00000.failed"]


def resent_to_tencent() -> MessageRecord:
    """B.00000 after an UNDELIVERED receipt from Huawei resent it: QUEUED on Tencent, the resend step in its history."""
    step = HistoryStep(
        RESEND_STEP,
        Status.QUEUED,
        "UNDELIV",
        "2026-11-26T10:00:00Z",
        provider=ProviderName.HUAWEI,
        provider_message_id="pm-B",
    )
    return message(status=Status.QUEUED, pmid=None, provider="tencent", events=[step.to_item()])


def test_an_interrupted_pack_queues_the_resend_an_early_receipt_made_and_never_overwrites_it() -> None:
    # The earlier attempt wrote SUBMITTED, applied a held UNDELIVERED receipt that resent the message through Tencent,
    # and died before queueing the resend: the message would stay QUEUED for ever.
    resent = resent_to_tencent()
    store, queues = store_with(resent), MemoryQueues()
    interrupted_dispatch(store, expired_claim(), MemoryWebhooks(), queues=queues)
    assert store.messages["B.00000"] == resent  # not made SENDING on Huawei
    assert [p.pack_id for p in queues.sent[ProviderName.TENCENT]] == ["B.00000.resend"]


def test_an_interrupted_failover_of_a_resend_pack_leaves_its_recipient_sending() -> None:
    # The resend pack moved on from Tencent (its breaker open) to Alibaba, whose dispatcher died after its call: the
    # record, still QUEUED for the resend, is this pack's (its recipient carries the resend step) and may have been
    # sent, so it becomes SENDING on Alibaba for its receipt or the unknown-outcome policy to settle.
    resent = resent_to_tencent()
    resent = resent.model_copy(update={"route": ["huawei", "tencent", "aliyun"], "template_id": None, "text": "hi"})
    store = store_with(resent)
    (moved,) = reroute(resend_pack(resent), [0], reasons={}, now=NOW).packs[ProviderName.ALIYUN]
    claims = MemoryClaims()
    claims.claim(moved.pack_id, now=NOW - timedelta(minutes=5), lease_seconds=120)
    deps = DispatchDeps(
        provider=ScriptedProvider(),
        store=store,
        claims=claims,
        queues=MemoryQueues(),
        receipts=store,
        webhooks=MemoryWebhooks(),
    )
    dispatch_pack(moved, deps, now=NOW, last_attempt=False)
    after = store.messages["B.00000"]
    assert (after.status, after.provider) == (Status.SENDING, ProviderName.ALIYUN)


def test_an_interrupted_pack_never_overwrites_what_receipts_already_moved_on() -> None:
    store = store_with(message())  # SUBMITTED by the attempt that then died before finishing its claim
    record_push([report()], store=store, now=NOW)
    interrupted_dispatch(store, expired_claim(), MemoryWebhooks())
    record = store.messages["B.00000"]
    assert (record.status, record.provider_message_id) == (Status.DELIVERED, "pm-B.00000")


def test_a_receipt_held_for_an_interrupted_pack_settles_it() -> None:
    store = store_with(message(status=Status.ACCEPTED, pmid=None))
    assert record_push([report(echo=EchoRange("B", 0, 0))], store=store, now=NOW).held == 1
    webhooks = MemoryWebhooks()
    interrupted_dispatch(store, expired_claim(), webhooks)
    record = store.messages["B.00000"]
    assert (record.status, record.provider_message_id) == (Status.DELIVERED, "pm-B.00000")
    assert [d.event.id for d in webhooks.sent] == ["B.00000.delivered"]


@pytest.mark.parametrize("echoed", [True, False])
def test_a_receipt_held_before_the_earlier_attempts_write_is_applied_by_the_takeover(echoed: bool) -> None:
    # The earlier attempt called the provider; the receipt came first and was held (the provider, answered 200,
    # never pushes it again); the attempt wrote SUBMITTED and died before applying it. Nothing else ever would.
    store = store_with(message(status=Status.ACCEPTED, pmid=None))
    pushed = record_push([report(echo=EchoRange("B", 0, 0) if echoed else None)], store=store, now=NOW)
    assert pushed.held + pushed.unmatched == 1
    store.messages["B.00000"] = message()  # the earlier attempt's write: SUBMITTED, pm-B.00000
    webhooks = MemoryWebhooks()
    interrupted_dispatch(store, expired_claim(), webhooks)
    record = store.messages["B.00000"]
    assert (record.status, record.provider_message_id) == (Status.DELIVERED, "pm-B.00000")
    assert [d.event.id for d in webhooks.sent] == ["B.00000.delivered"]


@pytest.mark.parametrize(("status", "raw"), [(Status.REJECTED, "REJECTD"), (Status.EXPIRED, "EXPIRED")])
def test_every_final_receipt_status_queues_its_event(status: Status, raw: str) -> None:
    store = store_with(message())
    result = record_push([report(status, raw)], store=store, now=NOW)
    assert store.messages["B.00000"].status is status
    assert [d.event.type for d in result.webhooks] == [f"message.{status.value.lower()}"]


# ---- a message's history is bounded (one DynamoDB item: 400 KB) ----


def _largest_report(n: int) -> DeliveryReport:
    """A report with every field as long as the parsers keep it (distinct receipt ids through `provider_time`)."""
    return DeliveryReport(
        provider=ProviderName.HUAWEI,
        provider_message_id="pm-B.00000",
        status=Status.UNDELIVERED,
        raw_status="U" * 32,
        error_code="E" * 128,
        description="d" * 512,
        to="+85251234567",
        provider_time=f"{n:064d}",
    )


def test_a_history_keeps_the_first_and_the_latest_events_and_counts_the_rest() -> None:
    from globesms.receipts.history import FIRST_EVENTS_KEPT, MAX_EVENTS_KEPT

    store = MemoryStore()
    store.put_messages([message()])
    total = MAX_EVENTS_KEPT + 150
    for start in range(0, total, 100):
        record_push([_largest_report(n) for n in range(start, min(start + 100, total))], store=store, now=NOW)
    record = store.messages["B.00000"]
    events = record.events or []
    assert len(events) == MAX_EVENTS_KEPT
    assert record.events_omitted == total - MAX_EVENTS_KEPT
    times = [int(e["provider_time"]) for e in events]
    assert times == [*range(FIRST_EVENTS_KEPT), *range(total - (MAX_EVENTS_KEPT - FIRST_EVENTS_KEPT), total)]
    assert record.status is Status.UNDELIVERED
    assert record.receipt_ids is not None and len(record.receipt_ids) <= 1_000


def test_a_long_history_keeps_our_own_steps_from_its_middle() -> None:
    """A resend step among a 24-part message's many receipts: dropped, later writes would take the first attempt's
    receipts for the resend's (which attempt a receipt is for, which provider failed)."""
    from globesms.receipts.history import FIRST_EVENTS_KEPT, MAX_EVENTS_KEPT, bounded_history

    receipts = [{"id": f"r{n}", "type": "receipt"} for n in range(MAX_EVENTS_KEPT + 10)]
    step = {"id": "receipt-failover", "type": "status", "status": "QUEUED"}
    history = [*receipts[: FIRST_EVENTS_KEPT + 4], step, *receipts[FIRST_EVENTS_KEPT + 4 :]]
    kept, omitted = bounded_history(history)
    assert step in kept and len(kept) == MAX_EVENTS_KEPT + 1 and omitted == len(history) - len(kept)
    assert kept[:FIRST_EVENTS_KEPT] == history[:FIRST_EVENTS_KEPT] and kept[-5:] == history[-5:]


def test_the_largest_history_kept_fits_one_dynamodb_item_with_room_to_spare() -> None:
    import json

    from globesms.aws.message_items import message_item
    from globesms.receipts.history import MAX_EVENTS_KEPT, MAX_RECEIPT_IDS

    store = MemoryStore()
    store.put_messages([message(text="x" * 1_600)])
    for start in range(0, MAX_EVENTS_KEPT * 3, 100):
        record_push([_largest_report(n) for n in range(start, start + 100)], store=store, now=NOW)
    record = store.messages["B.00000"]
    record = record.model_copy(update={"receipt_ids": {f"{n:020d}" for n in range(MAX_RECEIPT_IDS)}})
    # DynamoDB counts attribute names and values; the JSON of the typed item is larger than that, never smaller.
    assert len(json.dumps(message_item(record))) < 300_000


@pytest.mark.parametrize("to", ["+62812345678", "+4915123456789", "+38343201234"])
def test_a_tencent_receipt_whose_mobile_carries_its_country_code_still_applies(to: str) -> None:
    """Tencent writes the country code in `mobile` too for some numbers, and `+<nationcode><mobile>` is then itself
    a valid number: the report's `to` differs from the message's, yet it is the message's (a review)."""
    code = {"+62": "62", "+49": "49", "+38": "383"}[to[:3]]
    body = json.dumps(
        [
            {
                "sid": "sid-1",
                "report_status": "FAIL",
                "errmsg": "UNDELIV",
                "nationcode": code,
                "mobile": to[1:],
                "user_receive_time": "2026-11-26 18:00:00",
            }
        ]
    ).encode()
    (parsed,) = tencent.parse_push(body).reports
    store = store_with(message(pmid="sid-1", provider="tencent", to=to))
    result = record_push([parsed], store=store, now=NOW)
    assert (result.wrong_number, result.applied) == (0, 1), (parsed.to, to)
    assert store.messages["B.00000"].status is Status.UNDELIVERED


def test_a_report_with_another_number_held_before_the_submitted_write_is_not_applied_by_dispatch() -> None:
    """A report with the message's provider id and another number that arrives before dispatch has recorded the
    send is held under the provider id; dispatch applied it when it recorded the send (a review)."""
    store = store_with(message(Status.SENDING, pmid=None))
    other = replace(report(Status.UNDELIVERED, "UNDELIV"), to="+6591234567")
    result = record_push([other], store=store, now=NOW)
    assert result.applied == 0
    sent = store.messages["B.00000"].model_copy(
        update={"status": Status.SUBMITTED, "provider_message_id": "pm-B.00000", "submitted_at": "2026-11-26T09:59:01Z"}
    )
    store.messages["B.00000"] = sent
    apply_held_receipts(store, [sent], NOW)
    assert store.messages["B.00000"].status is Status.SUBMITTED, "the other number's UNDELIVERED was applied"


def test_a_report_with_another_number_for_a_resent_messages_first_attempt_changes_nothing() -> None:
    """A report carrying the first attempt's provider id (shown in the message's history) and another number was
    kept as the first attempt's DELIVERED and counted a duplicate delivery (a review)."""
    from globesms.models.receipts import DeliveryReport
    from tests.unit.test_receipt_failover import A, push, record

    store = MemoryStore()
    store.messages["B.00000"] = record()
    assert push(A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t1").failovers == 1
    before = store.messages["B.00000"]
    forged = DeliveryReport(
        provider=A,
        provider_message_id="ali-1",
        status=Status.DELIVERED,
        raw_status="DELIVERED",
        error_code="DELIVERED",
        to="+6598765432",
        provider_time="t9",
    )
    result = record_push([forged], store=store, now=NOW)
    assert (result.wrong_number, result.duplicate_deliveries, result.applied) == (1, 0, 0)
    assert store.messages["B.00000"].events == before.events


def test_a_wrong_number_report_held_first_shadows_the_genuine_receipt() -> None:
    """The held item kept one event per receipt id, which leaves the number out: a wrong-number report held before
    the SUBMITTED write made the genuine one (same provider id, status, time) a repeat, and dispatch then dropped
    the only held event for its number (a review). Held events are kept by receipt id and number."""
    store = store_with(message(Status.SENDING, pmid=None))
    wrong = replace(report(Status.DELIVERED, "DELIVRD"), to="+6591234567")
    genuine = replace(report(Status.DELIVERED, "DELIVRD"), to="+85251234567")
    record_push([wrong], store=store, now=NOW)
    second = record_push([genuine], store=store, now=NOW)
    sent = store.messages["B.00000"].model_copy(
        update={"status": Status.SUBMITTED, "provider_message_id": "pm-B.00000", "submitted_at": "2026-11-26T09:59:01Z"}
    )
    store.messages["B.00000"] = sent
    apply_held_receipts(store, [sent], NOW)
    assert second.duplicates == 0, "the genuine receipt was taken for a repeat of the wrong-number one"
    assert store.messages["B.00000"].status is Status.DELIVERED


# ---- an echo that reaches two calls' messages to one number (Huawei's interleaved calls) ----

INTERLEAVED = ("+6591234567", "+6591234567", "+6598765432", "+6598765432")  # call 1: .00000 .00002; call 2: the rest


def interleaved(status: Status) -> MemoryStore:
    """A pack of two specs texting the same two numbers: Huawei's calls carry one message per number each, and a
    call's echo (`extend`) is its first id, so call 2's (B.00001) reaches B.00002, call 1's."""
    store = MemoryStore()
    for i, to in enumerate(INTERLEAVED):
        store.messages[f"B.{i:05d}"] = message(status=status, pmid=None, id=f"B.{i:05d}", to=to)
    return store


def call_two_report(status: str) -> list[DeliveryReport]:
    body = f"smsMsgId=pm-call2-Y&status={status}&extend=B.00001&to=%2B6598765432&updateTime=2026-12-06T12%3A00%3A00Z"
    return huawei_receipts.parse_push(body.encode(), "application/x-www-form-urlencoded").reports


def test_an_early_receipt_an_echo_cannot_tell_between_two_messages_reaches_the_right_one() -> None:
    # Guessed, it was held for B.00002 (call 1's), whose provider id never matched: B.00003's DELIVRD was lost.
    store = interleaved(Status.QUEUED)
    pushed = record_push(call_two_report("DELIVRD"), store=store, now=NOW)
    assert pushed.held + pushed.unmatched == 1  # held under its provider id
    ids = {"B.00000": "pm-call1-X", "B.00001": "pm-call2-X", "B.00002": "pm-call1-Y", "B.00003": "pm-call2-Y"}
    written = [
        store.messages[i].model_copy(update={"status": Status.SUBMITTED, "provider_message_id": pmid})
        for i, pmid in ids.items()
    ]
    store.put_messages(written)
    apply_held_receipts(store, written, NOW)
    assert {i: m.status for i, m in store.messages.items()} == {
        "B.00000": Status.SUBMITTED,
        "B.00001": Status.SUBMITTED,
        "B.00002": Status.SUBMITTED,
        "B.00003": Status.DELIVERED,
    }


def test_a_receipt_an_echo_cannot_tell_between_two_unknown_outcomes_is_applied_to_neither() -> None:
    # Guessed, call 2's report was applied to B.00002, call 1's message: the two messages' outcomes swapped.
    store = interleaved(Status.SENDING)
    record_push(call_two_report("UNDELIV"), store=store, now=NOW)
    assert {m.status for m in store.messages.values()} == {Status.SENDING}


def test_a_takeover_applies_the_held_receipt_whatever_provider_a_packmate_moved_to() -> None:
    # The held receipts are looked up for one provider: the first record's. B.00000, failed over to Tencent by an
    # early UNDELIVERED receipt and sent there, came first, and B.00001's Huawei receipt was never looked for.
    pack = DispatchPack.model_validate(
        {
            "pack_id": "B:huawei:0",
            "batch_id": "B",
            "provider": "huawei",
            "created_at": "2026-11-26T09:59:00Z",
            "contents": [{"type": "NOTIFY", "template_id": "1", "status_callback": CALLBACK}],
            "recipients": [
                {"id": "B.00000", "to": "+85251234560", "c": 0},
                {"id": "B.00001", "to": "+85251234567", "c": 0},
            ],
        }
    )
    store = store_with(message(status=Status.ACCEPTED, pmid=None, id="B.00001"))
    assert record_push([report(echo=EchoRange("B", 1, 1), pmid="pm-B.00001")], store=store, now=NOW).held == 1
    store.messages["B.00001"] = message(id="B.00001", provider_message_id="pm-B.00001")  # the dead holder's write
    store.messages["B.00000"] = message(to="+85251234560", provider="tencent", provider_message_id="tc-1")
    interrupted_dispatch(store, expired_claim(), MemoryWebhooks(), pack=pack)
    assert store.messages["B.00001"].status is Status.DELIVERED
    assert store.messages["B.00000"].status is Status.SUBMITTED  # Tencent's: untouched


def test_a_receipt_an_echo_cannot_tell_between_reaches_a_message_written_while_it_was_held() -> None:
    """The dispatcher's SUBMITTED write comes between the push's look at the echo and its hold (and found nothing
    held); the index by provider id lags: the candidates are read again, consistently, for the one with the id."""
    ids = {"B.00000": "pm-call1-X", "B.00001": "pm-call2-X", "B.00002": "pm-call1-Y", "B.00003": "pm-call2-Y"}

    class WrittenMeanwhile(MemoryStore):
        def message_for_provider_ref(self, provider: ProviderName, provider_message_id: str) -> None:
            return None  # the ProviderRef index has not caught up with the write

        def message_id_for_provider_ref(self, provider: ProviderName, provider_message_id: str) -> None:
            return None

        def find_recipients(self, echo: EchoRange, to: str | None) -> list[MessageRecord]:
            found = super().find_recipients(echo, to)
            for message_id, pmid in ids.items():  # the dispatcher writes now
                self.messages[message_id] = self.messages[message_id].model_copy(
                    update={"status": Status.SUBMITTED, "provider_message_id": pmid}
                )
            return found

    store = WrittenMeanwhile()
    store.messages.update(interleaved(Status.QUEUED).messages)
    record_push(call_two_report("DELIVRD"), store=store, now=NOW)
    assert store.messages["B.00003"].status is Status.DELIVERED
    assert store.messages["B.00002"].status is Status.SUBMITTED
