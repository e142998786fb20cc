"""Every final status gets its webhook event, also when the path that wrote it stopped before queueing it and was
retried or taken over (event ids are stable: a repeat is dropped by the receiver). From a review of every path that
writes a final status; each test failed before its fix."""

from __future__ import annotations

from datetime import timedelta

import pytest

from globesms.dispatch.service import dispatch_pack
from globesms.domain.status import Status
from globesms.models.outbound import ProviderName
from globesms.models.receipts import StatusAnswer
from globesms.reconcile.service import ReconcileDeps, reconcile_due
from globesms.scheduling import cancel
from tests.fakes import MemoryClaims, MemoryDeadlines, MemoryRateLimiter, MemoryWebhooks
from tests.unit import test_receipt_failover as rf
from tests.unit import test_reconcile as rc
from tests.unit.test_scheduling import NOW, _accept, _deps, _dispatch_deps, _spec, world  # noqa: F401

CALLBACK = "https://hooks.example.com/sms"


class Throttled(Exception):
    pass


# A DELETE whose moves were written, then a DynamoDB error before their events: the retried DELETE announces them.
def test_a_retried_cancel_announces_what_the_interrupted_one_moved(world) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    store, schedule, _releases, queues = world
    spec = _spec(["+6591234567", "+6591234568"], NOW + timedelta(hours=1))
    spec.status_callback = CALLBACK
    _accept(store, queues, [spec])
    real = schedule.cancel_scheduled

    def moves_then_fails(ids, *, now):  # type: ignore[no-untyped-def]
        real(ids, now=now)  # move_each: the parallel moves that succeeded stay written...
        raise Throttled("ProvisionedThroughputExceeded on one move")  # ...and pool.map re-raises one failure

    schedule.cancel_scheduled = moves_then_fails
    webhooks = MemoryWebhooks()
    with pytest.raises(Throttled):
        cancel.cancel_batch(_deps(store, schedule, webhooks), "b1", now=NOW)
    schedule.cancel_scheduled = real
    answer = cancel.cancel_batch(_deps(store, schedule, webhooks), "b1", now=NOW)  # the client retries
    assert answer is not None and answer.canceled == ["b1.00000", "b1.00001"]
    assert {m.status for m in store.messages.values()} == {Status.CANCELED}
    assert sorted({d.event.id for d in webhooks.sent}) == ["b1.00000.canceled", "b1.00001.canceled"]


# A dispatcher finishing a cancel (the pack's claim CANCELED) whose moves were written, then an error: SQS delivers the
# pack again, and that delivery announces them.
def test_a_canceled_pack_delivered_again_announces_what_the_interrupted_delivery_moved(world) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    store, _schedule, _releases, queues = world
    spec = _spec(["+6591234567", "+6591234568"], None)
    spec.status_callback = CALLBACK
    _accept(store, queues, [spec])
    (pack,) = [p for packs in queues.sent.values() for p in packs]
    claims, webhooks = MemoryClaims(), MemoryWebhooks()
    assert claims.cancel(pack.pack_id, now=NOW)  # the DELETE took the pack, then died
    real = store.cancel_unsent

    def moves_then_fails(ids, *, now):  # type: ignore[no-untyped-def]
        real(ids, now=now)
        raise Throttled("one UpdateItem throttled")

    store.cancel_unsent = moves_then_fails
    with pytest.raises(Throttled):
        dispatch_pack(pack, _dispatch_deps(store, claims, webhooks), now=NOW, last_attempt=False)
    store.cancel_unsent = real
    dispatch_pack(pack, _dispatch_deps(store, claims, webhooks), now=NOW, last_attempt=False)  # SQS redelivery
    assert {m.status for m in store.messages.values()} == {Status.CANCELED}
    assert sorted({d.event.id for d in webhooks.sent}) == ["b1.00000.canceled", "b1.00001.canceled"]


# Reconcile stops at its time budget inside an entry too (one entry lists a whole pack): it went on past the
# function's timeout, and a killed run never queued the events of what it had settled (they are queued last).
def test_a_reconcile_run_stops_at_its_time_inside_an_entry_and_the_next_run_does_the_rest() -> None:
    n = 200
    records = [rc.record("aliyun", id=f"B.{i:05d}") for i in range(n)]  # one pack, one deadline: one entry
    store = rc.store_of(*records)
    start = rc.SUBMITTED_AT + timedelta(seconds=1200)
    clock = rc.Clock(start)
    webhooks = MemoryWebhooks()

    class SlowQuery(rc.Query):
        def query_status(self, record, *, now):  # type: ignore[no-untyped-def]
            clock.now += timedelta(seconds=1)  # a QueryMessage round trip and its write, exaggerated
            return super().query_status(record, now=now)

    query = SlowQuery("QueryMessage", *[StatusAnswer(report=rc.pulled(Status.DELIVERED))] * n)
    limiter = MemoryRateLimiter({"QueryMessage": 10_000})
    deps = ReconcileDeps(store, MemoryDeadlines(store), {ProviderName.ALIYUN: query}, limiter, webhooks, clock)
    first = reconcile_due(deps, rc.POLICY, stop_at=start + timedelta(seconds=90))
    assert first.examined == 90 and len(webhooks.sent) == 90  # stopped in time, its events queued
    again = reconcile_due(deps, rc.POLICY)
    assert first.examined + again.examined == n
    assert {m.status for m in store.messages.values()} == {Status.DELIVERED} and len(webhooks.sent) == n


# message.failover: the push queued the resend, then the webhook queue failed (a 5xx); the resend was sent before the
# provider pushed again, and the repeat announces the failover all the same.
def test_a_failover_announced_by_the_repeat_of_its_receipt_after_the_resend_was_sent() -> None:
    store = rf.MemoryStore()
    store.messages["B.00000"] = rf.record()
    first = rf.push(rf.A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t1")
    assert [d.event.type for d in first.webhooks] == ["message.failover"]  # ...but send_webhooks raised: 5xx
    queues = rf.MemoryQueues()
    queues.send_packs(rf.T, [rf._pack(r) for r in first.resends])  # queue_resends had succeeded
    rf.send_resends(store, queues, MemoryClaims(), rf.ScriptedProvider(name=rf.T))
    again = rf.push(rf.A, "ali-1", Status.UNDELIVERED, "ROUTE_FAILURE", store, at="t1")  # provider's retry
    assert store.messages["B.00000"].status is Status.SUBMITTED
    assert [(d.event.id, d.event.type) for d in again.webhooks] == [("B.00000.failover", "message.failover")]
