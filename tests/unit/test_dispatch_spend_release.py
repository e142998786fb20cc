"""Dispatch keeps what accept priced and who owns it, and gives back the reservation of a recipient that never
reached a provider (guardrails/release.py) — only that one, once per recipient."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from globesms.dispatch.records import outcome_records
from globesms.dispatch.service import DispatchDeps, RetryPack, dispatch_pack
from globesms.domain.status import Status
from globesms.errors import ErrorCategory, ProviderError
from globesms.guardrails import spend
from globesms.guardrails.release import never_reached_a_provider, recharge_redriven, release_unsent
from globesms.models.outbound import ProviderName, SendOutcome
from globesms.models.packs import DispatchPack
from globesms.ports import Claim
from tests.fakes import MemoryClaims, MemoryQueues, MemorySpendReleases, MemoryStore, MemoryWebhooks, ScriptedProvider

NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


class BrokenReleases:
    def release_once(self, *args: object) -> Decimal:
        raise RuntimeError("DynamoDB unavailable")


def priced_pack(n: int = 4) -> DispatchPack:
    return DispatchPack.model_validate(
        {
            "pack_id": "B:aliyun:0",
            "batch_id": "B",
            "provider": "aliyun",
            "created_at": "2026-11-30T23:59:00.000000Z",  # reserved in November; dispatched in December
            "owner": "billing",
            "currency": "USD",
            "contents": [{"type": "OTP", "text": "code 1", "sender_id": "Acme"}],
            "recipients": [
                {"id": f"B.{i:05d}", "to": f"+8525123456{i}", "c": 0, "segments": 1, "price": "0.04", "cost": "0.04"}
                for i in range(n)
            ],
        }
    )


def as_settle_left_them(store: MemoryStore, pack: DispatchPack) -> MemoryStore:
    """A resend pack's records as the settle pack that queued it read them: SENDING (the first send's outcome
    unknown). The resend's records are written only over those (`records.save_outcomes`)."""
    timeout = ProviderError(ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT", "")
    outcomes = [(i, SendOutcome(r.id, error=timeout)) for i, r in enumerate(pack.recipients)]
    store.put_messages(outcome_records(pack, outcomes, NOW))
    return store


def answer(message):  # type: ignore[no-untyped-def]
    return {
        "B.00001": ProviderError(ErrorCategory.RECIPIENT, "MOBILE_NUMBER_ILLEGAL", "bad number", 200),
        "B.00002": ProviderError(ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT", ""),
        "B.00003": ProviderError(ErrorCategory.REQUEST, "isv.INVALID_PARAMETERS", "bad", 200),
    }.get(message.message_id)


def dispatch(releases: object, store: MemoryStore, webhooks: MemoryWebhooks | None = None) -> None:
    deps = DispatchDeps(
        provider=ScriptedProvider(answer=answer),
        store=store,
        claims=MemoryClaims(),
        queues=MemoryQueues(),
        receipts=store,
        webhooks=webhooks or MemoryWebhooks(),
        spend=releases,  # type: ignore[arg-type]
    )
    dispatch_pack(priced_pack(), deps, now=NOW, last_attempt=False)


def test_the_dispatchers_records_keep_owner_price_and_cost() -> None:
    store = MemoryStore()
    dispatch(MemorySpendReleases(), store)
    for record in store.messages.values():
        assert (record.owner, record.price, record.cost, record.currency) == ("billing", "0.04", "0.04", "USD")


def test_only_the_recipients_that_never_reached_a_provider_are_given_back_to_their_month() -> None:
    store, releases = MemoryStore(), MemorySpendReleases()
    dispatch(releases, store)
    statuses = {i: r.status for i, r in store.messages.items()}
    assert statuses == {
        "B.00000": Status.SUBMITTED,
        "B.00001": Status.FAILED,
        "B.00002": Status.SENDING,  # may have been sent: kept
        "B.00003": Status.FAILED,
    }
    assert releases.released == {"B.00001", "B.00003"}
    assert releases.given_back == {
        ("2026-11", spend.DEPLOYMENT): Decimal("0.08"),
        ("2026-11", spend.key_scope("billing")): Decimal("0.08"),
    }
    assert releases.calls == 1  # one ledger call for the pack, not one per recipient


def test_a_repeated_release_gives_nothing_more() -> None:
    store, releases = MemoryStore(), MemorySpendReleases()
    dispatch(releases, store)
    assert release_unsent(releases, list(store.messages.values())) == 0
    assert releases.given_back[("2026-11", spend.DEPLOYMENT)] == Decimal("0.08")


def test_an_unknown_outcome_that_expires_failed_is_not_given_back() -> None:
    store = MemoryStore()
    dispatch(MemorySpendReleases(), store)
    expired = store.messages["B.00002"].model_copy(
        update={"status": Status.FAILED, "error_category": str(ErrorCategory.UNKNOWN_OUTCOME)}
    )
    assert not never_reached_a_provider(expired)
    assert not never_reached_a_provider(store.messages["B.00001"].model_copy(update={"cost": None}))
    assert never_reached_a_provider(store.messages["B.00001"])


@pytest.mark.parametrize("step", ["receipt-failover", "resend-after-unknown-outcome"])
def test_a_resend_that_fails_keeps_its_spend_since_its_first_attempt_reached_a_provider(step: str) -> None:
    store = MemoryStore()
    dispatch(MemorySpendReleases(), store)
    refused = store.messages["B.00001"]  # FAILED for a bad number, never sent: given back
    resent = refused.model_copy(update={"events": [{"id": step, "type": "status", "status": "QUEUED"}]})
    assert never_reached_a_provider(refused) and not never_reached_a_provider(resent)


def test_a_ledger_failure_never_fails_the_pack() -> None:
    store = MemoryStore()
    dispatch(BrokenReleases(), store)  # logged; the outcomes are recorded all the same
    assert store.messages["B.00001"].status is Status.FAILED


def test_the_status_event_names_the_owner_for_its_signing_secret() -> None:
    store, webhooks = MemoryStore(), MemoryWebhooks()
    pack = priced_pack()
    pack.contents[0].status_callback = "https://hooks.example.com/x"
    deps = DispatchDeps(
        provider=ScriptedProvider(answer=answer),
        store=store,
        claims=MemoryClaims(),
        queues=MemoryQueues(),
        receipts=store,
        webhooks=webhooks,
    )
    dispatch_pack(pack, deps, now=NOW, last_attempt=False)
    assert webhooks.sent and {d.owner for d in webhooks.sent} == {"billing"}


def test_a_failover_keeps_the_owner_the_reserved_cost_and_the_country() -> None:
    from globesms.dispatch.failover import reroute

    pack = priced_pack(2)
    pack.contents[0].route = ("aliyun", "tencent")  # type: ignore[assignment]
    pack.recipients[0].country = pack.recipients[1].country = "HK"
    moved = reroute(pack, [0, 1], reasons={}, now=NOW)
    (tencent_pack,) = moved.packs["tencent"]  # type: ignore[index]
    assert (tencent_pack.owner, tencent_pack.currency) == ("billing", "USD")
    assert [r.country for r in tencent_pack.recipients] == ["HK", "HK"]  # kept in the next provider's record
    assert [(r.price, r.cost) for r in tencent_pack.recipients] == [("0.04", "0.04")] * 2


def _deps(provider: ScriptedProvider, store: MemoryStore, claims: MemoryClaims, releases: object) -> DispatchDeps:
    return DispatchDeps(
        provider=provider,
        store=store,
        claims=claims,
        queues=MemoryQueues(),
        receipts=store,
        webhooks=MemoryWebhooks(),
        spend=releases,  # type: ignore[arg-type]
    )


def test_a_redriven_dead_lettered_pack_is_charged_again_once_before_it_is_sent() -> None:
    """Dead-lettered, its recipients are FAILED and their cost given back; an operator's redrive sends them, so the
    month's counters must hold that cost again, or the limit would let that much more through."""
    store, claims, releases = MemoryStore(), MemoryClaims(), MemorySpendReleases()
    busy = ProviderError(ErrorCategory.THROTTLED, "Throttling.User", "", 400)
    with pytest.raises(RetryPack):  # the last receive: recorded FAILED, then the dead-letter queue
        dispatch_pack(
            priced_pack(),
            _deps(ScriptedProvider(answer=lambda m: busy), store, claims, releases),
            now=NOW,
            last_attempt=True,
        )
    assert {r.status for r in store.messages.values()} == {Status.FAILED}
    november = ("2026-11", spend.DEPLOYMENT)
    assert releases.given_back[november] == Decimal("0.16") and claims.state["B:aliyun:0"] == "DEAD"

    provider = ScriptedProvider()
    summary = dispatch_pack(priced_pack(), _deps(provider, store, claims, releases), now=NOW, last_attempt=False)
    assert summary.submitted == 4 and len(provider.calls) == 1
    assert releases.given_back[november] == 0  # charged again: what was given back is spent after all
    assert {r.status for r in store.messages.values()} == {Status.SUBMITTED}
    again = dispatch_pack(priced_pack(), _deps(provider, store, claims, releases), now=NOW, last_attempt=False)
    assert again.skipped == 4 and releases.given_back[november] == 0  # a repeated delivery: sent and charged once


def test_a_redrive_that_fails_again_gives_back_again_and_the_next_redrive_charges_again() -> None:
    store, claims, releases = MemoryStore(), MemoryClaims(), MemorySpendReleases()
    refused = ProviderError(ErrorCategory.THROTTLED, "Throttling.User", "", 400)
    november = ("2026-11", spend.DEPLOYMENT)
    for _redrive in range(2):
        with pytest.raises(RetryPack):
            deps = _deps(ScriptedProvider(answer=lambda m: refused), store, claims, releases)
            dispatch_pack(priced_pack(), deps, now=NOW, last_attempt=True)
        assert releases.given_back[november] == Decimal("0.16")  # given back once per dead-lettering, never twice
    dispatch_pack(priced_pack(), _deps(ScriptedProvider(), store, claims, releases), now=NOW, last_attempt=False)
    assert releases.given_back[november] == 0


def test_a_redrive_whose_charge_fails_sends_nothing_and_stays_a_redrive() -> None:
    class Unreachable(MemorySpendReleases):
        def recharge_once(self, *args: object) -> Decimal:
            raise RuntimeError("DynamoDB unavailable")

    store, claims = MemoryStore(), MemoryClaims()
    claims.release("B:aliyun:0", dead_lettered_at=NOW)
    provider = ScriptedProvider()
    with pytest.raises(RuntimeError):
        dispatch_pack(priced_pack(), _deps(provider, store, claims, Unreachable()), now=NOW, last_attempt=False)
    assert provider.calls == [] and claims.state["B:aliyun:0"] == "DEAD"  # the next delivery charges first


def test_a_dead_lettered_resend_pack_keeps_its_spend_and_its_redrive_charges_nothing() -> None:
    """A resend pack (`.u.s`) resends messages whose first send may have gone out: dead-lettered, their records
    are FAILED but their spend is kept (`never_reached_a_provider`: sent before). Its redrive sends nobody whose
    record left SENDING (`settled_resends`), so nobody, and charges nothing."""
    resend = [{"id": "resend-after-unknown-outcome", "at": "2026-11-30T23:59:30.000000Z"}]
    base = priced_pack(2).model_dump()
    base["pack_id"] = "B:aliyun:0.u.s"
    for recipient in base["recipients"]:
        recipient["history"] = resend
    pack = DispatchPack.model_validate(base)
    store, claims, releases = as_settle_left_them(MemoryStore(), pack), MemoryClaims(), MemorySpendReleases()
    busy = ProviderError(ErrorCategory.THROTTLED, "Throttling.User", "", 400)
    with pytest.raises(RetryPack):
        deps = _deps(ScriptedProvider(answer=lambda m: busy), store, claims, releases)
        dispatch_pack(pack, deps, now=NOW, last_attempt=True)
    november = ("2026-11", spend.DEPLOYMENT)
    assert {r.status for r in store.messages.values()} == {Status.FAILED} and claims.state[pack.pack_id] == "DEAD"
    assert releases.given_back.get(november, 0) == 0 and releases.released == set()
    provider = ScriptedProvider()
    summary = dispatch_pack(pack, _deps(provider, store, claims, releases), now=NOW, last_attempt=False)
    assert summary.skipped == 2 and provider.calls == []
    assert releases.given_back.get(november, 0) == 0  # nothing given back, nothing charged again


class KilledAfterTheCall(ScriptedProvider):
    """The provider takes the pack; the dispatcher dies before it writes anything (the claim stays held)."""

    def send(self, messages, *, plan=None):  # type: ignore[no-untyped-def]
        super().send(messages, plan=plan)
        raise RuntimeError("the dispatcher was killed")


BUSY = ProviderError(ErrorCategory.THROTTLED, "Throttling.User", "", 400)
NOVEMBER = ("2026-11", spend.DEPLOYMENT)


#: When an operator's redrive brings the dead-lettered pack back.
REDRIVE = NOW + timedelta(hours=1)


def dead_lettered() -> tuple[MemoryStore, MemoryClaims, MemorySpendReleases]:
    """The pack's last receive: recorded FAILED, its spend given back, released DEAD at NOW."""
    store, claims, releases = MemoryStore(), MemoryClaims(), MemorySpendReleases()
    with pytest.raises(RetryPack):
        dispatch_pack(
            priced_pack(),
            _deps(ScriptedProvider(answer=lambda m: BUSY), store, claims, releases),
            now=NOW,
            last_attempt=True,
        )
    assert releases.given_back[NOVEMBER] == Decimal("0.16") and claims.state["B:aliyun:0"] == "DEAD"
    return store, claims, releases


def taken_over(
    pack: DispatchPack, store: MemoryStore, claims: MemoryClaims, releases: object, *, died: datetime
) -> dict[str, Status]:
    """The next delivery, once the dead holder's lease (taken at `died`) is over: what the records say then."""
    deps = _deps(ScriptedProvider(pack.provider), store, claims, releases)
    dispatch_pack(pack, deps, now=died + timedelta(minutes=5), last_attempt=False)
    return {i: r.status for i, r in store.messages.items()}


class Killed(BaseException):
    """The process killed mid-step (not an Exception: nothing of ours catches it)."""


def test_a_redrive_that_dies_after_its_call_leaves_its_recipients_unknown_not_failed() -> None:
    """Redriven an hour after the dead-lettering: charged again, the provider takes all four, the dispatcher dies
    before writing. The records still FAILED are the dead-lettering's: the takeover makes them SENDING (the
    provider may have sent them, and a receipt can still say so) and queues their settle pack; the spend stays
    charged."""
    store, claims, releases = dead_lettered()
    killed = KilledAfterTheCall()
    with pytest.raises(RuntimeError, match="killed"):
        dispatch_pack(priced_pack(), _deps(killed, store, claims, releases), now=REDRIVE, last_attempt=False)
    assert len(killed.calls) == 1 and releases.given_back[NOVEMBER] == 0  # charged again before the call
    queues = MemoryQueues()
    deps = replace(_deps(ScriptedProvider(), store, claims, releases), queues=queues)
    summary = dispatch_pack(priced_pack(), deps, now=REDRIVE + timedelta(minutes=5), last_attempt=False)
    assert summary.unknown == 4
    assert {(r.status, r.error_code) for r in store.messages.values()} == {(Status.SENDING, "DISPATCH_INTERRUPTED")}
    (settle,) = queues.sent["aliyun"]  # type: ignore[index]
    assert settle.purpose == "settle" and len(settle.recipients) == 4
    assert releases.given_back[NOVEMBER] == 0 and claims.state["B:aliyun:0"] == "DONE"


def test_a_redrive_that_died_before_its_charge_sent_nothing_and_its_takeover_leaves_the_records_failed() -> None:
    """The charge comes before the call: a redrive that died first called nobody. Its records stay FAILED, their
    spend given back (reopened, they would end FAILED again as unknown outcomes, whose spend is never given back)."""
    store, claims, releases = dead_lettered()
    assert claims.claim("B:aliyun:0", now=REDRIVE, lease_seconds=120) is Claim.REDRIVEN  # then killed
    assert set(taken_over(priced_pack(), store, claims, releases, died=REDRIVE).values()) == {Status.FAILED}
    assert releases.given_back[NOVEMBER] == Decimal("0.16")


def test_a_redrive_takeover_keeps_what_the_redrive_wrote() -> None:
    """The redrive wrote two records before it died (a batch write cut short): those are its, and stay."""
    store, claims, releases = dead_lettered()
    assert claims.claim("B:aliyun:0", now=REDRIVE, lease_seconds=120) is Claim.REDRIVEN
    recharge_redriven(releases, priced_pack())
    assert claims.mark_redriving("B:aliyun:0") == NOW
    refused = ProviderError(ErrorCategory.RECIPIENT, "MOBILE_NUMBER_ILLEGAL", "bad number", 200)
    written = outcome_records(
        priced_pack(),
        [
            (0, SendOutcome(message_id="B.00000", provider_message_id="pm-0")),
            (1, SendOutcome(message_id="B.00001", error=refused)),
        ],
        REDRIVE,
    )
    store.put_messages(written, [])
    assert taken_over(priced_pack(), store, claims, releases, died=REDRIVE) == {
        "B.00000": Status.SUBMITTED,
        "B.00001": Status.FAILED,  # the redrive's own answer: refused, not the dead-lettering's
        "B.00002": Status.SENDING,
        "B.00003": Status.SENDING,
    }


def test_a_pack_a_redrive_queued_and_whose_dispatcher_died_after_its_call_leaves_them_unknown() -> None:
    """The redrive is accepted for B.00000 and throttled for the rest, which it queues as `.r1` (no record written:
    still FAILED from the dead-lettering). `.r1`'s dispatcher dies after its call: its takeover knows from the pack
    that it was sending a REDRIVE, so those three become SENDING too."""
    store, claims, releases = dead_lettered()
    queues = MemoryQueues()
    throttled = ScriptedProvider(answer=lambda m: None if m.message_id == "B.00000" else BUSY)
    deps = replace(_deps(throttled, store, claims, releases), queues=queues)
    dispatch_pack(priced_pack(), deps, now=REDRIVE, last_attempt=False)
    (retry,) = queues.sent["aliyun"]  # type: ignore[index]
    assert retry.pack_id == "B:aliyun:0.r1" and retry.redrive_of == "2026-12-04T10:00:00.000000Z"
    retry = DispatchPack.model_validate_json(retry.model_dump_json())  # as SQS carries it
    with pytest.raises(RuntimeError, match="killed"):
        dispatch_pack(retry, _deps(KilledAfterTheCall(), store, claims, releases), now=REDRIVE, last_attempt=False)
    assert taken_over(retry, store, claims, releases, died=REDRIVE) == {
        "B.00000": Status.SUBMITTED,
        "B.00001": Status.SENDING,
        "B.00002": Status.SENDING,
        "B.00003": Status.SENDING,
    }


def test_a_redriven_resend_pack_whose_dispatcher_died_leaves_the_recipients_it_never_sends_failed() -> None:
    """A resend pack sends only recipients still SENDING; dead-lettered, they are all FAILED, so its redrive sends
    none of them, and its takeover must not make them SENDING."""
    base = priced_pack(2).model_dump()
    base["pack_id"] = "B:aliyun:0.u.s"
    for recipient in base["recipients"]:
        recipient["history"] = [{"id": "resend-after-unknown-outcome", "at": "2026-11-30T23:59:30.000000Z"}]
    pack = DispatchPack.model_validate(base)
    store, claims, releases = as_settle_left_them(MemoryStore(), pack), MemoryClaims(), MemorySpendReleases()
    with pytest.raises(RetryPack):
        deps = _deps(ScriptedProvider(answer=lambda m: BUSY), store, claims, releases)
        dispatch_pack(pack, deps, now=NOW, last_attempt=True)

    def killed(pack_id: str) -> None:
        raise RuntimeError("killed before finishing the claim")

    claims.finish = killed  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="killed"):
        dispatch_pack(pack, _deps(ScriptedProvider(), store, claims, releases), now=REDRIVE, last_attempt=False)
    del claims.finish
    assert set(taken_over(pack, store, claims, releases, died=REDRIVE).values()) == {Status.FAILED}


def test_an_interrupted_pack_never_dead_lettered_keeps_its_failed_records() -> None:
    store, claims, releases = MemoryStore(), MemoryClaims(), MemorySpendReleases()
    assert claims.claim("B:aliyun:0", now=NOW, lease_seconds=120) is Claim.CLAIMED
    refused = ProviderError(ErrorCategory.RECIPIENT, "MOBILE_NUMBER_ILLEGAL", "bad number", 200)
    store.put_messages(outcome_records(priced_pack(), [(1, SendOutcome(message_id="B.00001", error=refused))], NOW), [])
    later = NOW + timedelta(minutes=5)
    dispatch_pack(priced_pack(), _deps(ScriptedProvider(), store, claims, releases), now=later, last_attempt=False)
    assert store.messages["B.00001"].status is Status.FAILED


def test_a_redrive_killed_while_charging_called_nobody_and_its_takeover_leaves_the_records_failed() -> None:
    """The charge comes before the mark: killed while charging, it leaves no mark, and its takeover reopens
    nothing (the other order would reopen records nobody was sent)."""

    class KilledWhileCharging(MemorySpendReleases):
        def recharge_once(self, *args: object) -> Decimal:
            raise Killed

    store, claims, releases = dead_lettered()
    with pytest.raises(Killed):
        dispatch_pack(
            priced_pack(),
            _deps(ScriptedProvider(), store, claims, KilledWhileCharging()),
            now=REDRIVE,
            last_attempt=False,
        )
    assert set(taken_over(priced_pack(), store, claims, releases, died=REDRIVE).values()) == {Status.FAILED}
    assert releases.given_back[NOVEMBER] == Decimal("0.16")


def test_a_redrive_killed_between_its_charge_and_its_mark_gets_its_spend_given_back_by_the_takeover() -> None:
    store, claims, releases = dead_lettered()

    def killed(pack_id: str) -> None:
        raise Killed

    claims.mark_redriving = killed  # type: ignore[method-assign,assignment]
    with pytest.raises(Killed):
        dispatch_pack(
            priced_pack(), _deps(ScriptedProvider(), store, claims, releases), now=REDRIVE, last_attempt=False
        )
    del claims.mark_redriving
    assert releases.given_back[NOVEMBER] == 0  # charged again, then killed: nobody was texted
    assert set(taken_over(priced_pack(), store, claims, releases, died=REDRIVE).values()) == {Status.FAILED}
    assert releases.given_back[NOVEMBER] == Decimal("0.16")  # given back again by the takeover


def test_a_redrive_retried_as_a_whole_is_still_a_redrive_on_its_next_delivery() -> None:
    """Throttled as a whole, the redrive is released for a retry; the next delivery's claim is a redrive again (its
    charge a no-op), so the `.r1` pack it queues for the recipients throttled then carries the time too."""
    store, claims, releases = dead_lettered()
    queues = MemoryQueues()
    with pytest.raises(RetryPack):
        deps = _deps(ScriptedProvider(answer=lambda m: BUSY), store, claims, releases)
        dispatch_pack(priced_pack(), deps, now=REDRIVE, last_attempt=False)
    assert claims.state["B:aliyun:0"] == "OPEN"
    throttled = ScriptedProvider(answer=lambda m: None if m.message_id == "B.00000" else BUSY)
    deps = replace(_deps(throttled, store, claims, releases), queues=queues)
    dispatch_pack(priced_pack(), deps, now=REDRIVE + timedelta(minutes=3), last_attempt=False)
    (retry,) = queues.sent["aliyun"]  # type: ignore[index]
    assert retry.redrive_of == "2026-12-04T10:00:00.000000Z" and releases.given_back[NOVEMBER] == 0


def test_a_redrives_failover_pack_whose_dispatcher_died_after_its_call_leaves_them_unknown() -> None:
    """Alibaba refuses the redrive for our configuration: the four move to Tencent (`.f:tencent:0`), their records
    still FAILED from the dead-lettering. Tencent's dispatcher dies after its call: they become SENDING."""
    routed = priced_pack().model_dump()
    routed["contents"][0]["route"] = ["aliyun", "tencent"]
    pack = DispatchPack.model_validate(routed)
    store, claims, releases = MemoryStore(), MemoryClaims(), MemorySpendReleases()

    class Unplannable(ScriptedProvider):
        def check(self, message):  # type: ignore[no-untyped-def]
            raise RuntimeError("failed before any call")

    # Dead-lettered without a call (a throttled last attempt would move them to Tencent instead).
    with pytest.raises(RuntimeError, match="before any call"):
        dispatch_pack(pack, _deps(Unplannable(), store, claims, releases), now=NOW, last_attempt=True)
    assert {r.error_code for r in store.messages.values()} == {"DISPATCH_FAILED"}
    queues = MemoryQueues()
    refused = ProviderError(ErrorCategory.CONFIG, "isv.ACCOUNT_NOT_EXISTS", "", 200)
    deps = replace(_deps(ScriptedProvider(answer=lambda m: refused), store, claims, releases), queues=queues)
    dispatch_pack(pack, deps, now=REDRIVE, last_attempt=False)
    (moved,) = queues.sent["tencent"]  # type: ignore[index]
    assert moved.redrive_of == "2026-12-04T10:00:00.000000Z"
    moved = DispatchPack.model_validate_json(moved.model_dump_json())
    killed = KilledAfterTheCall(ProviderName.TENCENT)
    with pytest.raises(RuntimeError, match="killed"):
        dispatch_pack(moved, _deps(killed, store, claims, releases), now=REDRIVE, last_attempt=False)
    assert set(taken_over(moved, store, claims, releases, died=REDRIVE).values()) == {Status.SENDING}


def test_a_takeover_queues_again_what_a_redrive_put_back_as_part_of_that_redrive() -> None:
    """The redrive noted `.r1` on its claim and died before queueing it: the takeover's copy carries the time."""
    store, claims, releases = dead_lettered()
    down = MemoryQueues()
    down.fail_for = {ProviderName.ALIYUN}
    throttled = ScriptedProvider(answer=lambda m: None if m.message_id == "B.00000" else BUSY)
    with pytest.raises(RuntimeError, match="queue unavailable"):
        dispatch_pack(
            priced_pack(),
            replace(_deps(throttled, store, claims, releases), queues=down),
            now=REDRIVE,
            last_attempt=False,
        )
    queues = MemoryQueues()
    deps = replace(_deps(ScriptedProvider(), store, claims, releases), queues=queues)
    dispatch_pack(priced_pack(), deps, now=REDRIVE + timedelta(minutes=5), last_attempt=False)
    (retry,) = [p for p in queues.sent["aliyun"] if p.pack_id.endswith(".r1")]  # type: ignore[index]
    assert retry.redrive_of == "2026-12-04T10:00:00.000000Z"


def test_a_pack_a_redrive_queued_then_dead_lettered_and_redriven_in_turn_gets_its_spend_back_if_that_dies_early() -> (
    None
):
    """`.r1` carries the first dead-lettering's time, but its own claim says it was dead-lettered since, and its
    own redrive died between its charge and its mark: nobody was texted, whatever `.r1` came from."""
    store, claims, releases = dead_lettered()
    queues = MemoryQueues()
    throttled = ScriptedProvider(answer=lambda m: None if m.message_id == "B.00000" else BUSY)
    dispatch_pack(
        priced_pack(),
        replace(_deps(throttled, store, claims, releases), queues=queues),
        now=REDRIVE,
        last_attempt=False,
    )
    (retry,) = queues.sent["aliyun"]  # type: ignore[index]
    later = REDRIVE + timedelta(hours=1)
    with pytest.raises(RetryPack):  # `.r1`'s last receive: FAILED again, given back again, dead-lettered
        dispatch_pack(
            retry, _deps(ScriptedProvider(answer=lambda m: BUSY), store, claims, releases), now=later, last_attempt=True
        )
    assert releases.given_back[NOVEMBER] == Decimal("0.12")

    def killed(pack_id: str) -> None:
        raise Killed

    claims.mark_redriving = killed  # type: ignore[method-assign,assignment]
    with pytest.raises(Killed):
        dispatch_pack(
            retry,
            _deps(ScriptedProvider(), store, claims, releases),
            now=later + timedelta(hours=1),
            last_attempt=False,
        )
    del claims.mark_redriving
    assert releases.given_back[NOVEMBER] == 0
    statuses = taken_over(retry, store, claims, releases, died=later + timedelta(hours=1))
    assert statuses == {
        "B.00000": Status.SUBMITTED,
        "B.00001": Status.FAILED,
        "B.00002": Status.FAILED,
        "B.00003": Status.FAILED,
    }
    assert releases.given_back[NOVEMBER] == Decimal("0.12")
