"""Canceling recipients a dispatcher held back for their quiet hours (dispatch/holds.py, scheduling/cancel.py).

A marketing batch accepted at 18:00 in Hong Kong and reached by its dispatcher at 22:00 waits until 08:00: its held
recipients stay QUEUED for ten hours, in a chain of delayed packs (the hold). A cancel takes the hold (named on their
records); the dispatcher that ends the hold takes it too before sending, so one of the two wins. Fixed clocks: Hong
Kong is UTC+8 and Tokyo UTC+9 all year, London UTC+0 in December.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from globesms.accept.service import accept
from globesms.dispatch.deps import Recorders
from globesms.dispatch.service import DispatchDeps, dead_letter_unbuilt, dispatch_pack
from globesms.domain.status import Status
from globesms.models.api import MessageSpec
from globesms.models.packs import DispatchPack
from globesms.scheduling import cancel
from tests.fakes import (
    MemoryClaims,
    MemoryQueues,
    MemoryScheduleStore,
    MemorySpendReleases,
    MemoryStore,
    MemoryWebhooks,
    ScriptedProvider,
)

HK, HK_2, LONDON, TOKYO = "+85251234567", "+85251234568", "+447911123456", "+819012345678"
ACCEPTED_AT = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)  # 18:00 in Hong Kong: outside its quiet hours
HK_EVENING = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)  # 22:00 in Hong Kong, 23:00 in Tokyo, 14:00 in London
TOKYO_MORNING = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)  # 08:30 in Tokyo, 07:30 in Hong Kong
HK_MORNING = datetime(2026, 12, 5, 0, 0, tzinfo=UTC)  # 08:00 in Hong Kong


class World:
    def __init__(self, *numbers: str) -> None:
        self.store, self.claims, self.queues = MemoryStore(), MemoryClaims(), MemoryQueues()
        self.webhooks, self.provider = MemoryWebhooks(), ScriptedProvider()
        spec = MessageSpec.model_validate(
            {"to": list(numbers), "type": "MKT", "text": "sale", "status_callback": "https://hooks.example.com/s"}
        )
        accept(
            [spec],
            batch_id="b1",
            source="api",
            now=ACCEPTED_AT,
            retention_days=90,
            store=self.store,
            queues=self.queues,
        )
        self.dispatch = DispatchDeps(
            provider=self.provider,
            store=self.store,
            claims=self.claims,
            queues=self.queues,
            receipts=self.store,
            webhooks=self.webhooks,
        )
        self.cancels = cancel.CancelDeps(
            store=self.store,
            schedule=MemoryScheduleStore(self.store),
            claims=self.claims,
            webhooks=self.webhooks,
            spend=MemorySpendReleases(),
        )

    def last_pack(self) -> DispatchPack:
        return self.queues.sent["aliyun"][-1]

    def run(self, pack: DispatchPack, now: datetime) -> None:
        dispatch_pack(pack, self.dispatch, now=now, last_attempt=False)

    def sent_to(self) -> list[str]:
        return [m.to for call in self.provider.calls for m in call]

    def status(self, number: str) -> Status:
        (record,) = [r for r in self.store.messages.values() if r.to == number]
        return record.status

    def id_of(self, number: str) -> str:
        (record,) = [r for r in self.store.messages.values() if r.to == number]
        return record.id


def test_a_held_recipient_is_canceled_and_its_hold_ends_without_sending_it() -> None:
    world = World(HK, HK_2, LONDON)
    world.run(world.last_pack(), HK_EVENING)
    assert world.sent_to() == [LONDON]
    held = world.last_pack()
    assert held.pack_id == "b1:aliyun:0.q1"
    assert {world.store.messages[r.id].cancel_pack_id() for r in held.recipients} == {"b1:aliyun:0.q"}
    answer = cancel.cancel_batch(world.cancels, "b1", now=HK_EVENING + timedelta(minutes=5))
    assert answer is not None
    assert answer.canceled == sorted([world.id_of(HK), world.id_of(HK_2)])
    assert [(n.id, n.status) for n in answer.not_cancelable] == [(world.id_of(LONDON), Status.SUBMITTED)]
    world.run(held, HK_EVENING + timedelta(minutes=15))  # still night: the hold's next wait, nothing written
    assert world.last_pack().pack_id == "b1:aliyun:0.q2"
    world.run(world.last_pack(), HK_MORNING)  # the hours are over, but the hold was canceled
    assert world.sent_to() == [LONDON]
    assert (world.status(HK), world.status(HK_2)) == (Status.CANCELED, Status.CANCELED)
    canceled_events = {d.event.id for d in world.webhooks.sent if d.event.type == "message.canceled"}
    assert canceled_events == {f"{world.id_of(HK)}.canceled", f"{world.id_of(HK_2)}.canceled"}


def test_a_hold_its_dispatcher_ended_first_is_not_canceled() -> None:
    world = World(HK, LONDON)
    world.run(world.last_pack(), HK_EVENING)
    held = world.last_pack()
    assert world.claims.take_hold("b1:aliyun:0.q", now=HK_MORNING)  # its dispatcher, about to send
    answer = cancel.cancel_message(world.cancels, world.id_of(HK), now=HK_MORNING)
    assert answer is not None
    assert (answer.canceled, [(n.id, n.status) for n in answer.not_cancelable]) == (
        [],
        [(world.id_of(HK), Status.QUEUED)],
    )
    world.run(held, HK_MORNING)
    assert (world.sent_to(), world.status(HK)) == ([LONDON, HK], Status.SUBMITTED)


def test_one_held_recipient_is_canceled_by_its_message_id_only_when_alone_in_its_hold() -> None:
    world = World(HK, HK_2, LONDON)
    world.run(world.last_pack(), HK_EVENING)
    shared = cancel.cancel_message(world.cancels, world.id_of(HK), now=HK_EVENING)
    assert shared is not None and (shared.canceled, [n.id for n in shared.not_cancelable]) == ([], [world.id_of(HK)])
    alone = World(HK, LONDON)
    alone.run(alone.last_pack(), HK_EVENING)
    answer = cancel.cancel_message(alone.cancels, alone.id_of(HK), now=HK_EVENING)
    assert answer is not None and answer.canceled == [alone.id_of(HK)]
    alone.run(alone.last_pack(), HK_MORNING)
    assert (alone.sent_to(), alone.status(HK)) == ([LONDON], Status.CANCELED)


def test_a_hold_that_ends_for_some_starts_a_new_one_for_the_others_still_cancelable() -> None:
    world = World(HK, TOKYO, LONDON)
    world.run(world.last_pack(), HK_EVENING)  # Hong Kong and Tokyo both inside their hours
    assert [r.to for r in world.last_pack().recipients] == [HK, TOKYO]
    world.run(world.last_pack(), TOKYO_MORNING)  # Tokyo's are over, Hong Kong's not yet
    assert world.sent_to() == [LONDON, TOKYO]
    still = world.last_pack()
    assert (still.pack_id, [r.to for r in still.recipients]) == ("b1:aliyun:0.q1.q1", [HK])
    assert world.store.messages[world.id_of(HK)].cancel_pack_id() == "b1:aliyun:0.q1.q"
    answer = cancel.cancel_message(world.cancels, world.id_of(HK), now=TOKYO_MORNING)
    assert answer is not None and answer.canceled == [world.id_of(HK)]
    world.run(still, HK_MORNING)
    assert (world.sent_to(), world.status(HK)) == ([LONDON, TOKYO], Status.CANCELED)


def test_a_canceled_hold_whose_dispatcher_died_is_finished_canceled_not_taken_for_sent() -> None:
    """Two faults at once: the cancel died after taking the hold, before moving its recipients, and the dispatcher
    that found it canceled died before finishing its pack. The next delivery (the claim's lease run out) must not
    settle the recipients as possibly sent: nobody was."""
    world = World(HK, LONDON)
    world.run(world.last_pack(), HK_EVENING)
    held = world.last_pack()
    assert world.claims.cancel("b1:aliyun:0.q", now=HK_EVENING)  # and then the cancel request died
    world.claims.claim(held.pack_id, now=HK_MORNING, lease_seconds=120)  # and then its dispatcher died
    world.run(held, HK_MORNING + timedelta(minutes=5))
    assert (world.sent_to(), world.status(HK)) == ([LONDON], Status.CANCELED)


def test_a_held_recipient_is_not_canceled_alone_while_a_packmate_may_be_in_its_hold_untold() -> None:
    """The hold's records are told one write each: while Hong Kong's packmate is not yet, Hong Kong may not be
    canceled by its message id, or the hold it takes would cancel the packmate too, unasked."""
    world = World(HK, HK_2, LONDON)
    store, told = world.store, world.store.mark_held
    answers = []

    def one_by_one(ids: list[str], *, held_key: str) -> None:
        told(ids[:1], held_key=held_key)
        answers.append(cancel.cancel_message(world.cancels, ids[0], now=HK_EVENING))
        told(ids[1:], held_key=held_key)

    store.mark_held = one_by_one  # type: ignore[method-assign]
    world.run(world.last_pack(), HK_EVENING)
    ((answer),) = answers
    assert answer is not None and answer.canceled == []
    world.run(world.last_pack(), HK_MORNING)
    assert (world.status(HK), world.status(HK_2)) == (Status.SUBMITTED, Status.SUBMITTED)


def test_a_redriven_wait_carries_the_redrive_and_charges_its_spend_again() -> None:
    world = World(HK, LONDON)
    spend = MemorySpendReleases()
    world.dispatch = replace(world.dispatch, spend=spend)
    world.run(world.last_pack(), HK_EVENING)
    held = world.last_pack()
    # Its last receive finds the dispatcher unbuildable: FAILED, its spend given back, dead-lettered.
    dead_letter_unbuilt(held, Recorders.of(world.dispatch), RuntimeError("no credentials"), now=HK_EVENING)
    assert world.status(HK) is Status.FAILED and world.id_of(HK) in spend.released
    world.run(held, HK_EVENING + timedelta(minutes=40))  # the operator's redrive, still at night: it waits again
    assert world.last_pack().redrive_of is not None
    assert world.id_of(HK) not in spend.released  # charged again before it waits to be sent
    world.run(world.last_pack(), HK_MORNING)
    assert (world.sent_to(), world.status(HK)) == ([LONDON, HK], Status.SUBMITTED)


def test_a_canceled_holds_wait_dead_lettered_unbuilt_stays_canceled() -> None:
    world = World(HK, LONDON)
    world.run(world.last_pack(), HK_EVENING)
    held = world.last_pack()
    assert cancel.cancel_batch(world.cancels, "b1", now=HK_EVENING) is not None
    dead_letter_unbuilt(held, Recorders.of(world.dispatch), RuntimeError("no credentials"), now=HK_EVENING)
    assert world.status(HK) is Status.CANCELED
    assert not [d for d in world.webhooks.sent if d.event.type == "message.failed"]


def test_a_wait_that_fails_leaves_the_hold_cancelable_and_nobody_possibly_sent() -> None:
    world = World(HK, LONDON)
    world.run(world.last_pack(), HK_EVENING)
    held = world.last_pack()
    world.queues.fail_for.add("aliyun")
    with pytest.raises(RuntimeError):
        world.run(held, HK_EVENING + timedelta(minutes=15))
    world.queues.fail_for.clear()
    # The wait was noted on the claim before its queueing failed: the next wait may be on its queue (a lost
    # answer), so the claim is kept, and SQS's next delivery after the lease takes it over, queueing the same next
    # wait again (claimed once), the hold left open.
    world.run(held, HK_EVENING + timedelta(minutes=20))
    assert world.last_pack().pack_id == "b1:aliyun:0.q2"
    assert world.status(HK) is Status.ACCEPTED  # as accept wrote it (shown QUEUED), not SENDING
    answer = cancel.cancel_message(world.cancels, world.id_of(HK), now=HK_EVENING + timedelta(minutes=21))
    assert answer is not None and answer.canceled == [world.id_of(HK)]


def test_a_takeover_of_a_holds_first_pack_leaves_the_hold_a_wait_of_it_began() -> None:
    """Hong Kong and Tokyo are held from pack X; X's dispatcher dies before finishing. Tokyo's hours end first, and
    Hong Kong goes on in a hold of its own (`X.q1.q`). X's takeover queues `X.q1` again, which must not tell Hong
    Kong it is in `X.q` again: that hold has ended, and a cancel of it would be refused."""
    world = World(HK, TOKYO)
    before_tokyo_morning = TOKYO_MORNING - timedelta(minutes=31)  # 07:59 in Tokyo
    first = world.last_pack()
    finish = world.claims.finish

    def dies(pack_id: str) -> None:
        raise RuntimeError("the dispatcher died")

    world.claims.finish = dies  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        world.run(first, before_tokyo_morning)
    world.claims.finish = finish  # type: ignore[method-assign]
    world.run(world.last_pack(), before_tokyo_morning + timedelta(seconds=61))
    assert world.store.messages[world.id_of(HK)].held_key == ":aliyun:0.q1.q"
    world.run(first, before_tokyo_morning + timedelta(minutes=5))  # taken over past its lease
    assert world.store.messages[world.id_of(HK)].held_key == ":aliyun:0.q1.q"
    answer = cancel.cancel_message(world.cancels, world.id_of(HK), now=before_tokyo_morning + timedelta(minutes=6))
    assert answer is not None and answer.canceled == [world.id_of(HK)]


def test_a_wait_whose_claim_could_not_be_finished_after_queueing_its_next_sends_once() -> None:
    """The wait queued its next wait, then finishing its claim failed. Were the claim let go, SQS's redelivery of
    this wait after the hours ended would end the hold and send, and so would the next wait: texted twice. The
    claim is kept: the redelivery waits for the lease, then queues the same next wait again (claimed once)."""
    world = World(HK, LONDON)
    world.run(world.last_pack(), HK_EVENING)
    held = world.last_pack()
    finish = world.claims.finish

    def throttled(pack_id: str) -> None:
        if pack_id == held.pack_id:
            raise RuntimeError("ProvisionedThroughputExceeded")
        finish(pack_id)

    world.claims.finish = throttled  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        world.run(held, HK_MORNING - timedelta(minutes=1))  # 07:59: one more wait of 60 s
    world.claims.finish = finish  # type: ignore[method-assign]
    following = world.last_pack()
    world.run(following, HK_MORNING)  # 08:00: the next wait ends the hold and sends
    world.run(held, HK_MORNING + timedelta(minutes=3))  # SQS redelivers the wait whose finish failed
    world.run(world.last_pack(), HK_MORNING + timedelta(minutes=4))  # the next wait it queued again: done already
    assert world.sent_to().count(HK) == 1


def test_a_wait_whose_dispatcher_died_before_noting_it_is_dispatched_afresh_not_taken_for_sent() -> None:
    """It never ended the hold, so it sent nothing, and never noted a wait, so it queued nothing: the takeover
    dispatches the pack as just claimed, and the hold stays cancelable."""
    world = World(HK, LONDON)
    world.run(world.last_pack(), HK_EVENING)
    held = world.last_pack()
    night = HK_EVENING + timedelta(minutes=15)
    world.claims.claim(held.pack_id, now=night, lease_seconds=120)  # and then its dispatcher died (a timeout)
    world.run(held, night + timedelta(minutes=3))  # SQS's next delivery, past the lease: still night, it waits
    assert world.status(HK) is Status.ACCEPTED  # not SENDING: nobody called a provider for it
    assert world.last_pack().pack_id == "b1:aliyun:0.q2"
    answer = cancel.cancel_message(world.cancels, world.id_of(HK), now=night + timedelta(minutes=4))
    assert answer is not None and answer.canceled == [world.id_of(HK)]


def test_a_wait_not_noted_on_its_last_receive_is_recorded_failed_for_a_redrive() -> None:
    world = World(HK, LONDON)
    world.run(world.last_pack(), HK_EVENING)
    held = world.last_pack()

    def throttled(*args: object) -> None:
        raise RuntimeError("ProvisionedThroughputExceeded")

    world.claims.record_requeued = throttled  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        dispatch_pack(held, world.dispatch, now=HK_EVENING + timedelta(minutes=15), last_attempt=True)
    assert (world.status(HK), world.claims.state[held.pack_id]) == (Status.FAILED, "DEAD")
