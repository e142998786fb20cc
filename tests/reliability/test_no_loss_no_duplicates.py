"""No recipient is lost and none is sent twice, whatever SQS and the providers do (issue 5, "Proof").

Each scenario accepts a mixed batch (Alibaba, Tencent, Huawei), plays Lambda's SQS event source over the provider
queues with the real dispatcher, adapters (moto), circuit breakers and provider clients (against the emulators,
which push a delivery receipt for every message they accept), then checks, per accepted recipient: the emulators
accepted it at most once (an unknown outcome that its receipt resolved counts once), and its record is settled (a
final status or SUBMITTED; or its pack is in the DLQ and the record says FAILED). Nothing is left SENDING: an
unknown outcome is settled by its receipt, or by the unknown-outcome policy after its window. Also: no second over a
provider's rate limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from moto import mock_aws

from globesms.dispatch.service import PackBusy
from globesms.domain.status import Status
from globesms.models.api import MessageSpec
from globesms.models.outbound import ProviderName
from globesms.models.records import MessageRecord
from globesms.ports import BreakerState, Claim
from local.emulators.common import Knobs
from tests.reliability.harness import Harness, fail_once, harness, mixed_specs, numbers

A, T, H = ProviderName.ALIYUN, ProviderName.TENCENT, ProviderName.HUAWEI


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def unknown_step(record: MessageRecord) -> str | None:
    """The error code of the unknown outcome the record went through, if it did (kept in its history)."""
    return next((e["error_code"] for e in record.events or () if e.get("id") == "sending"), None)


def assert_invariants(h: Harness) -> None:
    problems = h.violations(unknown_outcome_allowed=False)
    assert not problems, "\n".join(problems[:30]) + f"\n({len(problems)} problems; statuses {h.statuses()})"
    limits = h.rate_limits
    over = {op: n for op, n in h.max_calls_in_a_second().items() if op in limits and n > limits[op]}
    assert not over, f"seconds over a provider's limit: {over} (limits {limits})"


def test_baseline_every_recipient_sent_once(aws: None) -> None:
    with harness() as h:
        h.accept(mixed_specs(30))
        h.run()
        assert_invariants(h)
        counts, _ = h.sends_per_recipient()
        assert len(counts) == len(h.accepted) == 90  # every recipient reached its provider
        assert h.statuses() == {"DELIVERED": 90}  # every receipt applied


def test_duplicate_delivery_of_every_pack(aws: None) -> None:
    with harness() as h:
        h.accept(mixed_specs(40), copies=2)
        h.run()
        assert_invariants(h)
        assert h.statuses() == {"DELIVERED": 120}
        assert sum(o.summary.skipped for o in h.outcomes if o.summary) == 120  # each second copy skipped


def test_dispatcher_killed_after_the_provider_call_before_the_status_write(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with harness() as h:
        h.accept(mixed_specs(20))
        monkeypatch.setattr(h.store, "put_messages", fail_once(h.store.put_messages, RuntimeError("killed")))
        h.run()
        assert_invariants(h)
        crashed = [o for o in h.outcomes if isinstance(o.error, RuntimeError) and str(o.error) == "killed"]
        assert len(crashed) == 1
        pack = crashed[0].delivery.pack
        records = h.store.get_messages([r.id for r in pack.recipients])
        # Sent once, outcome unknown (SENDING with DISPATCH_INTERRUPTED), never resent; settled by its receipt.
        assert {r.status for r in records.values()} == {Status.DELIVERED}
        assert all(unknown_step(r) == "DISPATCH_INTERRUPTED" for r in records.values())
        counts, _ = h.sends_per_recipient()
        assert all(counts[r.id] == 1 for r in pack.recipients)


def test_redelivery_while_the_claim_is_held_is_left_for_later(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The crashed pack is delivered again before its lease ends (a short visibility timeout): PackBusy, not a
    second send; once the lease has expired it is settled as an unknown outcome."""
    with harness() as h:
        h.visibility_timeout = 45  # three deliveries inside the 120 s lease
        h.accept(mixed_specs(10))
        monkeypatch.setattr(h.store, "put_messages", fail_once(h.store.put_messages, RuntimeError("killed")))
        h.run()
        assert_invariants(h)
        assert any(isinstance(o.error, PackBusy) for o in h.outcomes)


