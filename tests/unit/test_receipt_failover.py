"""Receipt-driven failover (receipts/failover.py): which UNDELIVERED receipts resend a message through the next
provider of its route, and the life of a resent message (one resend, the second attempt's status, late receipts of
the first attempt recorded and ignored)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from globesms.accept.canonical import body_hash
from globesms.accept.queries import message_view
from globesms.dispatch.service import DispatchDeps, dispatch_pack
from globesms.domain.clock import iso
from globesms.domain.history import FIRST_SUBMITTED_STEP
from globesms.domain.history import RECEIPT_FAILOVER_STEP as RESEND_STEP
from globesms.domain.status import Status
from globesms.models.api import MessageSpec
from globesms.models.outbound import ProviderName
from globesms.models.packs import DispatchPack
from globesms.models.receipts import DeliveryReport
from globesms.models.records import MessageRecord
from globesms.providers.aliyun.errors import RECEIPT_FAILOVER as ALIYUN_CODES
from globesms.providers.huawei.errors import RECEIPT_FAILOVER as HUAWEI_CODES
from globesms.providers.tencent.errors import RECEIPT_FAILOVER as TENCENT_CODES
from globesms.receipts.apply import record_push
from globesms.receipts.failover import (
    FAILOVER_EVENT,
    another_route_fixes,
    resend_for,
    resend_pack,
    resend_pack_id,
)
from globesms.receipts.implied_status import implied_status
from globesms.webhooks.events import status_event
from tests.fakes import MemoryClaims, MemoryQueues, MemoryStore, MemoryWebhooks, ScriptedProvider

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
A, T, H = ProviderName.ALIYUN, ProviderName.TENCENT, ProviderName.HUAWEI

# What another route can fix, per provider code: every row of the tables, and codes the tables do not list.
DECISIONS = [
    *((A, code, fixes) for code, fixes in ALIYUN_CODES.items()),
    *((T, code, fixes) for code, fixes in TENCENT_CODES.items()),
    *((H, code, fixes) for code, fixes in HUAWEI_CODES.items()),
    (A, "SOMETHING_NEW", False),
    (T, "FailedOperation.SomethingNew", False),
    (H, "E200015", False),  # a platform refusal: REJECTED, and not listed for UNDELIVERED
]


@pytest.mark.parametrize(("provider", "code", "fixes"), DECISIONS)
def test_the_table_decides_per_provider_code(provider: ProviderName, code: str, fixes: bool) -> None:
    assert another_route_fixes(provider, {"error_code": code, "raw_status": "2"}) is fixes


@pytest.mark.parametrize(
    ("provider", "code", "fixes"),
    [
        (T, "InternalError.Timeout", True),  # the route timed out delivering
        (T, "FailedOperation.PhoneNumberInBlacklist", False),  # opted out / blocked by the person
        (T, "InvalidParameterValue.IncorrectPhoneNumber", False),  # the number does not exist
        (T, "LimitExceeded.PhoneNumberDailyLimit", False),  # the customer's own limits
        (A, "MOBILE_NUMBER_ILLEGAL", False),
        (A, "ROUTE_FAILURE", True),
        (H, "DELETED", True),
        (H, "UNDELIV", False),
    ],
)
def test_route_failures_resend_and_the_number_or_the_person_do_not(
    provider: ProviderName, code: str, fixes: bool
) -> None:
    assert another_route_fixes(provider, {"error_code": code}) is fixes


def test_tencents_sub_error_is_the_more_specific_code() -> None:
    receipt = {"error_code": "UNDELIV", "sub_error": "InternalError.Timeout"}
    assert another_route_fixes(T, receipt)
    assert not another_route_fixes(
        T, {"error_code": "InternalError.Timeout", "sub_error": "InvalidParameterValue.IncorrectPhoneNumber"}
    )


def record(**extra: Any) -> MessageRecord:
    fields: dict[str, Any] = {
        "id": "B.00000",
        "batch_id": "B",
        "to": "+6591234567",
        "country": "SG",
        "encoding": "GSM-7",
        "provider": "aliyun",
        "type": "OTP",
        "text": "code 123456",
        "route": ["aliyun", "tencent"],
        "status": "SUBMITTED",
        "provider_message_id": "ali-1",
        "status_callback": "https://hooks.example.com/sms",
        "created_at": "2026-12-04T09:59:00+00:00",
        "updated_at": "2026-12-04T09:59:00+00:00",
        "submitted_at": "2026-12-04T09:59:01+00:00",
    }
    return MessageRecord.model_validate(fields | extra)


def undelivered(before: MessageRecord) -> MessageRecord:
    return before.model_copy(update={"status": Status.UNDELIVERED})


ROUTE_FAILURE = {"id": "r1", "status": "UNDELIVERED", "error_code": "ROUTE_FAILURE", "provider_message_id": "ali-1"}


@pytest.mark.parametrize(
    ("changes", "resends"),
    [
        ({}, True),  # OTP
        ({"type": "NOTIFY"}, False),  # NOTIFY only when the request allowed it
        ({"type": "NOTIFY", "failover_on_undelivered": True}, True),
        ({"type": "MKT", "failover_on_undelivered": True}, False),
        ({"validity_seconds": 60, "submitted_at": "2026-12-04T09:58:59+00:00"}, False),  # over at 09:59:59
        ({"validity_seconds": 3600}, True),
        ({"route": ["aliyun"]}, False),  # no next provider
        ({"route": ["tencent", "aliyun"]}, False),  # aliyun is the last one
        ({"events": [{"id": RESEND_STEP, "type": "status", "status": "QUEUED"}]}, False),  # resent once already
        ({"template_id": "SMS_1", "text": None}, False),  # a provider's own template moves nowhere
    ],
)
def test_which_messages_are_resent(changes: dict[str, Any], resends: bool) -> None:
    before = record(**changes)
    resent = resend_for(before, undelivered(before), ROUTE_FAILURE, NOW)
    assert (resent is not None) is resends
    if resent is not None:
        assert (resent.provider, resent.status, resent.provider_message_id) == (T, Status.QUEUED, None)
        step = (resent.events or [])[-1]
        assert (step["id"], step["provider"], step["provider_message_id"]) == (RESEND_STEP, "aliyun", "ali-1")


def test_a_number_that_does_not_exist_is_not_resent() -> None:
    before = record()
    receipt = ROUTE_FAILURE | {"error_code": "MOBILE_NUMBER_ILLEGAL"}
    assert resend_for(before, undelivered(before), receipt, NOW) is None


def test_only_the_latest_attempts_receipts_imply_the_status() -> None:
    events = [
        {"id": "r1", "type": "receipt", "status": "UNDELIVERED"},
        {"id": RESEND_STEP, "type": "status", "status": "QUEUED"},
        {"id": "r2", "type": "receipt", "status": "DELIVERED", "earlier_attempt": True},  # the first, late
    ]
    assert implied_status(events) is None
    assert implied_status([*events, {"id": "r3", "type": "receipt", "status": "UNDELIVERED"}]) is Status.UNDELIVERED


# ---- the whole life: receipt -> resend queued -> sent -> second attempt's receipt; duplicates and late ones ----


def push(provider: ProviderName, pmid: str, status: Status, code: str, store: MemoryStore, *, at: str) -> Any:
    report = DeliveryReport(
        provider=provider,
        provider_message_id=pmid,
        status=status,
        raw_status=code,
        error_code=code,
        to="+6591234567",
        provider_time=at,
    )
    return record_push([report], store=store, now=NOW)


def send_resends(store: MemoryStore, queues: MemoryQueues, claims: MemoryClaims, provider: ScriptedProvider) -> None:
    deps = DispatchDeps(
        provider=provider, store=store, claims=claims, queues=MemoryQueues(), receipts=store, webhooks=MemoryWebhooks()
    )
    for pack in queues.sent[provider.name]:
        dispatch_pack(pack, deps, now=NOW + timedelta(seconds=5), last_attempt=False)


def test_an_undelivered_otp_is_resent_once_and_ends_with_the_second_attempts_status() -> None:
    store = MemoryStore()
    store.messages["B.00000"] = record()
    first = push(A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t1")
    message = store.messages["B.00000"]
    assert (message.status, message.provider, first.failovers) == (Status.QUEUED, T, 1)
    assert (first.delivered, first.undelivered) == (0, 1)  # Alibaba's delivery rate sees the failure it resent
    assert [d.event.type for d in first.webhooks] == [FAILOVER_EVENT]
    assert first.webhooks[0].event.message["failover"] == {"from": "aliyun", "to": "tencent"}
    assert [r.id for r in first.resends] == ["B.00000"]

    # The provider pushes the same receipt again (say our answer was lost): nothing new, the resend queued again
    # under the same pack id (the pack claim sends it once).
    again = push(A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t1")
    assert (again.failovers, again.duplicates, len(again.resends), again.undelivered) == (0, 1, 1, 0)

    queues, claims = MemoryQueues(), MemoryClaims()
    queues.send_packs(T, [_pack(first.resends[0]), _pack(again.resends[0])])
    tencent = ScriptedProvider(name=T)
    send_resends(store, queues, claims, tencent)
    assert sum(len(call) for call in tencent.calls) == 1  # two packs queued, one send
    message = store.messages["B.00000"]
    assert (message.status, message.provider, message.provider_message_id) == (Status.SUBMITTED, T, "pm-B.00000")

    # The second attempt fails the same way: final, never resent twice.
    second = push(T, "pm-B.00000", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t2")
    assert (store.messages["B.00000"].status, second.failovers, second.resends) == (Status.UNDELIVERED, 0, [])
    assert second.undelivered == 1  # Tencent's, this time

    # A late DELIVERED for the first attempt: recorded, counted, changes nothing.
    late = push(A, "ali-1", Status.DELIVERED, "DELIVERED", store, at="t3")
    message = store.messages["B.00000"]
    assert (late.duplicate_deliveries, late.resends, late.webhooks, late.delivered) == (1, [], [], 0)
    assert message.status is Status.UNDELIVERED
    assert [e["id"] for e in message.events or []][:3] == [message.events[0]["id"], FIRST_SUBMITTED_STEP, RESEND_STEP]
    assert (message.events or [])[-1]["status"] == "DELIVERED"
    repeat = push(A, "ali-1", Status.DELIVERED, "DELIVERED", store, at="t3")
    assert (repeat.duplicate_deliveries, repeat.duplicates) == (0, 1)


def test_the_history_keeps_the_first_attempts_submit_and_reads_oldest_first() -> None:
    """The resend's dispatcher writes its own submitted_at, from which the API's history made the only SUBMITTED: the
    first attempt's was lost, and its UNDELIVERED and the resend step read before the SUBMITTED that preceded them."""
    store = MemoryStore()
    first_submit = NOW - timedelta(seconds=30)
    store.messages["B.00000"] = record(created_at=iso(NOW - timedelta(minutes=1)), submitted_at=iso(first_submit))
    push(A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t1")
    queues = MemoryQueues()
    queues.send_packs(T, [resend_pack(r) for r in store.messages.values()])
    send_resends(store, queues, MemoryClaims(), ScriptedProvider(name=T))  # at NOW + 5 s
    delivered = DeliveryReport(provider=T, provider_message_id="pm-B.00000", status=Status.DELIVERED, raw_status="OK")
    record_push([delivered], store=store, now=NOW + timedelta(seconds=9))
    events = message_view(store.messages["B.00000"], None).events
    assert [(e.type, e.status, e.at) for e in events] == [
        ("status", Status.ACCEPTED, iso(NOW - timedelta(minutes=1))),
        ("status", Status.SUBMITTED, iso(first_submit)),  # on Alibaba: kept in the stored history
        ("receipt", Status.UNDELIVERED, iso(NOW)),
        ("status", Status.QUEUED, iso(NOW)),  # the resend, on Tencent
        ("status", Status.SUBMITTED, iso(NOW + timedelta(seconds=5))),
        ("receipt", Status.DELIVERED, iso(NOW + timedelta(seconds=9))),
    ]
    step = next(e for e in store.messages["B.00000"].events or [] if e["id"] == FIRST_SUBMITTED_STEP)
    assert (step["provider"], "error_code" in step) == ("aliyun", False)
    # Each entry says which provider it is about (until 2026-12-07 the history named none: which attempt a receipt
    # or a SUBMITTED belonged to could not be told): the resend step names the one it left.
    assert [e.provider for e in events] == [None, A, A, A, T, T]


def test_the_first_attempts_late_receipts_keep_the_history_bounded() -> None:
    # A provider may keep pushing distinct reports of the first attempt after the resend: kept as every receipt is,
    # within MAX_EVENTS_KEPT (unbounded, the record passed DynamoDB's 400 KB item and the push failed for good).
    from globesms.receipts.history import FIRST_EVENTS_KEPT, MAX_EVENTS_KEPT

    store = MemoryStore()
    store.messages["B.00000"] = record()
    push(A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t1")
    assert store.messages["B.00000"].provider is T  # resent
    total = MAX_EVENTS_KEPT + 50
    for n in range(total):
        push(A, "ali-1", Status.UNDELIVERED, f"CODE{n}", store, at=f"late-{n:03d}")
    message = store.messages["B.00000"]
    events = message.events or []
    assert len(events) == MAX_EVENTS_KEPT and message.events_omitted == total + 3 - MAX_EVENTS_KEPT
    assert RESEND_STEP in [e["id"] for e in events[:FIRST_EVENTS_KEPT]]  # our own steps are kept
    assert events[-1]["provider_time"] == f"late-{total - 1:03d}"  # and the latest report
    assert message.status is Status.QUEUED  # the first attempt's reports change nothing


def test_the_second_attempts_delivery_is_the_final_status() -> None:
    store = MemoryStore()
    store.messages["B.00000"] = record()
    first = push(A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t1")
    queues = MemoryQueues()
    queues.send_packs(T, [_pack(r) for r in first.resends])
    send_resends(store, queues, MemoryClaims(), ScriptedProvider(name=T))
    delivered = push(T, "pm-B.00000", Status.DELIVERED, "DELIVRD", store, at="t2")
    assert store.messages["B.00000"].status is Status.DELIVERED
    assert store.messages["B.00000"].encoding == "GSM-7"  # the resend's record keeps what accept worked out
    assert [d.event.type for d in delivered.webhooks] == ["message.delivered"]
    # The first attempt's UNDELIVERED stays in the history.
    assert (store.messages["B.00000"].events or [])[0]["status"] == "UNDELIVERED"


def test_the_resends_events_have_ids_of_their_own() -> None:
    """With status_callback_on_submitted the first attempt's SUBMITTED was `B.00000.submitted`, and the resend's
    SUBMITTED had the same id: a receiver dropped it as a repeat (found by a review)."""
    store = MemoryStore()
    store.messages["B.00000"] = record(status_callback_on_submitted=True)
    assert status_event(store.messages["B.00000"], NOW).event.id == "B.00000.submitted"  # type: ignore[union-attr]
    first = push(A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t1")
    queues, webhooks = MemoryQueues(), MemoryWebhooks()
    queues.send_packs(T, [_pack(r) for r in first.resends])
    deps = DispatchDeps(
        provider=ScriptedProvider(name=T), store=store, claims=MemoryClaims(), queues=MemoryQueues(), receipts=store,
        webhooks=webhooks,
    )  # fmt: skip
    dispatch_pack(queues.sent[T][0], deps, now=NOW + timedelta(seconds=5), last_attempt=False)
    assert [d.event.id for d in webhooks.sent] == ["B.00000.submitted.resend"]
    delivered = push(T, "pm-B.00000", Status.DELIVERED, "DELIVRD", store, at="t2")
    assert [d.event.id for d in delivered.webhooks] == ["B.00000.delivered.resend"]


def _pack(message: MessageRecord) -> DispatchPack:
    pack = resend_pack(message)
    assert pack.pack_id == resend_pack_id(message.id)
    # Kept in the resend's record.
    assert [(r.country, r.encoding) for r in pack.recipients] == [(message.country, message.encoding)]
    return pack


def test_an_early_undelivered_receipt_held_before_the_send_was_recorded_resends_at_dispatch() -> None:
    store = MemoryStore()
    store.messages["B.00000"] = record(status="QUEUED", provider_message_id=None, submitted_at=None)
    held = push(A, "pm-B.00000", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t1")
    assert held.unmatched == 1  # no message carries that provider id yet: held
    pack = DispatchPack.model_validate(
        {
            "pack_id": "B:aliyun:0",
            "batch_id": "B",
            "provider": "aliyun",
            "created_at": "2026-12-04T09:59:00+00:00",
            "contents": [
                {
                    "type": "OTP",
                    "text": "code 123456",
                    "route": ["aliyun", "tencent"],
                    "status_callback": "https://hooks.example.com/sms",
                }
            ],
            "recipients": [{"id": "B.00000", "to": "+6591234567", "c": 0}],
        }
    )
    queues, webhooks = MemoryQueues(), MemoryWebhooks()
    deps = DispatchDeps(
        provider=ScriptedProvider(name=A),
        store=store,
        claims=MemoryClaims(),
        queues=queues,
        receipts=store,
        webhooks=webhooks,
    )
    summary = dispatch_pack(pack, deps, now=NOW, last_attempt=False)
    message = store.messages["B.00000"]
    assert (message.status, message.provider) == (Status.QUEUED, T)
    assert (summary.delivered, summary.undelivered) == (0, 1)  # the dispatcher's metrics: Alibaba's failure
    assert [p.pack_id for p in queues.sent[T]] == [resend_pack_id("B.00000")]
    assert [d.event.type for d in webhooks.sent] == [FAILOVER_EVENT]


def test_a_body_without_the_flag_hashes_as_before_and_one_with_it_differently() -> None:
    plain = MessageSpec.model_validate({"to": "+6591234567", "text": "hi"})
    assert "failover_on_undelivered" not in plain.model_dump_json()
    flagged = MessageSpec.model_validate({"to": "+6591234567", "text": "hi", "failover_on_undelivered": True})
    assert body_hash([plain]) != body_hash([flagged])


def test_the_first_attempts_failure_counts_for_its_provider_and_the_resend_keeps_owner_and_cost() -> None:
    store = MemoryStore()
    store.messages["B.00000"] = record(owner="billing", price="0.05", cost="0.05", currency="USD")
    first = push(A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t1")
    # Route statistics: the provider the message left failed it, though the message itself is not final.
    assert [(r.provider, r.status) for r in first.finals] == [(A, Status.UNDELIVERED)]
    again = push(A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t1")
    assert again.finals == []  # a repeated receipt counts nothing twice

    tencent = ScriptedProvider(name=T)
    queues = MemoryQueues()
    queues.send_packs(T, [_pack(first.resends[0])])
    send_resends(store, queues, MemoryClaims(), tencent)
    message = store.messages["B.00000"]
    assert message.status is Status.SUBMITTED
    assert (message.owner, message.price, message.cost, message.currency) == ("billing", "0.05", "0.05", "USD")


def test_the_failover_event_is_signed_for_the_messages_api_key_as_its_status_events() -> None:
    store = MemoryStore()
    store.messages["B.00000"] = record(owner="billing-key-id")
    pushed = push(A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t1")
    assert [d.event.type for d in pushed.webhooks] == [FAILOVER_EVENT]
    # functions/webhooks/app.py signs with webhook_secrets(owner=delivery.owner): None is the deployment's default,
    # which the key's own receiver refuses.
    assert pushed.webhooks[0].owner == "billing-key-id"


def test_a_write_from_a_read_of_the_first_attempt_cannot_land_on_the_resend_its_dispatcher_wrote() -> None:
    """A dispatcher writes its records whole, without reading them: it set version 0 again, so a versioned writer
    that had read the first attempt at 0 (a reconcile run, seconds into its status query) expired the resend the
    next provider had just taken. Its write now finds a version no earlier read can hold."""
    from globesms.reconcile.service import expire

    store = MemoryStore()
    store.messages["B.00000"] = record()
    stale = store.reload("B.00000")  # the first attempt, as a reconcile run read it
    assert stale is not None and stale.version == 0
    first = push(A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t1")
    queues, claims = MemoryQueues(), MemoryClaims()
    queues.send_packs(T, [_pack(first.resends[0])])
    send_resends(store, queues, claims, ScriptedProvider(name=T))
    resent = store.messages["B.00000"]
    assert (resent.status, resent.provider) == (Status.SUBMITTED, T)
    assert expire(store, stale, NOW + timedelta(seconds=6)) is None  # refused: the record moved on
    assert store.messages["B.00000"] == resent


def test_a_queued_resend_and_its_failover_event_show_the_first_submit_once() -> None:
    """Until the resend is dispatched its record keeps the first attempt's submitted_at (the route statistics time
    that attempt's receipt from it), and the failover stores the same SUBMITTED as a step: the API and the
    message.failover webhook showed it twice (found by a review)."""
    store = MemoryStore()
    first_submit = NOW - timedelta(seconds=30)
    store.messages["B.00000"] = record(created_at=iso(NOW - timedelta(minutes=1)), submitted_at=iso(first_submit))
    result = push(A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t1")
    message = store.messages["B.00000"]
    assert message.status is Status.QUEUED  # the resend, not dispatched yet
    shown = [e.status for e in message_view(message, None).events]
    assert shown == [Status.ACCEPTED, Status.SUBMITTED, Status.UNDELIVERED, Status.QUEUED]
    (failover,) = [d for d in result.webhooks if d.event.type == "message.failover"]
    assert [e["status"] for e in failover.event.message["events"]].count("SUBMITTED") == 1


def test_a_later_report_of_the_first_attempt_in_the_same_push_is_kept_as_the_first_attempts() -> None:
    """Part 1 of a long Huawei message says UNDELIVERED (a route failure: resent through Tencent), part 2 in the same
    push says DELIVRD. Part 2 is the first attempt's, kept as such and counted as a duplicate delivery, as it is
    when it comes in a push of its own; until 2026-12-07 it was held for the message under Huawei, where nothing
    reads it any more (found by a review)."""

    def part(n: int, status: Status, code: str) -> DeliveryReport:
        return DeliveryReport(
            provider=H, provider_message_id="hw-1", status=status, raw_status=code, error_code=code,
            to="+6591234567", provider_time="t1", part=n, parts=2,
        )  # fmt: skip

    store = MemoryStore()
    store.messages["B.00000"] = record(provider="huawei", provider_message_id="hw-1", route=["huawei", "tencent"])
    pushed = [part(1, Status.UNDELIVERED, "ROUTE_FAILURE"), part(2, Status.DELIVERED, "DELIVRD")]
    result = record_push(pushed, store=store, now=NOW)
    message = store.messages["B.00000"]
    assert (message.provider, result.held, result.duplicate_deliveries) == (T, 0, 1)
    assert any(e.get("earlier_attempt") for e in message.events or [])


def test_a_sending_step_names_the_provider_it_happened_at_after_the_message_moved_on() -> None:
    """An unknown outcome at Alibaba, its resend failed over to Tencent (Alibaba's breaker open): the SENDING steps
    are Alibaba's, not the provider the message is on now (found by a review of the history's providers)."""
    from globesms.accept.queries import history
    from globesms.dispatch.records import outcome_records
    from globesms.dispatch.unknown_outcomes import resend_packs
    from globesms.errors import ErrorCategory, ProviderError
    from globesms.models.outbound import SendOutcome

    pack = resend_pack(record(status="QUEUED", provider_message_id=None, submitted_at=None))
    timeout = ProviderError(ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT", "")
    (sending,) = outcome_records(pack, [(0, SendOutcome(message_id="B.00000", error=timeout))], NOW)
    (resent,) = resend_packs(pack.model_copy(update={"recipients": [
        pack.recipients[0].model_copy(update={"history": sending.events})
    ]}), {"B.00000"}, now=NOW + timedelta(minutes=15))  # fmt: skip
    steps = resent.recipients[0].history or []
    moved = record(provider="tencent", provider_message_id="tc-1", events=steps, submitted_at=iso(NOW))
    assert {e.provider for e in history(moved) if e.status is Status.SENDING} == {A}
