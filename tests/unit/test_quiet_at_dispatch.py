"""Quiet hours checked again at dispatch (dispatch/quiet.py): an MKT recipient its dispatcher reaches inside its
quiet hours is not sent; it goes back on its queue, delayed, under a `.q<n>` pack, and goes once they end. Fixed
clocks: Hong Kong is UTC+8 all year, London is UTC+0 in December."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from globesms.accept.planning import plan_batch
from globesms.consent.quiet_window import Window
from globesms.dispatch.quiet import MAX_DELAY_SECONDS, quiet_delay, quiet_positions
from globesms.dispatch.service import DispatchDeps, RetryPack, dispatch_pack
from globesms.domain.status import Status
from globesms.errors import ErrorCategory, ProviderError
from globesms.models.api import MessageSpec
from globesms.models.outbound import MessageType
from globesms.models.packs import DispatchPack
from globesms.ports import Requeued
from tests.fakes import MemoryClaims, MemoryQueues, MemoryStore, MemoryWebhooks, ScriptedProvider

HK, LONDON = "+85251234567", "+447911123456"
HK_EVENING = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)  # 22:00 in Hong Kong, 14:00 in London
HK_MORNING = datetime(2026, 12, 5, 0, 0, tzinfo=UTC)  # 08:00 in Hong Kong: the window's end


def mkt_pack(
    *numbers: str, quiet: str | None = "21:00-08:00", kind: str = "MKT", pack_id: str = "B:aliyun:0"
) -> DispatchPack:
    content: dict[str, Any] = {"type": kind, "text": "sale", "quiet_hours": quiet}
    return DispatchPack.model_validate(
        {
            "pack_id": pack_id,
            "batch_id": "B",
            "provider": "aliyun",
            "created_at": "2026-12-04T10:00:00.000000Z",
            "contents": [content],
            "recipients": [{"id": f"B.{i:05d}", "to": n, "c": 0, "segments": 1} for i, n in enumerate(numbers)],
        }
    )


def test_only_an_mkt_recipient_inside_its_window_is_held_with_the_wait_until_its_end() -> None:
    assert quiet_positions(mkt_pack(HK, LONDON), HK_EVENING) == {0: 10 * 3600}
    assert quiet_positions(mkt_pack(HK), HK_MORNING) == {}
    assert quiet_positions(mkt_pack(HK, kind="NOTIFY"), HK_EVENING) == {}
    assert quiet_positions(mkt_pack(HK, quiet=None), HK_EVENING) == {}  # waived at accept
    assert quiet_delay({0: 36_000, 1: 40}) == 40 and quiet_delay({0: 36_000}) == MAX_DELAY_SECONDS


def test_accept_writes_the_window_in_force_on_mkt_records_only() -> None:
    specs = [
        MessageSpec.model_validate({"to": [HK], "type": "MKT", "text": "sale"}),
        MessageSpec.model_validate(
            {"to": [LONDON], "type": "MKT", "text": "sale", "quiet_hours": {"start": "20:30", "end": "08:30"}}
        ),
        MessageSpec.model_validate({"to": ["+6591234567"], "type": "NOTIFY", "text": "hi"}),
    ]
    plan = plan_batch(specs, batch_id="b", now=HK_MORNING + timedelta(hours=2), retention_days=90, opt_outs=None)
    assert [(r.type, r.quiet_hours) for r in plan.records] == [
        (MessageType.MKT, "21:00-08:00"),
        (MessageType.MKT, "20:30-08:30"),
        (MessageType.NOTIFY, None),
    ]
    assert Window.parse("20:30-08:30").text() == "20:30-08:30"


def test_the_dispatcher_sends_the_others_and_puts_the_quiet_one_back_until_morning() -> None:
    store, claims, queues, webhooks = MemoryStore(), MemoryClaims(), MemoryQueues(), MemoryWebhooks()
    provider = ScriptedProvider()
    deps = DispatchDeps(provider=provider, store=store, claims=claims, queues=queues, receipts=store, webhooks=webhooks)
    summary = dispatch_pack(mkt_pack(HK, LONDON), deps, now=HK_EVENING, last_attempt=False)
    assert [m.to for call in provider.calls for m in call] == [LONDON]
    assert (summary.submitted, summary.quiet) == (1, 1)
    (held,) = queues.sent[held_provider := mkt_pack(HK).provider]
    assert (held.pack_id, [r.to for r in held.recipients], queues.delays) == (
        "B:aliyun:0.q1",
        [HK],
        [MAX_DELAY_SECONDS],
    )
    # a dispatcher dying now re-queues it, not loses it (B.00000, by its message id's sequence number)
    assert claims.notes("B:aliyun:0").requeued == Requeued(quiet=(0,), by_position=False)
    assert "B.00000" not in store.messages  # not sent, not recorded: still as accept wrote it
    # Still night 15 minutes later: back again, under the next id.
    dispatch_pack(held, deps, now=HK_EVENING + timedelta(minutes=15), last_attempt=False)
    assert queues.sent[held_provider][-1].pack_id == "B:aliyun:0.q2"
    # In the morning it goes.
    dispatch_pack(queues.sent[held_provider][-1], deps, now=HK_MORNING, last_attempt=False)
    assert [m.to for call in provider.calls for m in call] == [LONDON, HK]
    assert store.messages["B.00000"].status is Status.SUBMITTED


def test_a_dead_lettered_packs_quiet_recipient_comes_back_with_the_pack_only() -> None:
    """The last receive, London gets a 503 and Hong Kong is inside its quiet hours: queued on its own (`.q1`) it
    would be sent there and again by the redrive of the whole pack, so it is recorded FAILED with the pack."""
    store, claims, queues = MemoryStore(), MemoryClaims(), MemoryQueues()
    down = ProviderError(ErrorCategory.RETRYABLE, "ServiceUnavailable", "", 503)
    deps = DispatchDeps(
        provider=ScriptedProvider(answer=lambda m: down),
        store=store,
        claims=claims,
        queues=queues,
        receipts=store,
        webhooks=MemoryWebhooks(),
    )
    with pytest.raises(RetryPack):
        dispatch_pack(mkt_pack(HK, LONDON), deps, now=HK_EVENING, last_attempt=True)
    assert queues.sent == {}
    assert {(m.to, m.status) for m in store.messages.values()} == {(HK, Status.FAILED), (LONDON, Status.FAILED)}
    up = ScriptedProvider()  # the operator redrives it the next day, outside both windows
    redriven = HK_EVENING + timedelta(hours=20)  # 18:00 in Hong Kong, 10:00 in London
    dispatch_pack(mkt_pack(HK, LONDON), replace(deps, provider=up), now=redriven, last_attempt=False)
    assert sorted(m.to for call in up.calls for m in call) == sorted([HK, LONDON])