#: Batch calls per second raised from the defaults (1/s) so that a dozen packs fit in a few seconds; the
#: emulators throttle at the same rates, and no second may exceed them.
FAST_LIMITS = {"BatchSendMessageToGlobe": 5, "batchSendDiffSms": 5}


def transient_knobs() -> dict[ProviderName, Knobs]:
    """Each provider's real 5xx and throttling codes (as its emulator answers them), 20% of calls in all."""
    return {
        A: Knobs(seed=11, error_rates={"ServiceUnavailable": 0.07, "InternalError": 0.07, "Throttling.User": 0.06}),
        T: Knobs(
            seed=12,
            error_rates={"InternalError": 0.07, "RequestLimitExceeded": 0.07, "LimitExceeded.DailyLimit": 0.06},
        ),
        H: Knobs(seed=13, error_rates={"APIG.0308": 0.1, "E000623": 0.05, "E200015": 0.05}),
    }


def test_provider_errors_and_throttling_at_20_percent(aws: None) -> None:
    with harness(transient_knobs(), rate_limits=FAST_LIMITS) as h:
        h.accept_batches(12, 5)  # 12 packs per provider: enough calls for faults to land
        h.run(max_rounds=60)
        assert_invariants(h)
        assert_faults_happened(h)


def test_timeouts_at_20_percent(aws: None) -> None:
    knobs = {p: Knobs(seed=20 + i, timeout_rate=0.2, timeout_seconds=0.5) for i, p in enumerate((A, T, H))}
    with harness(knobs, served=True, client_env={"GLOBESMS_HTTP_READ_TIMEOUT": "0.2"}) as h:
        h.accept(mixed_specs(25))
        h.run()
        assert_invariants(h)
        records = h.store.get_messages([m.id for m in h.accepted]).values()
        unknown = [r for r in records if unknown_step(r) is not None]
        assert unknown, "no read timeout happened: the scenario tested nothing"
        assert {unknown_step(r) for r in unknown} == {"READ_TIMEOUT"}
        assert {r.status for r in unknown} == {Status.DELIVERED}  # each resolved by its receipt, sent once


def test_two_dispatchers_interleaving_on_one_queue(aws: None) -> None:
    """Two consumers of each queue, their records handled alternately, every pack delivered twice (so the two
    copies often reach different dispatchers), with the transient faults above."""
    with harness(transient_knobs(), rate_limits=FAST_LIMITS) as h:
        h.accept_batches(8, 5, copies=2)
        h.run(dispatchers=2, max_rounds=60)
        assert_invariants(h)
        assert_faults_happened(h)


def test_a_provider_down_for_good_dead_letters_its_packs_with_failed_records(aws: None) -> None:
    """Alibaba answers every call 503 ServiceUnavailable: each of its packs is retried up to maxReceiveCount
    deliveries, recorded FAILED on the last and moved to the DLQ by SQS; the other providers are unaffected."""
    knobs = {A: Knobs(seed=31, error_rates={"ServiceUnavailable": 1.0})}
    with harness(knobs, rate_limits=FAST_LIMITS) as h:
        h.accept_batches(3, 4)
        h.run()
        assert_invariants(h)
        dead = h.dead_letters()
        assert {p.provider for p in dead} == {A} and len(dead) == 3
        records = h.store.get_messages([m.id for m in h.accepted])
        aliyun = [r for r in records.values() if r.provider is A]
        assert {(r.status, r.error_code) for r in aliyun} == {(Status.FAILED, "ServiceUnavailable")}
        counts, _ = h.sends_per_recipient()
        assert not any(counts[r.id] for r in aliyun)
        assert {r.status for r in records.values() if r.provider is not A} == {Status.DELIVERED}


