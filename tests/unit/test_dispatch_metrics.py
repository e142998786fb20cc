"""What a dispatch tells the provider's alarms (`ProviderCalls`): recipients attempted, errors by category, and
whether the pack opened the circuit breaker — on the summary, and on `RetryPack` when the pack failed as a whole."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from globesms.dispatch.circuit_breaker import BreakerPolicy
from globesms.dispatch.service import DispatchDeps, DispatchPolicies, RetryPack, dispatch_pack
from globesms.dispatch.summary import DispatchSummary, ProviderCalls
from globesms.dispatch.unknown_outcomes import UnknownOutcomePolicy
from globesms.errors import ErrorCategory, InvalidProviderRequest, ProviderError
from globesms.models.outbound import OutboundSms, ProviderName
from globesms.models.packs import DispatchPack
from tests.fakes import (
    MemoryBreakers,
    MemoryQueues,
    MemoryRateLimiter,
    ScriptedProvider,
    memory_dispatch_deps,
)

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
T, H = ProviderName.TENCENT, ProviderName.HUAWEI
DOWN = ProviderError(ErrorCategory.RETRYABLE, "InternalError", "oops", 500)
ANSWERS = {
    "B.00001": ProviderError(ErrorCategory.RECIPIENT, "InvalidNumber"),
    "B.00002": ProviderError(ErrorCategory.REQUEST, "TemplateParamsMismatch"),
    "B.00004": ProviderError(ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT"),
}


class RefusingProvider(ScriptedProvider):
    """Refuses B.00003 before any call (the dispatcher's own INVALID_REQUEST refusal)."""

    def check(self, message: OutboundSms) -> InvalidProviderRequest | None:
        return InvalidProviderRequest("text", "too long") if message.message_id == "B.00003" else None


def a_pack(n: int = 3, route: tuple[ProviderName, ...] = ()) -> DispatchPack:
    return DispatchPack.model_validate(
        {
            "pack_id": "B:tencent:0",
            "batch_id": "B",
            "provider": T,
            "created_at": "2026-11-26T09:59:00.000000Z",
            "contents": [{"type": "OTP", "text": "code 1", "sender_id": "Acme", "route": list(route)}],
            "recipients": [{"id": f"B.{i:05d}", "to": f"+8525123456{i}", "c": 0, "segments": 1} for i in range(n)],
        }
    )


def deps(provider: ScriptedProvider, **fields: Any) -> DispatchDeps:
    return memory_dispatch_deps(provider=provider, **fields)


def outcome(pack: DispatchPack, using: DispatchDeps, now: datetime = NOW) -> DispatchSummary | RetryPack:
    try:
        return dispatch_pack(pack, using, now=now, last_attempt=False)
    except RetryPack as exc:
        return exc


def test_every_outcome_a_call_decided_is_attempted_and_each_error_counted_by_category() -> None:
    provider = RefusingProvider(T, answer=lambda m: ANSWERS.get(m.message_id))
    summary = dispatch_pack(a_pack(5), deps(provider), now=NOW, last_attempt=False)
    assert summary.calls == ProviderCalls(
        attempted=5,
        errors={ErrorCategory.RECIPIENT: 1, ErrorCategory.REQUEST: 2, ErrorCategory.UNKNOWN_OUTCOME: 1},
        breaker_opened=False,
    )
    assert (summary.submitted, summary.failed, summary.unknown) == (1, 3, 1)


def test_a_pack_that_failed_as_a_whole_carries_its_counts_on_retry_pack() -> None:
    with pytest.raises(RetryPack) as raised:
        dispatch_pack(a_pack(3), deps(ScriptedProvider(T, answer=lambda m: DOWN)), now=NOW, last_attempt=False)
    assert raised.value.calls == ProviderCalls(attempted=3, errors={ErrorCategory.RETRYABLE: 3})
    # On its last attempt too (recorded FAILED, then dead-lettered).
    with pytest.raises(RetryPack) as raised:
        dispatch_pack(a_pack(3), deps(ScriptedProvider(T, answer=lambda m: DOWN)), now=NOW, last_attempt=True)
    assert raised.value.calls.attempted == 3


def test_recipients_without_a_rate_limit_permit_are_not_attempted() -> None:
    provider = ScriptedProvider(T, operation="Op", one_call_per_message=True)
    using = deps(provider, limiter=MemoryRateLimiter({"Op": 1}), clock=lambda: 1_800_000_000.25)
    summary = dispatch_pack(a_pack(3), using, now=NOW, last_attempt=False)
    assert (summary.deferred, summary.calls.attempted, summary.calls.errors) == (2, 1, {})


def test_the_pack_whose_failure_opens_the_breaker_says_so_and_again_after_the_cooldown() -> None:
    breakers = MemoryBreakers()
    policy = DispatchPolicies(breaker=BreakerPolicy(failures_to_open=2, cooldown_seconds=60))
    down = ScriptedProvider(T, answer=lambda m: DOWN)
    using = deps(down, breakers=breakers, policies=policy)
    first, second = outcome(a_pack(), using), outcome(a_pack(), using)
    assert (first.calls.breaker_opened, second.calls.breaker_opened) == (False, True)
    # Still open: the next failure keeps it open, it does not open it.
    assert outcome(a_pack(), using).calls.breaker_opened is False
    # After the cooldown the provider is tried again; one more failure opens it again.
    later = NOW + timedelta(seconds=61)
    assert outcome(a_pack(), using, now=later).calls.breaker_opened is True
    # An answer closes it; nothing opened.
    assert outcome(a_pack(), replace(using, provider=ScriptedProvider(T)), now=later).calls.breaker_opened is False
    assert breakers.state(T).failures == 0


def test_without_breakers_nothing_opens() -> None:
    assert outcome(a_pack(), deps(ScriptedProvider(T, answer=lambda m: DOWN))).calls.breaker_opened is False


def test_recipients_moved_past_an_open_breaker_are_not_attempted() -> None:
    breakers = MemoryBreakers()
    breakers.record_failure(T, now=NOW, failures_to_open=1, cooldown_seconds=60)
    provider = ScriptedProvider(T)
    summary = dispatch_pack(a_pack(3, route=(T, H)), deps(provider, breakers=breakers), now=NOW, last_attempt=False)
    assert (summary.failed_over, summary.calls, provider.calls) == (3, ProviderCalls(), [])


def test_packs_that_are_not_sent_attempt_nothing() -> None:
    timeout = ProviderError(ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT")
    using = deps(
        ScriptedProvider(T, answer=lambda m: timeout),
        policies=DispatchPolicies(unknown_outcomes=UnknownOutcomePolicy(window_seconds=60)),
    )
    assert dispatch_pack(a_pack(2), using, now=NOW, last_attempt=False).calls.attempted == 2
    queues = using.queues
    assert isinstance(queues, MemoryQueues)
    settle = queues.sent[T][-1]
    settled = dispatch_pack(settle, using, now=NOW + timedelta(seconds=61), last_attempt=False)
    assert (settled.expired, settled.calls) == (2, ProviderCalls())
    repeated = dispatch_pack(a_pack(2), using, now=NOW, last_attempt=False)  # the pack is done: skipped
    assert (repeated.skipped, repeated.calls) == (2, ProviderCalls())
