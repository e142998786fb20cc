"""Validity that holds in the gateway: a recipient whose validity ran out before it reached a provider ends EXPIRED
with VALIDITY_LAPSED and is never sent; an OTP naming no validity gets the default. Fixed clocks throughout."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from globesms.accept.service import accept
from globesms.dispatch.records import lapsed_record
from globesms.dispatch.sending import outbound_messages
from globesms.dispatch.service import DispatchDeps, dispatch_pack
from globesms.dispatch.summary import DispatchSummary
from globesms.dispatch.validity import lapsed_positions
from globesms.domain.status import Status
from globesms.errors import DispatchCode
from globesms.guardrails.release import never_reached_a_provider
from globesms.models.api import MessageSpec
from globesms.models.outbound import DEFAULT_VALIDITY_SECONDS, OTP_DEFAULT_VALIDITY_SECONDS, MessageType, ProviderName
from globesms.models.packs import DispatchPack
from tests.fakes import MemoryClaims, MemoryQueues, MemoryStore, MemoryWebhooks, ScriptedProvider

ACCEPTED = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
HOOK = "https://example.com/hook"


def a_pack(*contents: dict[str, Any], attempt: int = 0, cost: str | None = None) -> DispatchPack:
    """One recipient per content, accepted at ACCEPTED."""
    return DispatchPack.model_validate(
        {
            "pack_id": f"B:aliyun:{attempt}",
            "batch_id": "B",
            "provider": "aliyun",
            "created_at": "2026-12-04T10:00:00.000000Z",
            "attempt": attempt,
            "owner": "billing",
            "contents": list(contents),
            "recipients": [
                {"id": f"B.{i:05d}", "to": f"+8525123456{i}", "c": i, "segments": 1, "cost": cost}
                for i in range(len(contents))
            ],
        }
    )


def otp(**fields: Any) -> dict[str, Any]:
    """An OTP content as accept writes it: with the default validity unless the request named one."""
    return {"type": "OTP", "text": "code 1", "status_callback": HOOK, "validity_seconds": 600, **fields}


def dispatch(
    pack: DispatchPack, now: datetime
) -> tuple[DispatchSummary, MemoryStore, ScriptedProvider, MemoryWebhooks]:
    store, provider, webhooks = MemoryStore(), ScriptedProvider(), MemoryWebhooks()
    deps = DispatchDeps(
        provider=provider, store=store, claims=MemoryClaims(), queues=MemoryQueues(), receipts=store, webhooks=webhooks
    )
    return dispatch_pack(pack, deps, now=now, last_attempt=False), store, provider, webhooks


def test_an_otp_without_validity_is_accepted_with_the_default_and_alibaba_is_sent_it() -> None:
    assert OTP_DEFAULT_VALIDITY_SECONDS == DEFAULT_VALIDITY_SECONDS[MessageType.OTP] == 600
    store, queues = MemoryStore(), MemoryQueues()
    specs = [
        MessageSpec.model_validate({"to": ["+85251234567"], "text": "code 1", "type": "OTP"}),
        MessageSpec.model_validate({"to": ["+6591234567"], "text": "code 2", "type": "OTP", "validity_seconds": 120}),
        MessageSpec.model_validate({"to": ["+447911123456"], "text": "note", "type": "NOTIFY"}),
    ]
    accept(specs, batch_id="B1", source="api", now=ACCEPTED, retention_days=90, store=store, queues=queues)
    by_number = {m.to: m.validity_seconds for m in store.messages.values()}
    assert by_number == {"+85251234567": 600, "+6591234567": 120, "+447911123456": None}
    messages = [m for pack in queues.sent[ProviderName.ALIYUN] for m in outbound_messages(pack)]
    assert {m.to: m.validity_seconds for m in messages} == by_number  # Alibaba's ValidityPeriod
    assert [m.validity_seconds for m in messages if m.to == "+85251234567"] == [600]


def test_a_provider_is_sent_the_validity_left_not_the_whole_of_it() -> None:
    # Waited nine minutes in the gateway (deferred, retried, quiet-held): Alibaba told ValidityPeriod=600 would keep
    # trying for ten more, nineteen after accept.
    pack = a_pack(otp(), {"type": "NOTIFY", "text": "n"})
    _, _, provider, _ = dispatch(pack, ACCEPTED + timedelta(minutes=9, seconds=0.5))
    sent = {m.message_id: m.validity_seconds for call in provider.calls for m in call}
    assert sent == {"B.00000": 60, "B.00001": None}  # 59.5 s left, rounded up; none stays none


def test_validity_counts_from_accept_and_lapses_at_its_end() -> None:
    pack = a_pack(otp(), otp(validity_seconds=60), {"type": "NOTIFY", "text": "n"})
    assert lapsed_positions(pack, ACCEPTED + timedelta(seconds=59)) == set()
    assert lapsed_positions(pack, ACCEPTED + timedelta(seconds=60)) == {1}
    assert lapsed_positions(pack, ACCEPTED + timedelta(seconds=599)) == {1}
    assert lapsed_positions(pack, ACCEPTED + timedelta(seconds=600)) == {0, 1}
    # A message with no validity (a NOTIFY naming none) is never dropped by the gateway: the carrier's default applies.
    assert lapsed_positions(pack, ACCEPTED + timedelta(days=30)) == {0, 1}


def test_a_scheduled_message_counts_its_validity_from_send_at() -> None:
    send_at = ACCEPTED + timedelta(hours=2)
    pack = a_pack(otp(send_at=send_at.isoformat()))
    assert lapsed_positions(pack, send_at + timedelta(seconds=599)) == set()
    assert lapsed_positions(pack, send_at + timedelta(seconds=600)) == {0}


def test_a_lapsed_recipient_is_never_sent_and_ends_expired_with_its_step_and_event() -> None:
    # A retry pack (waiting behind a transient error, or deferred for a rate-limit permit) dispatched 5 minutes
    # after accept: the 1-minute OTP has lapsed, the default-validity one has not.
    pack = a_pack(otp(validity_seconds=60), otp(), attempt=1)
    now = ACCEPTED + timedelta(minutes=5)
    summary, store, provider, webhooks = dispatch(pack, now)
    assert [m.message_id for call in provider.calls for m in call] == ["B.00001"]
    assert (summary.submitted, summary.lapsed, summary.failed) == (1, 1, 0)
    lapsed = store.messages["B.00000"]
    assert lapsed.status is Status.EXPIRED and lapsed.status.is_final
    assert (lapsed.error_code, lapsed.provider_message_id, lapsed.submitted_at) == ("VALIDITY_LAPSED", None, None)
    assert lapsed.receipt_due_at is None  # nothing to reconcile: it was never sent
    assert [(e["status"], e["error_code"]) for e in lapsed.events or []] == [("EXPIRED", "VALIDITY_LAPSED")]
    assert store.messages["B.00001"].status is Status.SUBMITTED
    assert {d.event.type for d in webhooks.sent} == {"message.expired"}


def test_a_pack_whose_every_recipient_lapsed_makes_no_call() -> None:
    pack = a_pack(otp(), otp(validity_seconds=120))
    summary, store, provider, _ = dispatch(pack, ACCEPTED + timedelta(minutes=11))
    assert provider.calls == []
    assert summary.lapsed == 2 and summary.submitted == 0
    assert {m.status for m in store.messages.values()} == {Status.EXPIRED}


def test_a_lapsed_recipient_gives_its_reservation_back() -> None:
    pack = a_pack(otp(validity_seconds=60), cost="0.04")
    record = lapsed_record(pack, 0, ACCEPTED + timedelta(minutes=2))
    assert record.error_code == DispatchCode.VALIDITY_LAPSED and never_reached_a_provider(record)

    class Releases:
        given_back: dict[str, Decimal] = {}

        def release_once(
            self, month: str, scopes: Collection[str], amounts: Mapping[str, Decimal], expires_at: int | None
        ) -> Decimal:
            self.given_back.update(amounts)
            return sum(amounts.values(), Decimal(0))

    releases, store = Releases(), MemoryStore()
    deps = DispatchDeps(
        provider=ScriptedProvider(),
        store=store,
        claims=MemoryClaims(),
        queues=MemoryQueues(),
        receipts=store,
        webhooks=MemoryWebhooks(),
        spend=releases,  # type: ignore[arg-type]
    )
    dispatch_pack(pack, deps, now=ACCEPTED + timedelta(minutes=2), last_attempt=False)
    assert releases.given_back == {"B.00000": Decimal("0.04")}
