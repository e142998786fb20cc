"""No recipient is lost and none is sent twice, whatever SQS and the providers do (issue 5, "Proof").

Each scenario accepts a mixed batch (Alibaba, Tencent, Huawei), plays Lambda's SQS event source over the provider
queues with the real dispatcher, adapters (moto) and provider clients (against the emulators), then checks, per
accepted recipient: the emulators accepted it at most once, and its record is settled (a final status or
SUBMITTED; SENDING with an unknown outcome only where the scenario makes outcomes unknown; or its pack is in the
DLQ and the record says FAILED). Also: no second over a provider's rate limit.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from globesms.dispatch import PackBusy
from globesms.models.api import MessageSpec
from globesms.models.outbound import ProviderName
from globesms.ports import Claim
from globesms.status import Status
from local.emulators.common import Knobs
from tests.reliability.harness import Harness, fail_once, harness, mixed_specs, numbers

A, T, H = ProviderName.ALIYUN, ProviderName.TENCENT, ProviderName.HUAWEI


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def assert_invariants(h: Harness, *, unknown_outcome_allowed: bool = False) -> None:
    problems = h.violations(unknown_outcome_allowed=unknown_outcome_allowed)
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
        assert h.statuses() == {"SUBMITTED": 90}


def test_duplicate_delivery_of_every_pack(aws: None) -> None:
    with harness() as h:
        h.accept(mixed_specs(40), copies=2)
        h.run()
        assert_invariants(h)
        assert h.statuses() == {"SUBMITTED": 120}
        assert sum(o.summary.skipped for o in h.outcomes if o.summary) == 120  # each second copy skipped


def test_dispatcher_killed_after_the_provider_call_before_the_status_write(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with harness() as h:
        h.accept(mixed_specs(20))
        monkeypatch.setattr(h.store, "put_messages", fail_once(h.store.put_messages, RuntimeError("killed")))
        h.run()
        assert_invariants(h, unknown_outcome_allowed=True)
        crashed = [o for o in h.outcomes if isinstance(o.error, RuntimeError) and str(o.error) == "killed"]
        assert len(crashed) == 1
        pack = crashed[0].delivery.pack
        records = h.store.get_messages([r.id for r in pack.recipients])
        # Sent once, outcome unknown: SENDING with DISPATCH_INTERRUPTED, for receipts to settle; never resent.
        assert {(r.status, r.error_code) for r in records.values()} == {(Status.SENDING, "DISPATCH_INTERRUPTED")}
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
        assert_invariants(h, unknown_outcome_allowed=True)
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
        assert_invariants(h, unknown_outcome_allowed=True)
        unknown = [r for r in h.store.get_messages([m.id for m in h.accepted]).values() if r.status is Status.SENDING]
        assert unknown, "no read timeout happened: the scenario tested nothing"
        assert {r.error_code for r in unknown} == {"READ_TIMEOUT"}


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
        assert {r.status for r in records.values() if r.provider is not A} == {Status.SUBMITTED}


def test_a_provider_down_for_a_minute(aws: None) -> None:
    """Every provider refuses every call (503/5xx) for the first delivery round, then recovers: nothing is lost,
    nothing is sent twice, nothing reaches a DLQ."""
    down = {
        A: Knobs(seed=41, error_rates={"ServiceUnavailable": 1.0}),
        T: Knobs(seed=42, error_rates={"InternalError": 1.0}),
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
        assert h.statuses() == {"SUBMITTED": 45}
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
        assert_invariants(h, unknown_outcome_allowed=True)
        assert_faults_happened(h)


def test_dispatcher_killed_while_queueing_the_recipients_it_deferred(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alibaba OTP packs are sent as single calls; at 2 calls per second a pack of 6 sends 2 and defers the rest
    to a new pack. The dispatcher dies while queueing that pack (after the provider calls, before any status
    write). The deferred recipients were never sent: they must still be sent - not left SENDING with an "unknown
    outcome" that no receipt will ever settle."""
    with harness(rate_limits={"SendMessageToGlobe": 2}) as h:
        h.accept([MessageSpec(to=numbers(6), text="otp 123456", type="OTP", provider="aliyun")])
        monkeypatch.setattr(h.queues, "send_packs", fail_once(h.queues.send_packs, RuntimeError("killed")))
        h.run()
        assert_invariants(h, unknown_outcome_allowed=True)
        counts, _ = h.sends_per_recipient()
        records = h.store.get_messages([m.id for m in h.accepted])
        assert any(str(o.error) == "killed" for o in h.outcomes)
        # The deferral was noted on the claim before queueing: the next delivery queued the deferred recipients
        # again instead of taking them for unknown outcomes, and each was sent once. Those the killed attempt did
        # send (and never recorded) are unknown outcomes, for their receipts to settle.
        assert all(counts[m.id] == 1 for m in h.accepted), counts
        sending = [r for r in records.values() if r.status is Status.SENDING]
        assert {r.status for r in records.values()} <= {Status.SUBMITTED, Status.SENDING}
        assert sending and all(r.error_code == "DISPATCH_INTERRUPTED" for r in sending)
        assert len(sending) < len(records)  # the deferred ones were sent by their own pack and recorded
