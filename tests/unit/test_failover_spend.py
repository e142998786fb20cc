"""What a failover at dispatch and a resend after an UNDELIVERED receipt cost (guardrails/charges.py): the moved or
resent message is priced for its new provider, and what that costs beyond the reservation is charged, once.

Until 2026-12-07 both kept accept's estimate for the first provider: a message moved to a dearer provider, or
resent after the first provider had billed it, spent what the month's counters never saw, and could take the month
past its spend limit unseen."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest.mock import patch

import pytest

from globesms.dispatch.failover import PRICED_BYTES, reroute
from globesms.dispatch.service import DispatchDeps, RetryPack, dispatch_pack
from globesms.domain.history import RECEIPT_FAILOVER_STEP
from globesms.domain.status import Status
from globesms.errors import ErrorCategory, ProviderError
from globesms.guardrails import spend
from globesms.guardrails.charges import charge_resend, moved_charges, resend_repriced
from globesms.guardrails.ports import Charge, Reservation
from globesms.guardrails.prices import PriceTableDoc
from globesms.guardrails.release import release_unsent
from globesms.models.outbound import ProviderName
from globesms.models.packs import DispatchPack
from globesms.models.records import BatchRecord, MessageRecord
from globesms.receipts.failover import is_resend_pack, resend_for, resend_pack
from globesms.reconcile.interrupted import InterruptedSummary, settle_batch
from globesms.routing.templates import IdVersion, TemplateRegistry, TextVersion
from globesms.scheduling.cancel import CancelDeps
from tests.fakes import (
    MemoryClaims,
    MemoryQueues,
    MemoryScheduleStore,
    MemorySpendReleases,
    MemoryStore,
    MemoryWebhooks,
    ScriptedProvider,
)

A, T, H = ProviderName.ALIYUN, ProviderName.TENCENT, ProviderName.HUAWEI
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
NOVEMBER = "2026-11"  # the batch's month: its counters, wherever the send happens
SCOPES = [(NOVEMBER, spend.DEPLOYMENT), (NOVEMBER, spend.key_scope("billing"))]
CONFIG = ProviderError(ErrorCategory.CONFIG, "AuthFailure.SignatureFailure", "bad signature", 200)
PRICES = PriceTableDoc.model_validate(
    {
        "version": 1,
        "currency": "USD",
        "as_of": "2026-12-01",
        "prices": {
            "tencent": {"HK": {"*": "0.03"}},
            "huawei": {"HK": {"*": "0.035"}},
            "aliyun": {"HK": {"*": "0.05"}, "SG": {"*": "0.06"}},
        },
    }
)
THREE_PARTS = "x" * 400  # GSM-7: 153 characters a part


def free_text_pack(route: tuple[ProviderName, ...], *, n: int = 3, price: str = "0.03", country: str = "HK") -> Any:
    parts = 3
    cost = str(Decimal(price) * parts)
    return DispatchPack.model_validate(
        {
            "pack_id": f"B:{route[0]}:0",
            "batch_id": "B",
            "provider": route[0],
            "created_at": "2026-11-30T23:59:00.000000Z",
            "expires_at": 1_900_000_000,
            "owner": "billing",
            "currency": "USD",
            "contents": [{"type": "OTP", "text": THREE_PARTS, "route": list(route)}],
            "recipients": [
                {
                    "id": f"B.{i:05d}",
                    "to": f"+8525123456{i}",
                    "c": 0,
                    "country": country,
                    "segments": parts,
                    "price": price,
                    "cost": cost,
                }
                for i in range(n)
            ],
        }
    )


def deps(provider: ScriptedProvider, ledger: MemorySpendReleases, **kw: Any) -> DispatchDeps:
    store = kw.pop("store", MemoryStore())
    return DispatchDeps(
        provider=provider,
        store=store,
        claims=kw.pop("claims", MemoryClaims()),
        queues=kw.pop("queues", MemoryQueues()),
        receipts=store,
        webhooks=MemoryWebhooks(),
        spend=ledger,
        prices=kw.pop("prices", lambda: PRICES),
        **kw,
    )


def charged(ledger: MemorySpendReleases) -> list[Decimal]:
    return [ledger.charged.get(scope, Decimal(0)) for scope in SCOPES]


def test_a_failover_to_a_dearer_provider_is_priced_there_and_its_difference_charged_once() -> None:
    ledger, queues, claims = MemorySpendReleases(), MemoryQueues(), MemoryClaims()
    pack = free_text_pack((T, A))
    failing = deps(ScriptedProvider(T, answer=lambda m: CONFIG), ledger, queues=queues, claims=claims)
    assert dispatch_pack(pack, failing, now=NOW, last_attempt=False).failed_over == 3
    [moved] = queues.sent[A]
    # Three parts at Alibaba's 0.05 instead of Tencent's 0.03: 0.06 more each, 0.18 for the three.
    assert {(r.price, r.cost) for r in moved.recipients} == {("0.05", "0.15")} and moved.currency == "USD"
    assert charged(ledger) == [Decimal("0.18")] * 2
    assert set(ledger.charges) == {Charge(f"B.{i:05d}", "move", "aliyun") for i in range(3)}
    # A repeated delivery finds the claim done; a repeated failover (`reroute` again) finds its charges made.
    dispatch_pack(pack, failing, now=NOW, last_attempt=False)
    assert charged(ledger) == [Decimal("0.18")] * 2
    # Alibaba sends them: their records say what they cost there.
    store = MemoryStore()
    dispatch_pack(moved, deps(ScriptedProvider(A), ledger, store=store), now=NOW, last_attempt=False)
    assert {(r.status, r.price, r.cost) for r in store.messages.values()} == {(Status.SUBMITTED, "0.05", "0.15")}


def test_a_failover_to_a_cheaper_provider_gives_the_difference_back() -> None:
    ledger, queues = MemorySpendReleases(), MemoryQueues()
    pack = free_text_pack((A, T), price="0.05")
    dispatch_pack(
        pack, deps(ScriptedProvider(A, answer=lambda m: CONFIG), ledger, queues=queues), now=NOW, last_attempt=False
    )
    assert {(r.price, r.cost) for r in queues.sent[T][0].recipients} == {("0.03", "0.09")}
    assert charged(ledger) == [Decimal("-0.18")] * 2


@pytest.mark.parametrize(
    ("country", "prices"),
    [
        ("MO", lambda: PRICES),  # no price for Huawei there
        ("HK", None),  # no price table
        ("HK", lambda: PRICES.model_copy(update={"currency": "EUR"})),  # another currency than the batch's
    ],
)
def test_where_the_new_price_is_unknown_the_estimate_stays_and_nothing_is_charged(country: str, prices: Any) -> None:
    ledger, queues = MemorySpendReleases(), MemoryQueues()
    pack = free_text_pack((T, H), country=country)
    failing = deps(ScriptedProvider(T, answer=lambda m: CONFIG), ledger, queues=queues, prices=prices)
    dispatch_pack(pack, failing, now=NOW, last_attempt=False)
    assert {(r.price, r.cost) for r in queues.sent[H][0].recipients} == {("0.03", "0.09")}
    assert ledger.charges == {}


def test_an_unreadable_price_table_or_ledger_never_stops_a_failover() -> None:
    def unreadable() -> PriceTableDoc:
        raise RuntimeError("SSM unavailable")

    class Unwritable(MemorySpendReleases):
        def charge_once(self, *args: object, **kwargs: object) -> Decimal:
            raise RuntimeError("DynamoDB unavailable")

    for prices, ledger in ((unreadable, MemorySpendReleases()), (lambda: PRICES, Unwritable())):
        queues = MemoryQueues()
        failing = deps(ScriptedProvider(T, answer=lambda m: CONFIG), ledger, queues=queues, prices=prices)
        assert dispatch_pack(free_text_pack((T, A)), failing, now=NOW, last_attempt=False).failed_over == 3
        # Moved, priced as reserved: what their records say, and a release gives back, is what the counters hold.
        assert [(r.price, r.cost) for r in queues.sent[A][0].recipients] == [("0.03", "0.09")] * 3


def test_a_takeover_moves_them_again_without_charging_twice_and_charges_what_the_dead_holder_could_not() -> None:
    class DiesAfterQueueing(MemoryQueues):
        def send_packs(self, provider, packs, *, delay_seconds=0):  # type: ignore[no-untyped-def]
            super().send_packs(provider, packs, delay_seconds=delay_seconds)
            raise RuntimeError("killed")

    class FailsOnce(MemorySpendReleases):
        failures = 1

        def charge_once(self, *args: Any, **kwargs: Any) -> Decimal:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("throttled")
            return super().charge_once(*args, **kwargs)

    for ledger, first_charge in ((MemorySpendReleases(), Decimal("0.18")), (FailsOnce(), Decimal(0))):
        claims, store, pack = MemoryClaims(), MemoryStore(), free_text_pack((T, A))
        dying = deps(ScriptedProvider(T, answer=lambda m: CONFIG), ledger, claims=claims, store=store)
        with pytest.raises(RuntimeError):
            dispatch_pack(pack, replace(dying, queues=DiesAfterQueueing()), now=NOW, last_attempt=False)
        assert charged(ledger) == [first_charge] * 2
        later, queues = NOW + timedelta(minutes=5), MemoryQueues()
        taker = deps(ScriptedProvider(T), ledger, claims=claims, store=store, queues=queues)
        assert dispatch_pack(pack, taker, now=later, last_attempt=False).unknown == 0
        assert [p.pack_id for p in queues.sent[A]] == ["B:tencent:0.f:aliyun:0"]
        assert charged(ledger) == [Decimal("0.18")] * 2


def test_a_failover_splits_into_the_same_packs_whatever_the_price_table_says() -> None:
    """A takeover moves the noted recipients again under the same pack ids with the price table of its own moment:
    where a pack ends may not depend on it (`PRICED_BYTES`), or one id would hold other recipients in each copy."""
    pack = free_text_pack((T, A), n=400)
    moved = range(len(pack.recipients))
    dear = PRICES.model_copy(update={"prices": {"aliyun": {"HK": {"*": Decimal("99.123456")}}}})
    splits = [
        [
            (p.pack_id, [r.id for r in p.recipients])
            for p in reroute(pack, moved, reasons={}, now=NOW, prices=table).packs[A]
        ]
        for table in (None, PRICES, dear)
    ]
    assert len(splits[0]) > 1 and splits[0] == splits[1] == splits[2]
    longest = reroute(pack, moved, reasons={}, now=NOW, prices=dear).packs[A][0].recipients[0]
    assert len(f',"price":"{longest.price}","cost":"{longest.cost}"') <= PRICED_BYTES


def test_the_charges_of_a_move_are_each_recipients_new_cost_less_what_it_carried() -> None:
    pack = free_text_pack((T, A), n=2)
    moved = reroute(pack, [0, 1], reasons={}, now=NOW, prices=PRICES).packs[A]
    assert moved_charges(pack, moved) == {
        Charge("B.00000", "move", "aliyun"): Decimal("0.06"),
        Charge("B.00001", "move", "aliyun"): Decimal("0.06"),
    }


def resent_record(**extra: Any) -> MessageRecord:
    """A message accepted for Alibaba (0.06 to SG), resent through Tencent after an UNDELIVERED receipt."""
    fields: dict[str, Any] = {
        "id": "B.00000",
        "batch_id": "B",
        "to": "+6591234567",
        "country": "SG",
        "provider": "tencent",
        "type": "OTP",
        "text": "code 123456",
        "segments": 1,
        "route": ["aliyun", "tencent"],
        "status": "QUEUED",
        "created_at": "2026-11-30T23:59:00+00:00",
        "updated_at": "2026-12-01T09:59:00+00:00",
        "expires_at": 1_900_000_000,
        "owner": "billing",
        "price": "0.06",
        "cost": "0.06",
        "currency": "USD",
        "events": [
            {
                "id": RECEIPT_FAILOVER_STEP,
                "type": "status",
                "status": "QUEUED",
                "provider": "aliyun",
                "provider_message_id": "ali-1",
            }
        ],
    }
    return MessageRecord.model_validate(fields | extra)


SG_PRICES = PRICES.model_copy(update={"prices": {**PRICES.prices, "tencent": {"SG": {"*": Decimal("0.025")}}}})


def test_a_resend_is_charged_its_cost_at_its_provider_once_before_its_call() -> None:
    pack = resend_pack(resent_record())
    assert is_resend_pack(pack)
    ledger, store, claims, tencent = MemorySpendReleases(), MemoryStore(), MemoryClaims(), ScriptedProvider(T)
    sending = deps(tencent, ledger, store=store, claims=claims, prices=lambda: SG_PRICES)
    assert dispatch_pack(pack, sending, now=NOW, last_attempt=False).submitted == 1
    assert ledger.charges == {Charge("B.00000", "resend", "tencent"): Decimal("0.025")}
    assert charged(ledger) == [Decimal("0.025")] * 2
    record = store.messages["B.00000"]
    assert (record.status, record.price, record.cost) == (Status.SUBMITTED, "0.025", "0.025")
    # The same pack again (a receipt pushed twice queued it twice): not sent, not charged.
    dispatch_pack(pack, sending, now=NOW, last_attempt=False)
    assert len(tencent.calls) == 1 and charged(ledger) == [Decimal("0.025")] * 2


def test_a_resend_without_a_price_at_its_provider_is_charged_its_first_estimate() -> None:
    ledger = MemorySpendReleases()
    dispatch_pack(resend_pack(resent_record()), deps(ScriptedProvider(T), ledger), now=NOW, last_attempt=False)
    assert ledger.charges == {Charge("B.00000", "resend", "tencent"): Decimal("0.06")}


def test_a_resend_whose_charge_fails_is_not_sent_and_comes_back_whole() -> None:
    class Unwritable(MemorySpendReleases):
        def charge_once(self, *args: object, **kwargs: object) -> Decimal:
            raise RuntimeError("DynamoDB unavailable")

    claims, tencent, pack = MemoryClaims(), ScriptedProvider(T), resend_pack(resent_record())
    with pytest.raises(RuntimeError):
        dispatch_pack(pack, deps(tencent, Unwritable(), claims=claims), now=NOW, last_attempt=False)
    assert tencent.calls == [] and claims.state[pack.pack_id] == "OPEN"  # the next delivery charges, then sends
    ledger = MemorySpendReleases()
    dispatch_pack(pack, deps(tencent, ledger, claims=claims), now=NOW, last_attempt=False)
    assert len(tencent.calls) == 1 and charged(ledger) == [Decimal("0.06")] * 2


def test_only_the_resend_pack_itself_is_charged_as_a_resend() -> None:
    pack = resend_pack(resent_record())
    retry = pack.model_copy(update={"pack_id": f"{pack.pack_id}.r1"})
    assert not is_resend_pack(retry)
    assert resend_repriced(pack, None) is pack  # nothing to price it with: as it was


def test_a_resent_registered_template_is_priced_by_the_parts_of_its_text_at_the_new_provider() -> None:
    """Tencent's template (one part, reserved so) resent through Alibaba as its text of three parts: priced and
    charged for three (the resend kept the first provider's part count until 2026-12-07, a review found)."""
    registry = TemplateRegistry(
        "test",
        {
            "login": {
                A: TextVersion(text="Your code is {code}. " + "y" * 380),
                T: IdVersion(id="1800308", params=["code"]),
            }
        },
    )
    before = resent_record(
        provider="tencent",
        text=None,
        template_id="1800308",
        template_params={"code": "123456"},
        template_ref="login",
        route=["tencent", "aliyun"],
        status="SUBMITTED",
        provider_message_id="t-1",
        submitted_at="2026-11-30T23:59:01+00:00",
        segments=None,
        encoding=None,
        events=None,
        validity_seconds=86_400,
        price="0.025",
        cost="0.025",
    )
    after = before.model_copy(update={"status": Status.UNDELIVERED})
    receipt = {"id": "r1", "status": "UNDELIVERED", "sub_error": "InternalError.Timeout"}
    resent = resend_for(before, after, receipt, NOW, templates=registry)
    assert resent is not None and (resent.provider, resent.segments, resent.encoding) == (A, 3, "GSM-7")
    ledger = MemorySpendReleases()
    dispatch_pack(resend_pack(resent), deps(ScriptedProvider(A), ledger), now=NOW, last_attempt=False)
    assert ledger.charges == {Charge("B.00000", "resend", "aliyun"): Decimal("0.18")}


def net(ledger: MemorySpendReleases, reserved: Decimal) -> Decimal:
    """The deployment's November counter: `reserved` at accept, then every charge and give-back since."""
    scope = (NOVEMBER, spend.DEPLOYMENT)
    return reserved + ledger.charged.get(scope, Decimal(0)) - ledger.given_back.get(scope, Decimal(0))


REFUSED_NUMBER = ProviderError(ErrorCategory.RECIPIENT, "InvalidParameterValue.IncorrectPhoneNumber", "bad", 200)


@pytest.mark.parametrize("case", ["lapsed", "refused"])
def test_a_resend_that_never_reaches_its_provider_gives_its_charge_back_and_keeps_the_first_attempts(
    case: str,
) -> None:
    """Its validity ran out on the queue, or the provider refused the number: the resend's charge comes back
    (once), the first attempt's reservation stays (that provider took it). A review found the charge kept for good."""
    record = resent_record(validity_seconds=600 if case == "lapsed" else 86_400)
    ledger, store = MemorySpendReleases(), MemoryStore()
    provider = ScriptedProvider(T, answer=(lambda m: REFUSED_NUMBER) if case == "refused" else None)
    dispatch_pack(
        resend_pack(record), deps(provider, ledger, store=store, prices=lambda: SG_PRICES), now=NOW, last_attempt=False
    )
    assert store.messages["B.00000"].status in (Status.EXPIRED, Status.FAILED)
    assert ledger.charges == {Charge("B.00000", "resend", "tencent"): Decimal("0.025")}
    assert net(ledger, Decimal("0.06")) == Decimal("0.06")
    release_unsent(ledger, list(store.messages.values()))  # a repeated pack: nothing more
    assert net(ledger, Decimal("0.06")) == Decimal("0.06")
    # A redrive sends it after all: charged again.
    again = charge_resend(ledger, resend_repriced(resend_pack(record), SG_PRICES), carried=resend_pack(record))
    assert again == Decimal("0.025") and net(ledger, Decimal("0.06")) == Decimal("0.085")


def test_a_takeover_of_a_resend_records_it_at_the_resends_price() -> None:
    record = resent_record()
    pack, ledger, store, claims, tencent = (
        resend_pack(record),
        MemorySpendReleases(),
        MemoryStore(),
        MemoryClaims(),
        ScriptedProvider(T),
    )
    store.messages[record.id] = record
    killed = RuntimeError("killed after the call")
    with patch("globesms.dispatch.service._settle_round", side_effect=killed), pytest.raises(RuntimeError):
        dispatch_pack(
            pack,
            deps(tencent, ledger, store=store, claims=claims, prices=lambda: SG_PRICES),
            now=NOW,
            last_attempt=False,
        )
    later = NOW + timedelta(minutes=5)
    dispatch_pack(
        pack, deps(tencent, ledger, store=store, claims=claims, prices=lambda: SG_PRICES), now=later, last_attempt=False
    )
    taken = store.messages["B.00000"]
    assert (taken.status, taken.price, taken.cost) == (Status.SENDING, "0.025", "0.025")


def test_a_takeover_that_cannot_read_the_prices_carries_what_the_dead_holder_charged() -> None:
    """The dead holder charged a move to a cheaper provider (-0.06 each) and died before queueing; the takeover
    cannot read the price table. Its copies carry the cost that was charged (0.09), not the one reserved (0.15):
    the new provider refusing the numbers then gives back exactly what the counters hold. A review found 0.18 given
    back twice."""

    class DiesBeforeMoving(MemoryQueues):
        def send_packs(self, provider, packs, *, delay_seconds=0):  # type: ignore[no-untyped-def]
            raise RuntimeError("killed")

    def unreadable() -> PriceTableDoc:
        raise RuntimeError("SSM unavailable")

    ledger, claims, store, pack = (
        MemorySpendReleases(),
        MemoryClaims(),
        MemoryStore(),
        free_text_pack((A, T), price="0.05"),
    )
    dying = deps(
        ScriptedProvider(A, answer=lambda m: CONFIG), ledger, claims=claims, store=store, queues=DiesBeforeMoving()
    )
    with pytest.raises(RuntimeError):
        dispatch_pack(pack, dying, now=NOW, last_attempt=False)
    queues = MemoryQueues()
    taker = deps(ScriptedProvider(A), ledger, claims=claims, store=store, queues=queues, prices=unreadable)
    dispatch_pack(pack, taker, now=NOW + timedelta(minutes=5), last_attempt=False)
    [moved] = queues.sent[T]
    assert {r.cost for r in moved.recipients} == {"0.09"}
    refusing = deps(ScriptedProvider(T, answer=lambda m: REFUSED_NUMBER), ledger, store=store, claims=claims)
    dispatch_pack(moved, refusing, now=NOW + timedelta(minutes=6), last_attempt=False)
    assert net(ledger, Decimal("0.45")) == 0  # nobody was texted: everything back


def end_interrupted_accept(store: MemoryStore, claims: MemoryClaims, ledger: MemorySpendReleases) -> None:
    """Batch B's accept stopped for good: the reconcile run ends it (reconcile/interrupted.py)."""
    store.batches["B"] = BatchRecord(
        batch_id="B", source="api", state="ACCEPTING", created_at="2026-11-30T23:59:00+00:00",
        expires_at=1_900_000_000, settle_after=int(NOW.timestamp()) - 1,
    )  # fmt: skip
    cancel = CancelDeps(
        store=store, schedule=MemoryScheduleStore(store), claims=claims, webhooks=MemoryWebhooks(), spend=ledger
    )
    settle_batch(cancel, "B", now=NOW, summary=InterruptedSummary())


def test_an_interrupted_batch_gives_back_only_what_its_unwritten_recipients_reserved() -> None:
    """Three recipients written (0.15 each at Alibaba) and moved to Tencent (0.09: -0.18 charged), a fourth resent
    after an UNDELIVERED receipt, two never written: the reconcile run gives back the two unwritten ones' 0.30, not
    a share told from the records' costs now (a review found the move's difference given back twice)."""
    store, ledger, claims, queues = MemoryStore(), MemorySpendReleases(), MemoryClaims(), MemoryQueues()
    pack = free_text_pack((A, T), price="0.05").model_copy(update={"owner": None})
    ledger.reservations["B"] = Reservation(month=NOVEMBER, count=6, amount=Decimal("0.90"), scopes=("all",))
    failing = deps(ScriptedProvider(A, answer=lambda m: CONFIG), ledger, store=store, claims=claims, queues=queues)
    dispatch_pack(pack, failing, now=NOW, last_attempt=False)
    [moved] = queues.sent[T]
    dispatch_pack(moved, deps(ScriptedProvider(T), ledger, store=store, claims=claims), now=NOW, last_attempt=False)
    resent = resent_record(id="B.00003", owner=None, price="0.15", cost="0.15")  # reserved 0.15 at Alibaba
    dispatch_pack(
        resend_pack(resent),
        deps(ScriptedProvider(T), ledger, store=store, prices=lambda: SG_PRICES),
        now=NOW,
        last_attempt=False,
    )
    assert (store.messages["B.00003"].cost, net(ledger, Decimal("0.90"))) == ("0.025", Decimal("0.745"))
    end_interrupted_accept(store, claims, ledger)
    assert net(ledger, Decimal("0.90")) == Decimal("0.445")  # 3 x 0.09 moved, 0.15 + 0.025 resent


def test_a_redrive_of_a_pack_moved_from_a_resend_charges_the_resend_again() -> None:
    """Resent through Tencent, refused there for its configuration, moved to Huawei, which times out on the moved
    pack's last receive: FAILED, dead-lettered, the resend's charges given back. The operator's redrive sends it:
    they are charged again (a review found it sent uncharged: nothing but the resend pack itself charged)."""
    route = ["aliyun", "tencent", "huawei"]
    record = resent_record(country="HK", price="0.05", cost="0.05", route=route)
    ledger, store, claims, queues = MemorySpendReleases(), MemoryStore(), MemoryClaims(), MemoryQueues()
    refusing = deps(ScriptedProvider(T, answer=lambda m: CONFIG), ledger, store=store, claims=claims, queues=queues)
    dispatch_pack(resend_pack(record), refusing, now=NOW, last_attempt=False)
    [moved] = queues.sent[H]
    assert net(ledger, Decimal("0.05")) == Decimal("0.085")  # Alibaba's 0.05, then Tencent's 0.03 + 0.005 to Huawei
    timeout = ProviderError(ErrorCategory.RETRYABLE, "InternalError", "oops", 500)
    with pytest.raises(RetryPack):
        dispatch_pack(
            moved,
            deps(ScriptedProvider(H, answer=lambda m: timeout), ledger, store=store, claims=claims),
            now=NOW,
            last_attempt=True,
        )
    assert (store.messages[record.id].status, net(ledger, Decimal("0.05"))) == (Status.FAILED, Decimal("0.05"))
    huawei = ScriptedProvider(H)
    dispatch_pack(
        moved, deps(huawei, ledger, store=store, claims=claims), now=NOW + timedelta(hours=1), last_attempt=False
    )
    assert len(huawei.calls) == 1 and store.messages[record.id].status is Status.SUBMITTED
    assert net(ledger, Decimal("0.05")) == Decimal("0.085")


def test_an_interrupted_batch_counts_a_move_its_records_do_not_show_yet_as_not_made() -> None:
    """Three written at Tencent (0.09 each), a fourth never written: 0.36 reserved. The three move to Alibaba (+0.18)
    and wait on its queue, their records still Tencent's at 0.09: the run gives back the unwritten 0.09 only (a
    review found 0.27: the move subtracted from records that did not reflect it)."""
    store, ledger, claims, queues = MemoryStore(), MemorySpendReleases(), MemoryClaims(), MemoryQueues()
    pack = free_text_pack((T, A)).model_copy(update={"owner": None})
    for r in pack.recipients:  # as accept wrote them
        store.messages[r.id] = MessageRecord.model_validate(
            {"id": r.id, "batch_id": "B", "to": r.to, "country": "HK", "provider": "tencent", "type": "OTP",
             "text": THREE_PARTS, "segments": 3, "route": ["tencent", "aliyun"], "status": "QUEUED",
             "created_at": "2026-11-30T23:59:00+00:00", "updated_at": "2026-11-30T23:59:00+00:00",
             "expires_at": 1_900_000_000, "price": "0.03", "cost": "0.09", "currency": "USD"}
        )  # fmt: skip
    ledger.reservations["B"] = Reservation(month=NOVEMBER, count=4, amount=Decimal("0.36"), scopes=("all",))
    failing = deps(ScriptedProvider(T, answer=lambda m: CONFIG), ledger, store=store, claims=claims, queues=queues)
    dispatch_pack(pack, failing, now=NOW, last_attempt=False)
    assert len(queues.sent[A][0].recipients) == 3  # moved, not sent yet
    end_interrupted_accept(store, claims, ledger)
    assert ledger.given_back.get((NOVEMBER, spend.DEPLOYMENT), Decimal(0)) == Decimal("0.09")


def test_a_dispatcher_that_dies_before_noting_a_move_leaves_no_charge_for_it() -> None:
    """The move is noted on the claim before it is charged: a holder that dies before the note charged nothing, and
    its takeover, finding nothing noted, settles the recipients where they were (a review found 0.18 charged for a
    move that never happened)."""
    ledger, claims, store, queues = MemorySpendReleases(), MemoryClaims(), MemoryStore(), MemoryQueues()
    pack = free_text_pack((T, A))
    dying = deps(ScriptedProvider(T, answer=lambda m: CONFIG), ledger, claims=claims, store=store, queues=queues)
    with patch.object(claims, "record_requeued", side_effect=RuntimeError("killed")), pytest.raises(RuntimeError):
        dispatch_pack(pack, dying, now=NOW, last_attempt=False)
    taker = deps(ScriptedProvider(T), ledger, claims=claims, store=store, queues=queues)
    dispatch_pack(pack, taker, now=NOW + timedelta(minutes=5), last_attempt=False)
    assert A not in queues.sent and {r.status for r in store.messages.values()} == {Status.SENDING}
    assert ledger.charges == {}


def test_a_failover_charge_made_in_part_prices_each_copy_as_charged() -> None:
    """The ledger writes 90 charges a transaction: the first made, the next failed. Each moved copy carries what
    its own charge says (a review found every copy priced as reserved, 90 of them charged more)."""

    class FailsAfterTwo(MemorySpendReleases):
        def charge_once(self, month, scopes, amounts, expires_at, carried=None):  # type: ignore[no-untyped-def]
            first = dict(list(amounts.items())[:2])
            super().charge_once(month, scopes, first, expires_at, carried)
            raise RuntimeError("throttled past retries")

    ledger, queues = FailsAfterTwo(), MemoryQueues()
    failing = deps(ScriptedProvider(T, answer=lambda m: CONFIG), ledger, queues=queues)
    dispatch_pack(free_text_pack((T, A)), failing, now=NOW, last_attempt=False)
    assert [r.cost for r in queues.sent[A][0].recipients] == ["0.15", "0.15", "0.09"]