def test_a_provider_down_for_a_minute(aws: None) -> None:
    """Every provider refuses every call (503/5xx) for the first delivery round, then recovers: nothing is lost,
    nothing is sent twice, nothing reaches a DLQ."""
    down = {
        A: Knobs(seed=41, error_rates={"ServiceUnavailable": 1.0}),
        T: Knobs(seed=42, error_rates={"ServiceUnavailable": 1.0}),
        H: Knobs(seed=43, error_rates={"APIG.0308": 1.0}),
    }

    def recover(round_number: int) -> None:
        if round_number == 2:  # one visibility timeout later (fake clock): well over a minute
            for knobs in down.values():
                knobs.error_rates = {}

    with harness(down, rate_limits=FAST_LIMITS) as h:
        h.accept_batches(3, 5)
        h.run(before_round=recover)
        assert_invariants(h)
        assert not h.dead_letters()
        assert h.statuses() == {"DELIVERED": 45}
        assert_faults_happened(h)


def test_the_harness_sees_a_duplicate_send(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Self-check: with claims that never say DONE, a duplicate delivery is sent twice and the invariants fail."""
    with harness() as h:
        h.accept_batches(1, 3, copies=2)
        monkeypatch.setattr(h.claims, "claim", lambda pack_id, **_: Claim.CLAIMED)
        h.run()
        problems = h.violations(unknown_outcome_allowed=False)
        assert sum("sent 2 times" in p for p in problems) == 9


def assert_faults_happened(h: Harness) -> None:
    faults = sum(o.error is not None for o in h.outcomes) + sum(o.summary.retried for o in h.outcomes if o.summary)
    assert faults, "the knobs injected no fault: the scenario tested nothing"


def test_everything_at_once(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Duplicate deliveries, two interleaving dispatchers, 20% transient faults and a dispatcher killed between
    the provider call and the status write, together."""
    with harness(transient_knobs(), rate_limits=FAST_LIMITS) as h:
        h.accept_batches(6, 5, copies=2)
        monkeypatch.setattr(h.store, "put_messages", fail_once(h.store.put_messages, RuntimeError("killed")))
        h.run(dispatchers=2, max_rounds=60)
        assert_invariants(h)
        assert_faults_happened(h)


def test_dispatcher_killed_while_queueing_the_recipients_it_deferred(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alibaba OTP packs are sent as single calls; at 2 calls per second a pack of 6 sends 2 and defers the rest
    to a new pack. The dispatcher dies while queueing that pack (after the provider calls, before any status
    write). The deferred recipients were never sent: they must still be sent - not left SENDING with an "unknown
    outcome" that no receipt will ever settle."""
    with harness(rate_limits={"SendMessageToGlobe": 2}) as h:
        # Valid for an hour: the harness's clock jumps a visibility timeout per round, past the OTP default.
        spec = MessageSpec(to=numbers(6), text="otp 123456", type="OTP", provider="aliyun", validity_seconds=3600)
        h.accept([spec])
        monkeypatch.setattr(h.queues, "send_packs", fail_once(h.queues.send_packs, RuntimeError("killed")))
        h.run()
        assert_invariants(h)
        counts, _ = h.sends_per_recipient()
        records = h.store.get_messages([m.id for m in h.accepted])
        assert any(str(o.error) == "killed" for o in h.outcomes)
        # The deferral was noted on the claim before queueing: the next delivery queued the deferred recipients
        # again instead of taking them for unknown outcomes, and each was sent once. Those the killed attempt did
        # send (and never recorded) are unknown outcomes, for their receipts to settle.
        assert all(counts[m.id] == 1 for m in h.accepted), counts
        unknown = [r for r in records.values() if unknown_step(r) is not None]
        assert {r.status for r in records.values()} == {Status.DELIVERED}
        assert unknown and all(unknown_step(r) == "DISPATCH_INTERRUPTED" for r in unknown)
        assert len(unknown) < len(records)  # the deferred ones were sent by their own pack and recorded


# --- failover, circuit breakers and the unknown-outcome window ---------------------------------------------------

#: A registered template: routed Tencent first, then Huawei, then Alibaba (the route table's default for templates).
# Valid for an hour: the harness's clock jumps a visibility timeout (180 s) per round, past the OTP default (600 s).
OTP = {
    "template": {"id": "example-otp", "params": {"code": "424242", "minutes": "5"}},
    "type": "OTP",
    "validity_seconds": 3600,
}


def test_config_errors_fail_over_to_the_next_provider_of_the_route(aws: None) -> None:
    """Tencent refuses every call for its configuration (a bad signature): each recipient moves to Huawei, the
    next provider of its route, with the template rendered for Huawei, and is delivered there once."""
    knobs = {T: Knobs(seed=51, error_rates={"AuthFailure.SignatureFailure": 1.0})}
    with harness(knobs, rate_limits=FAST_LIMITS) as h:
        h.accept([MessageSpec(to=numbers(30, 400_000), **OTP)])
        assert {r.provider for r in h.accepted} == {T}
        h.run()
        assert_invariants(h)
        records = h.store.get_messages([m.id for m in h.accepted]).values()
        assert {(r.status, r.provider) for r in records} == {(Status.DELIVERED, H)}
        assert all(r.template_params == {"code": "424242", "minutes": "5"} for r in records)
        assert all(
            any(
                e.get("id") == "failover-tencent" and e["error_code"] == "AuthFailure.SignatureFailure"
                for e in r.events or ()
            )
            for r in records
        )
        counts, _ = h.sends_per_recipient()
        assert all(counts[r.id] == 1 for r in records)
        assert not h.dead_letters()


def test_a_provider_down_opens_its_breaker_and_its_recipients_go_elsewhere(aws: None) -> None:
    """Tencent answers every call 5xx. Its packs fail and are retried until five failures in a row open its
    breaker; from then on its recipients move to Huawei without a call (and those whose pack reached its last
    attempt move too). None is lost, none is sent twice, no pack reaches a DLQ."""
    knobs = {T: Knobs(seed=52, error_rates={"ServiceUnavailable": 1.0})}
    with harness(knobs, rate_limits=FAST_LIMITS) as h:
        for batch in range(8):
            h.accept([MessageSpec(to=numbers(10, 600_000 + batch * 100), **OTP)], batch_id=f"down-{batch}")
        h.run(max_rounds=60)
        assert_invariants(h)
        records = h.store.get_messages([m.id for m in h.accepted]).values()
        assert {(r.status, r.provider) for r in records} == {(Status.DELIVERED, H)}
        assert h.breakers.state(T).failures >= h.breaker_policy.failures_to_open
        moved_without_a_call = [
            r for r in records if any(e.get("error_code") == "CIRCUIT_OPEN" for e in r.events or ())
        ]
        assert moved_without_a_call, "the breaker never opened: the scenario tested nothing"
        assert not h.dead_letters()


def test_a_provider_that_recovers_closes_its_breaker(aws: None) -> None:
    """Tencent down: its breaker opens and its recipients go to Huawei. Once it is back and the cooldown is over,
    the next pack is sent to Tencent again, and its answer closes the breaker."""
    knobs = {T: Knobs(seed=53, error_rates={"ServiceUnavailable": 1.0})}
    with harness(knobs, rate_limits=FAST_LIMITS) as h:
        for batch in range(6):
            h.accept([MessageSpec(to=numbers(5, 700_000 + batch * 100), **OTP)], batch_id=f"flaky-{batch}")
        h.run()
        assert h.breakers.state(T).failures >= h.breaker_policy.failures_to_open
        knobs[T].error_rates = {}
        h.now += timedelta(seconds=h.breaker_policy.cooldown_seconds + 1)
        h.accept([MessageSpec(to=numbers(5, 790_000), **OTP)], batch_id="after")
        h.run()
        assert_invariants(h)
        after = h.store.get_messages([m.id for m in h.accepted if m.batch_id == "after"]).values()
        assert {(r.status, r.provider) for r in after} == {(Status.DELIVERED, T)}  # Tencent again
        assert h.breakers.state(T) == BreakerState()


def test_an_unknown_outcome_without_a_receipt_fails_after_the_window_and_is_not_resent(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No receipts at all: the recipients of a pack whose dispatcher died after the provider call stay SENDING
    for the window (900 s), then the default policy marks them FAILED (UNKNOWN_OUTCOME_EXPIRED). Sent once."""
    with harness(receipts=False) as h:
        h.accept(mixed_specs(10))
        monkeypatch.setattr(h.store, "put_messages", fail_once(h.store.put_messages, RuntimeError("killed")))
        h.run()
        assert_invariants(h)
        crashed = next(o for o in h.outcomes if str(o.error) == "killed").delivery.pack
        records = h.store.get_messages([r.id for r in crashed.recipients]).values()
        assert {(r.status, r.error_category, r.error_code) for r in records} == {
            (Status.FAILED, "unknown_outcome", "UNKNOWN_OUTCOME_EXPIRED")
        }
        counts, _ = h.sends_per_recipient()
        assert all(counts[r.id] == 1 for r in records)
        assert sum(o.summary.expired for o in h.outcomes if o.summary) == len(crashed.recipients)


# ---------------------------------------------------------------------------------------------------------------
# Receipts never come (issue 12): every message is final by its deadline, none is left SUBMITTED.


def withheld(answers: str) -> dict[ProviderName, Knobs]:
    return {p: Knobs(seed=7, receipt_withhold_rate=1.0, status_query_answers=answers) for p in (A, T, H)}


#: Short, yet longer than the rounds the harness's clock jumps (a visibility timeout each) before every pack is sent:
#: a recipient still unsent when its validity lapses is never sent (dispatch/validity.py).
SHORT_VALIDITY_SECONDS = 1800


def short_validity_specs(per_provider: int) -> list[MessageSpec]:
    return [spec.model_copy(update={"validity_seconds": SHORT_VALIDITY_SECONDS}) for spec in mixed_specs(per_provider)]


def test_receipts_never_come_the_queries_settle_alibaba_and_tencent_and_huawei_expires(aws: None) -> None:
    with harness(withheld("final")) as h:
        h.now = datetime.now(UTC)  # the emulators stamp statuses with the real clock; Tencent pulls by time range
        h.accept(short_validity_specs(10))
        h.run()
        assert h.statuses() == {"SUBMITTED": 30}  # no receipt came
        early = h.reconcile()
        assert early.examined == 0 and h.statuses() == {"SUBMITTED": 30}  # nothing is due yet
        h.now += timedelta(seconds=SHORT_VALIDITY_SECONDS + 1800)  # validity + the default grace: all deadlines passed
        summary = h.reconcile()
        assert_invariants(h)
        records = h.store.get_messages([r.id for r in h.accepted]).values()
        assert {(r.provider, r.status, r.error_code) for r in records} == {
            (A, Status.DELIVERED, None),
            (T, Status.DELIVERED, None),
            (H, Status.EXPIRED, "NO_RECEIPT"),
        }
        assert (summary.settled, summary.expired, summary.retried) == (20, 10, 0)
        counts, _ = h.sends_per_recipient()
        assert set(counts.values()) == {1}  # reconciling never sends again


def test_receipts_never_come_and_the_queries_know_nothing_every_message_expires_after_one_extension(
    aws: None,
) -> None:
    with harness(withheld("pending")) as h:
        h.now = datetime.now(UTC)
        h.accept(short_validity_specs(10))
        h.run()
        h.now += timedelta(seconds=SHORT_VALIDITY_SECONDS + 1800)
        first = h.reconcile()
        assert (first.extended, first.expired) == (20, 10)  # Alibaba and Tencent: "still delivering", once
        assert h.statuses() == {"SUBMITTED": 20, "EXPIRED": 10}
        h.now += timedelta(seconds=1800)
        second = h.reconcile()
        assert (second.extended, second.expired) == (0, 20)
        assert_invariants(h)
        assert h.statuses() == {"EXPIRED": 30}  # none left SUBMITTED
        records = h.store.get_messages([r.id for r in h.accepted]).values()
        assert {r.error_code for r in records} == {"NO_RECEIPT"}
        assert h.reconcile().examined == 0  # all off the index


# --- receipt-driven failover (receipts/failover.py) ---------------------------------------------------------------


def sends_by_provider(h: Harness) -> dict[ProviderName, dict[str, int]]:
    """How often each emulator accepted each accepted recipient (our id: the echo key, or its number)."""
    by_number = {"".join(c for c in r.to if c.isdigit()): r.id for r in h.accepted}
    ids = {r.id for r in h.accepted}
    sends: dict[ProviderName, dict[str, int]] = {}
    for provider, emulator in h.emulators.items():
        counts: dict[str, int] = {}
        for key, sent in emulator.stats()["sent"].items():
            number = "".join(c for c in key.rsplit("/", 1)[-1] if c.isdigit())
            message_id = key if key in ids else by_number[number]
            counts[message_id] = counts.get(message_id, 0) + sent
        sends[provider] = counts
    return sends


def test_one_providers_receipts_say_undelivered_each_otp_is_resent_once_through_the_next(aws: None) -> None:
    """Every Tencent receipt says UNDELIVERED for a route failure, half of them pushed twice. Each OTP (routed
    Tencent, then Huawei, then Alibaba) is resent once, through Huawei, and ends DELIVERED there with the Tencent
    attempt in its history: none lost, none sent twice by a provider, none sent a third time."""
    knobs = {
        T: Knobs(
            seed=61, receipt_mix={"UNDELIVERED": 1.0}, undelivered_code="ROUTE_FAILURE", receipt_duplicate_rate=0.5
        )
    }
    with harness(knobs, rate_limits=FAST_LIMITS) as h:
        h.accept([MessageSpec(to=numbers(30, 800_000), **OTP)])
        assert {r.provider for r in h.accepted} == {T}
        h.run()
        records = h.store.get_messages([m.id for m in h.accepted]).values()
        assert len(records) == 30
        assert {(r.status, r.provider) for r in records} == {(Status.DELIVERED, H)}
        assert all([e.get("id") for e in r.events or ()].count("receipt-failover") == 1 for r in records)
        assert all((r.events or [])[0]["status"] == "UNDELIVERED" for r in records)  # the first attempt, kept
        sends = sends_by_provider(h)
        assert all(sends[T].get(r.id) == 1 and sends[H].get(r.id) == 1 for r in records)
        assert not sends[A]
        assert h.resends_queued >= 30  # the duplicated receipts queued some again: the pack claims sent each once
        assert not h.dead_letters()
        assert not {name: n for name, n in h.queue_depths().items() if n}


def test_undelivered_for_the_number_itself_is_not_resent(aws: None) -> None:
    """Tencent's receipts say the number is on an opt-out list: another route cannot fix that. Each message ends
    UNDELIVERED on Tencent, sent once."""
    knobs = {
        T: Knobs(seed=62, receipt_mix={"UNDELIVERED": 1.0}, undelivered_code="FailedOperation.PhoneNumberInBlacklist")
    }
    with harness(knobs, rate_limits=FAST_LIMITS) as h:
        h.accept([MessageSpec(to=numbers(10, 810_000), **OTP)])
        h.run()
        assert_invariants(h)
        records = h.store.get_messages([m.id for m in h.accepted]).values()
        assert {(r.status, r.provider, r.error_code) for r in records} == {
            (Status.UNDELIVERED, T, "FailedOperation.PhoneNumberInBlacklist")
        }
        assert h.resends_queued == 0
