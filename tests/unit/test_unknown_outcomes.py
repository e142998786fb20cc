"""The unknown-outcome window (issue 5): a message whose outcome stayed unknown is settled after the window by
the policy — FAILED by default, or sent once more — unless its receipt came first."""

from datetime import UTC, datetime, timedelta

import pytest

from globesms.dispatch.service import DispatchDeps, DispatchPolicies, Recorders, dead_letter_unbuilt, dispatch_pack
from globesms.dispatch.unknown_outcomes import EXPIRED_CODE, UnknownOutcomeAction, UnknownOutcomePolicy
from globesms.domain.provider_limits import PACK_BYTES_BUDGET, SQS_MESSAGE_BYTES
from globesms.domain.status import Status
from globesms.errors import ErrorCategory, ProviderError
from globesms.models.outbound import ProviderName
from globesms.models.packs import DispatchPack
from globesms.models.receipts import DeliveryReport, EchoRange
from globesms.receipts.apply import record_push
from tests.fakes import MemoryClaims, MemoryQueues, MemoryStore, MemoryWebhooks, ScriptedProvider

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
TIMEOUT = ProviderError(ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT", "no answer in time")


def pack() -> DispatchPack:
    return DispatchPack.model_validate(
        {
            "pack_id": "B:aliyun:0",
            "batch_id": "B",
            "provider": "aliyun",
            "created_at": "2026-11-26T09:59:00.000000Z",
            "contents": [{"type": "OTP", "text": "code 1", "status_callback": "https://example.com/hook"}],
            "recipients": [{"id": f"B.{i:05d}", "to": f"+8525123456{i}", "c": 0} for i in range(3)],
        }
    )


class World:
    def __init__(self, policy: UnknownOutcomePolicy) -> None:
        self.store, self.claims, self.queues, self.webhooks = (
            MemoryStore(),
            MemoryClaims(),
            MemoryQueues(),
            MemoryWebhooks(),
        )
        self.policy = policy

    def dispatch(self, p: DispatchPack, provider: ScriptedProvider, now: datetime):  # type: ignore[no-untyped-def]
        deps = DispatchDeps(
            provider=provider,
            store=self.store,
            claims=self.claims,
            queues=self.queues,
            receipts=self.store,
            webhooks=self.webhooks,
            policies=DispatchPolicies(unknown_outcomes=self.policy),
        )
        return dispatch_pack(p, deps, now=now, last_attempt=False)

    def take(self) -> DispatchPack:
        return self.queues.sent["aliyun"].pop(0)  # type: ignore[index]


def delivered_receipt(provider_message_id: str, at: str) -> DeliveryReport:
    """Alibaba's DELIVERED receipt of B.00001's first send, matched by the echo of its id and its number."""
    return DeliveryReport(
        provider=ProviderName.ALIYUN,
        provider_message_id=provider_message_id,
        status=Status.DELIVERED,
        raw_status="DELIVRD",
        to="+85251234561",
        echo=EchoRange("B", 1, 1),
        provider_time=at,
    )


def timed_out(world: World) -> DispatchPack:
    """Send the pack with one recipient timing out; returns its settle pack."""
    provider = ScriptedProvider(answer=lambda m: TIMEOUT if m.message_id == "B.00001" else None)
    summary = world.dispatch(pack(), provider, NOW)
    assert summary.unknown == 1
    settle = world.take()
    assert (settle.purpose, settle.pack_id, [r.id for r in settle.recipients]) == (
        "settle",
        "B:aliyun:0.u",
        ["B.00001"],
    )
    assert world.queues.delays[-1] == min(900, world.policy.window_seconds)
    return settle


def test_no_receipt_in_the_window_fails_the_message_and_sends_nothing() -> None:
    world = World(UnknownOutcomePolicy(window_seconds=600))
    settle = timed_out(world)
    provider = ScriptedProvider()
    summary = world.dispatch(settle, provider, NOW + timedelta(seconds=600))
    assert summary.expired == 1 and not provider.calls
    record = world.store.messages["B.00001"]
    assert (record.status, record.error_category, record.error_code) == (Status.FAILED, "unknown_outcome", EXPIRED_CODE)
    assert [e["id"] for e in record.events or []] == ["sending", "unknown-outcome-expired"]
    assert [d.event.type for d in world.webhooks.sent] == ["message.failed"]


def test_a_receipt_within_the_window_wins() -> None:
    world = World(UnknownOutcomePolicy(window_seconds=600))
    settle = timed_out(world)
    delivered = world.store.messages["B.00001"].model_copy(update={"status": Status.DELIVERED, "version": 1})
    world.store.messages["B.00001"] = delivered
    summary = world.dispatch(settle, ScriptedProvider(), NOW + timedelta(seconds=600))
    assert summary.expired == 0 and summary.skipped == 1
    assert world.store.messages["B.00001"].status is Status.DELIVERED


def test_a_settle_pack_that_comes_early_waits_again_for_the_rest_of_the_window() -> None:
    world = World(UnknownOutcomePolicy(window_seconds=3600))
    settle = timed_out(world)
    assert world.queues.delays[-1] == 900  # SQS's longest delay: the rest is waited in further hops
    summary = world.dispatch(settle, ScriptedProvider(), NOW + timedelta(seconds=900))
    assert summary.expired == 0
    again = world.take()
    assert again.pack_id == settle.pack_id and world.queues.delays[-1] == 900
    assert world.store.messages["B.00001"].status is Status.SENDING
    world.dispatch(again, ScriptedProvider(), NOW + timedelta(seconds=3600))
    assert world.store.messages["B.00001"].status is Status.FAILED


def test_the_resend_policy_sends_once_more_and_then_fails() -> None:
    world = World(UnknownOutcomePolicy(window_seconds=600, action=UnknownOutcomeAction.RESEND))
    settle = timed_out(world)
    world.dispatch(settle, ScriptedProvider(), NOW + timedelta(seconds=600))
    resend = world.take()
    assert (resend.purpose, resend.pack_id) == ("send", "B:aliyun:0.u.s")
    # The resend times out too: after its own window the message fails; it is never sent a third time.
    still = ScriptedProvider(answer=lambda m: TIMEOUT)
    world.dispatch(resend, still, NOW + timedelta(seconds=700))
    assert len(still.calls) == 1
    second_settle = world.take()
    summary = world.dispatch(second_settle, ScriptedProvider(), NOW + timedelta(seconds=1300))
    assert summary.expired == 1 and not world.queues.sent["aliyun"]  # type: ignore[index]
    record = world.store.messages["B.00001"]
    assert record.status is Status.FAILED
    assert "resend-after-unknown-outcome" in [e["id"] for e in record.events or []]


def test_a_repeated_settle_pack_is_skipped() -> None:
    world = World(UnknownOutcomePolicy(window_seconds=600))
    settle = timed_out(world)
    world.dispatch(settle, ScriptedProvider(), NOW + timedelta(seconds=600))
    summary = world.dispatch(settle, ScriptedProvider(), NOW + timedelta(seconds=700))
    assert summary.skipped == 1 and summary.expired == 0


def test_a_resend_is_not_sent_when_a_receipt_settled_the_message_while_it_waited() -> None:
    """Policy resend: the settle pack reads SENDING and queues `.u.s`; the DELIVERED receipt lands before `.u.s` is
    dispatched. Sent anyway, the person would be texted twice and DELIVERED overwritten with SUBMITTED."""
    world = World(UnknownOutcomePolicy(900, UnknownOutcomeAction.RESEND))
    world.dispatch(timed_out(world), ScriptedProvider(), NOW + timedelta(seconds=901))
    again = world.take()
    assert again.pack_id.endswith(".u.s")
    record = world.store.messages["B.00001"]
    delivered = record.model_copy(update={"status": Status.DELIVERED, "version": record.version + 1})
    world.store.messages["B.00001"] = delivered  # the receipts function's versioned write
    provider = ScriptedProvider()
    summary = world.dispatch(again, provider, NOW + timedelta(seconds=905))
    assert provider.calls == [] and summary.skipped == 1
    assert world.store.messages["B.00001"] == delivered


def test_a_first_attempt_receipt_applied_while_the_resend_is_in_flight_is_not_written_over() -> None:
    """The resend is read SENDING before its call; the first attempt's DELIVERED receipt is applied during the call.
    The records written after it went over that (a review): DELIVERED back to SUBMITTED, the receipt lost from the
    history, and a later UNDELIVERED of the resend could make a final status another."""
    world = World(UnknownOutcomePolicy(900, UnknownOutcomeAction.RESEND))
    world.dispatch(timed_out(world), ScriptedProvider(), NOW + timedelta(seconds=901))
    resend = world.take()
    assert resend.pack_id.endswith(".u.s")

    def receipt_arrives_during_the_call(_message: object) -> None:
        late = delivered_receipt("ali-first", "2026-11-26T10:16:00Z")
        assert record_push([late], store=world.store, now=NOW + timedelta(seconds=904)).applied == 1
        return None  # the resend is taken too

    summary = world.dispatch(
        resend, ScriptedProvider(answer=receipt_arrives_during_the_call), NOW + timedelta(seconds=905)
    )
    record = world.store.messages["B.00001"]
    assert record.status is Status.DELIVERED and record.receipt_ids
    assert summary.submitted == 0 and summary.unknown == 0  # nothing to settle again, nothing counted as sent


def test_a_receipt_failovers_pack_is_sent_though_its_recipient_carries_the_resend_step() -> None:
    """The resend's SUBMITTED record keeps the step; an early UNDELIVERED receipt then moves it (QUEUED) to the next
    provider in a `<message id>.resend` pack carrying that history: it is not a resend pack, and goes."""
    world = World(UnknownOutcomePolicy(900, UnknownOutcomeAction.RESEND))
    world.dispatch(timed_out(world), ScriptedProvider(), NOW + timedelta(seconds=901))
    again = world.take()
    record = world.store.messages["B.00001"]
    world.store.messages["B.00001"] = record.model_copy(update={"status": Status.QUEUED, "version": 5})
    moved = again.model_copy(update={"pack_id": "B.00001.resend"})
    provider = ScriptedProvider()
    world.dispatch(moved, provider, NOW + timedelta(seconds=905))
    assert [m.message_id for call in provider.calls for m in call] == ["B.00001"]


def _recorders(world: World) -> Recorders:
    return Recorders(world.store, world.claims, world.store, world.webhooks, None, DispatchPolicies())


def test_a_dispatcher_that_cannot_be_built_leaves_a_settle_pack_s_sent_recipients_alone() -> None:
    """Dead-lettered unbuilt, a settle pack's recipients were sent once already: their outcome is unknown, and a
    receipt may have settled them; FAILED over them would be a lie. The redrive settles them."""
    world = World(UnknownOutcomePolicy(window_seconds=600))
    settle = timed_out(world)
    before = dict(world.store.messages)
    dead_letter_unbuilt(settle, _recorders(world), ValueError("secret unreadable"), now=NOW + timedelta(seconds=600))
    assert world.store.messages == before and settle.pack_id not in world.claims.state


def test_a_dispatcher_that_cannot_be_built_keeps_what_a_receipt_said_of_a_resend_pack_s_recipient() -> None:
    world = World(UnknownOutcomePolicy(900, UnknownOutcomeAction.RESEND))
    world.dispatch(timed_out(world), ScriptedProvider(), NOW + timedelta(seconds=901))
    again = world.take()
    record = world.store.messages["B.00001"]
    delivered = record.model_copy(update={"status": Status.DELIVERED, "version": record.version + 1})
    world.store.messages["B.00001"] = delivered
    dead_letter_unbuilt(again, _recorders(world), ValueError("secret unreadable"), now=NOW + timedelta(seconds=905))
    assert world.store.messages["B.00001"] == delivered and world.claims.state[again.pack_id] == "DEAD"


def test_a_receipt_applied_while_an_unbuildable_dispatcher_writes_its_resend_pack_failed_is_kept() -> None:
    # The records it writes FAILED are written only over records still SENDING, as after a call: a receipt of the
    # first attempt applied between its read and its write is not written over.
    world = World(UnknownOutcomePolicy(900, UnknownOutcomeAction.RESEND))
    world.dispatch(timed_out(world), ScriptedProvider(), NOW + timedelta(seconds=901))
    again = world.take()
    read = world.store.get_messages

    def read_then_the_receipt_lands(ids):  # type: ignore[no-untyped-def]
        found = read(ids)
        world.store.get_messages = read  # type: ignore[method-assign]
        record_push([delivered_receipt("ali-first", "2026-11-26T10:16:00Z")], store=world.store, now=NOW)
        return found

    world.store.get_messages = read_then_the_receipt_lands  # type: ignore[method-assign]
    dead_letter_unbuilt(again, _recorders(world), ValueError("secret unreadable"), now=NOW + timedelta(seconds=905))
    assert world.store.messages["B.00001"].status is Status.DELIVERED


def test_a_settle_pack_retried_after_some_expiries_still_queues_every_message_failed_event() -> None:
    """Its events are queued after its writes: an attempt that expired some and then failed (a throttled write, a
    timeout) left them FAILED, and its retry, which finds them no longer SENDING, queued only the rest's."""
    world = World(UnknownOutcomePolicy(window_seconds=600))
    world.dispatch(pack(), ScriptedProvider(answer=lambda m: TIMEOUT), NOW)  # all 3 unknown
    settle = world.take()
    real, writes = world.store.save_delivery, []

    def throttled_on_the_second(record, *, expected_version):  # type: ignore[no-untyped-def]
        writes.append(record.id)
        if len(writes) == 2:
            raise RuntimeError("ProvisionedThroughputExceededException")
        return real(record, expected_version=expected_version)

    world.store.save_delivery = throttled_on_the_second  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        world.dispatch(settle, ScriptedProvider(), NOW + timedelta(seconds=600))
    world.dispatch(settle, ScriptedProvider(), NOW + timedelta(seconds=800))  # delivered again, past the lease
    assert all(world.store.messages[f"B.{i:05d}"].status is Status.FAILED for i in range(3))
    assert sorted({d.event.id for d in world.webhooks.sent}) == [f"B.{i:05d}.failed" for i in range(3)]


def test_a_receipt_after_the_fail_policy_settled_the_message_is_kept_in_its_history_and_changes_nothing() -> None:
    """As the policy says (dispatch/unknown_outcomes.py): it was held for a message it could never reach."""
    from globesms.receipts.apply import record_push

    world = World(UnknownOutcomePolicy(window_seconds=600))
    world.dispatch(timed_out(world), ScriptedProvider(), NOW + timedelta(seconds=600))
    failed = world.store.messages["B.00001"]
    assert (failed.status, failed.error_code) == (Status.FAILED, EXPIRED_CODE)
    late = delivered_receipt("ali-late", "2026-11-26T10:20:00Z")
    result = record_push([late], store=world.store, now=NOW + timedelta(seconds=700))
    kept = world.store.messages["B.00001"]
    assert (result.applied, result.held, result.webhooks) == (1, 0, [])
    assert (kept.status, kept.error_code) == (Status.FAILED, EXPIRED_CODE)
    assert (kept.events or [])[-1]["status"] == "DELIVERED"


def full_batch_pack(n: int = 1000) -> DispatchPack:
    """A full Alibaba batch pack, as accept packs it (within its 200 KB budget)."""
    batch = "01JDEXAMPLEBATCH0000000001"
    content = {"type": "NOTIFY", "text": "Your parcel is on its way", "sender_id": "Acme", "route": ["aliyun"]}
    recipient = {"c": 0, "country": "HK", "segments": 1, "price": "0.0400", "cost": "0.0400"}
    return DispatchPack.model_validate(
        {"pack_id": f"{batch}:aliyun:0", "batch_id": batch, "provider": "aliyun", "owner": "key-1",
         "created_at": "2026-11-26T09:59:00.000000Z", "currency": "USD", "contents": [content],
         "recipients": [{"id": f"{batch}.{i:05d}", "to": f"+8525123{i:04d}", **recipient} for i in range(n)]}
    )  # fmt: skip


class SqsSized(MemoryQueues):
    """Refuses a body over SQS's limit, as SQS does."""

    def send_packs(self, provider, packs, *, delay_seconds=0):  # type: ignore[no-untyped-def]
        if any(len(p.model_dump_json(exclude_none=True).encode()) > SQS_MESSAGE_BYTES for p in packs):
            raise RuntimeError("SQS refused a pack: message too long")
        super().send_packs(provider, packs, delay_seconds=delay_seconds)


def test_the_resend_of_a_full_batch_pack_is_split_into_packs_sqs_takes() -> None:
    """With the resend step (~150 bytes a recipient), the resend of a full pack was one pack over SQS's 256 KiB:
    refused at every receive of the settle pack, which never settled anybody (1,000 SENDING for good)."""
    world = World(UnknownOutcomePolicy(900, UnknownOutcomeAction.RESEND))
    world.queues = SqsSized()
    batch = full_batch_pack()
    assert len(batch.model_dump_json(exclude_none=True).encode()) <= PACK_BYTES_BUDGET
    world.dispatch(batch, ScriptedProvider(answer=lambda m: TIMEOUT), NOW)
    world.dispatch(world.take(), ScriptedProvider(), NOW + timedelta(seconds=901))  # the settle pack
    resends = world.queues.sent.pop("aliyun")  # type: ignore[call-overload]
    assert [p.pack_id for p in resends] == [f"{batch.pack_id}.u.s", f"{batch.pack_id}.u.s2"]
    assert all(len(p.model_dump_json(exclude_none=True).encode()) <= PACK_BYTES_BUDGET for p in resends)
    assert [r.id for p in resends for r in p.recipients] == [r.id for r in batch.recipients]
    provider = ScriptedProvider()
    for resend in resends:
        world.dispatch(resend, provider, NOW + timedelta(seconds=905))
    assert sum(len(call) for call in provider.calls) == 1000
    assert {m.status for m in world.store.messages.values()} == {Status.SUBMITTED}


def test_a_repeated_settle_queues_each_resend_pack_id_with_the_same_recipients_or_fewer() -> None:
    """The split is of the settle pack's recipients, whichever are resent: a repeat after a receipt settled some
    (their records no longer SENDING) must not move others into another pack id, which may have gone out already."""
    from globesms.dispatch.unknown_outcomes import resend_packs

    settle = full_batch_pack().model_copy(update={"pack_id": "B:aliyun:0.u", "purpose": "settle"})
    everyone = {r.id for r in settle.recipients}
    first = {p.pack_id: [r.id for r in p.recipients] for p in resend_packs(settle, everyone, now=NOW)}
    fewer = everyone - {r.id for r in settle.recipients[:300]}
    again = {p.pack_id: [r.id for r in p.recipients] for p in resend_packs(settle, fewer, now=NOW)}
    assert len(first) == 2 and set(again) <= set(first)
    assert all(set(ids) <= set(first[pack_id]) for pack_id, ids in again.items())
    assert sorted(i for ids in again.values() for i in ids) == sorted(fewer)


def test_a_receipt_that_settled_a_message_of_a_second_resend_pack_keeps_it_from_being_sent() -> None:
    world = World(UnknownOutcomePolicy(900, UnknownOutcomeAction.RESEND))
    batch = full_batch_pack()
    world.dispatch(batch, ScriptedProvider(answer=lambda m: TIMEOUT), NOW)
    world.dispatch(world.take(), ScriptedProvider(), NOW + timedelta(seconds=901))
    second = world.queues.sent["aliyun"][1]  # type: ignore[index]
    assert second.pack_id.endswith(".u.s2")
    settled = second.recipients[0].id
    record = world.store.messages[settled]
    world.store.messages[settled] = record.model_copy(update={"status": Status.DELIVERED, "version": 9})
    provider = ScriptedProvider()
    world.dispatch(second, provider, NOW + timedelta(seconds=905))
    assert settled not in {m.message_id for call in provider.calls for m in call}
    assert world.store.messages[settled].status is Status.DELIVERED


def test_a_settle_pack_hopping_through_a_long_window_counts_its_unknown_outcomes_only_once() -> None:
    """`RecipientsUnknownOutcome` counts a message when its outcome becomes unknown (`timed_out`: 1). Each 900 s hop
    of the settle pack counted it again: with a window of 45 minutes, 3 for one message, and the alarm on it too."""
    world = World(UnknownOutcomePolicy(window_seconds=2700))
    settle = timed_out(world)
    for hop in (1, 2):
        summary = world.dispatch(settle, ScriptedProvider(), NOW + timedelta(seconds=900 * hop + 1))
        assert (summary.unknown, summary.expired) == (0, 0)
        settle = world.take()
    assert world.store.messages["B.00001"].status is Status.SENDING
    summary = world.dispatch(settle, ScriptedProvider(), NOW + timedelta(seconds=2701))
    assert (summary.unknown, summary.expired) == (0, 1)
