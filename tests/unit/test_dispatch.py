from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from globesms.dispatch.rate_limits import SECOND_MARGIN
from globesms.dispatch.requeue import deferred_pack
from globesms.dispatch.sending import RateLimiterUnavailable, outbound_messages, send_all, send_within_limits
from globesms.dispatch.service import DispatchDeps, PackBusy, RetryPack, dispatch_pack
from globesms.dispatch.summary import ProviderCalls
from globesms.domain.status import Status
from globesms.errors import ErrorCategory, InvalidProviderRequest, ProviderError
from globesms.models.outbound import MessageType, OutboundSms, ProviderName, SendOutcome
from globesms.models.packs import DispatchPack
from globesms.ports import BreakerState, PlannedCall, Provider
from tests.fakes import (
    MemoryBreakers,
    MemoryClaims,
    MemoryQueues,
    MemoryRateLimiter,
    MemoryStore,
    MemoryWebhooks,
    ScriptedProvider,
)

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def pack(n: int = 3, provider: ProviderName = ProviderName.ALIYUN) -> DispatchPack:
    return DispatchPack.model_validate(
        {
            "pack_id": "B:aliyun:0",
            "batch_id": "B",
            "provider": provider,
            "created_at": "2026-11-26T09:59:00.000000Z",
            "contents": [{"type": "OTP", "text": "code 1", "sender_id": "Acme"}],
            "recipients": [{"id": f"B.{i:05d}", "to": f"+8525123456{i}", "c": 0, "segments": 1} for i in range(n)],
        }
    )


def run(pack_: DispatchPack, provider: ScriptedProvider, store: MemoryStore, claims: MemoryClaims | None = None, **kw):  # type: ignore[no-untyped-def]
    """dispatch_pack with in-memory ports; keyword overrides for queues, webhooks, now, last_attempt and any other
    field of `DispatchDeps`."""
    now, last_attempt = kw.pop("now", NOW), kw.pop("last_attempt", False)
    deps = DispatchDeps(
        provider=provider,
        store=store,
        claims=claims or MemoryClaims(),
        queues=kw.pop("queues", MemoryQueues()),
        receipts=store,
        webhooks=kw.pop("webhooks", MemoryWebhooks()),
        **kw,
    )
    return dispatch_pack(pack_, deps, now=now, last_attempt=last_attempt)


def test_every_recipient_is_recorded_submitted_with_its_provider_id() -> None:
    store, provider = MemoryStore(), ScriptedProvider()
    summary = run(pack(), provider, store)
    assert summary.submitted == 3
    assert {m.status for m in store.messages.values()} == {Status.SUBMITTED}
    assert store.messages["B.00001"].provider_message_id == "pm-B.00001"
    assert provider.calls[0][0] == OutboundSms(
        message_id="B.00000",
        to="+85251234560",
        type="OTP",
        text="code 1",
        sender_id="Acme",  # type: ignore[arg-type]
    )


def test_a_recipients_country_travels_from_accept_in_its_pack_into_the_dispatched_record(mocker) -> None:  # type: ignore[no-untyped-def]
    from globesms.accept.service import accept
    from globesms.models.api import MessageSpec
    from globesms.stats import tally

    accepted, queues = MemoryStore(), MemoryQueues()
    body = [MessageSpec.model_validate({"to": ["+85251234567", "+6591234567"], "text": "code 1", "type": "OTP"})]
    accept(body, batch_id="B", source="api", now=NOW, retention_days=90, store=accepted, queues=queues)
    (sent,) = queues.sent[ProviderName.ALIYUN]
    assert [
        r.country for r in DispatchPack.model_validate_json(sent.model_dump_json(exclude_none=True)).recipients
    ] == [
        "HK",
        "SG",
    ]  # as the SQS adapter writes it
    store = MemoryStore()
    run(sent, ScriptedProvider(), store)
    assert [store.messages[r.id].country for r in sent.recipients] == ["HK", "SG"]
    parsed = mocker.spy(tally, "country_of")  # the route statistics read the record's, never the number again
    delivered = [r.model_copy(update={"status": Status.DELIVERED}) for r in store.messages.values()]
    assert sorted(k.country for k in tally.tally_outcomes(delivered, NOW)) == ["HK", "SG"]
    assert parsed.call_count == 0


def test_a_recipients_encoding_travels_from_accept_in_its_pack_into_the_dispatched_record() -> None:
    """The 202 said GSM-7 / UCS-2, and GET /v1/messages/{id} after dispatch said null: the pack did not carry it."""
    from globesms.accept.service import accept
    from globesms.models.api import MessageSpec

    queues = MemoryQueues()
    body = [
        MessageSpec.model_validate({"to": ["+85251234567"], "text": "code 1", "type": "OTP"}),
        MessageSpec.model_validate({"to": ["+6591234567"], "text": "验证码 1", "type": "OTP"}),
    ]
    answer = accept(body, batch_id="B", source="api", now=NOW, retention_days=90, store=MemoryStore(), queues=queues)
    assert [m.encoding for m in answer.messages] == ["GSM-7", "UCS-2"]
    sent = [
        DispatchPack.model_validate_json(p.model_dump_json(exclude_none=True)) for p in queues.sent[ProviderName.ALIYUN]
    ]
    store = MemoryStore()
    for pack_ in sent:  # as the SQS adapter writes it
        run(pack_, ScriptedProvider(), store)
    assert [store.messages[m.id].encoding for m in answer.messages] == ["GSM-7", "UCS-2"]


def test_a_pack_queued_before_recipients_carried_the_encoding_is_dispatched_without_one() -> None:
    """Packs on the queues when this is deployed have no `encoding`: still valid, the records' is null."""
    store = MemoryStore()
    run(pack(1), ScriptedProvider(), store)
    assert store.messages["B.00000"].status is Status.SUBMITTED and store.messages["B.00000"].encoding is None


def test_per_recipient_errors_are_failed_with_raw_and_normalised_codes() -> None:
    bad = ProviderError(ErrorCategory.RECIPIENT, "MOBILE_NUMBER_ILLEGAL", "bad number", 200)
    provider = ScriptedProvider(answer=lambda m: bad if m.message_id == "B.00001" else None)
    store = MemoryStore()
    summary = run(pack(), provider, store)
    assert (summary.submitted, summary.failed) == (2, 1)
    failed = store.messages["B.00001"]
    assert failed.status is Status.FAILED
    assert (failed.error_category, failed.error_code) == ("recipient", "MOBILE_NUMBER_ILLEGAL")


def test_a_call_that_failed_transiently_as_a_whole_is_retried_and_writes_nothing() -> None:
    busy = ProviderError(ErrorCategory.THROTTLED, "Throttling.User", "slow down", 400)
    store = MemoryStore()
    with pytest.raises(RetryPack):
        run(pack(), ScriptedProvider(answer=lambda m: busy), store)
    assert not store.messages


def test_on_the_last_attempt_a_transient_failure_is_recorded_before_the_dead_letter_queue() -> None:
    down = ProviderError(ErrorCategory.RETRYABLE, "ServiceUnavailable", "", 503)
    store = MemoryStore()
    with pytest.raises(RetryPack):
        run(pack(), ScriptedProvider(answer=lambda m: down), store, last_attempt=True)
    assert {m.status for m in store.messages.values()} == {Status.FAILED}
    assert {m.error_code for m in store.messages.values()} == {"ServiceUnavailable"}


def test_an_unknown_outcome_is_not_marked_failed() -> None:
    timeout = ProviderError(ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT", "")
    store = MemoryStore()
    summary = run(pack(1), ScriptedProvider(answer=lambda m: timeout), store)
    assert summary.unknown == 1
    assert store.messages["B.00000"].status is Status.SENDING


def test_packs_larger_than_a_provider_call_are_sent_in_chunks() -> None:
    provider = ScriptedProvider(max_recipients_per_call=2)
    run(pack(5), provider, MemoryStore())
    assert [len(c) for c in provider.calls] == [2, 2, 1]


class RefusingProvider(ScriptedProvider):
    def send(self, messages):  # type: ignore[no-untyped-def]
        raise InvalidProviderRequest("From", "at most 11 characters when it contains a letter")


def test_a_request_the_client_refuses_fails_with_field_and_rule() -> None:
    store = MemoryStore()
    run(pack(2), RefusingProvider(), store)
    record = store.messages["B.00000"]
    assert record.status is Status.FAILED
    assert record.error_category == "request"
    assert record.error_message == "From: at most 11 characters when it contains a letter"


def test_outcomes_keep_provider_segments_when_given() -> None:
    class Billing(ScriptedProvider):
        def send(self, messages):  # type: ignore[no-untyped-def]
            return [SendOutcome(message_id=m.message_id, provider_message_id="x", segments=2) for m in messages]

    store = MemoryStore()
    run(pack(1), Billing(), store)
    assert store.messages["B.00000"].segments == 2


class CheckingProvider(ScriptedProvider):
    """Refuses, message by message, the numbers in `refused` (as a client's `check` would)."""

    def __init__(self, refused: set[str], **options: Any) -> None:
        super().__init__(**options)
        self.refused = refused
        self.checked: list[str] = []

    def check(self, message: OutboundSms) -> InvalidProviderRequest | None:
        self.checked.append(message.message_id)
        if message.to in self.refused:
            return InvalidProviderRequest("to", "numbers in the Chinese mainland (+86) cannot be sent")
        return None


def test_a_message_the_provider_refuses_fails_alone_and_the_others_are_sent() -> None:
    store = MemoryStore()
    bad = pack(4).recipients[1].to
    provider = CheckingProvider({bad})
    summary = run(pack(4), provider, store)
    assert (summary.submitted, summary.failed) == (3, 1)
    assert [[m.message_id for m in call] for call in provider.calls] == [["B.00000", "B.00002", "B.00003"]]
    refused = store.messages["B.00001"]
    assert refused.status is Status.FAILED
    assert (refused.error_category, refused.error_code) == ("request", "INVALID_REQUEST")
    assert refused.error_message == "to: numbers in the Chinese mainland (+86) cannot be sent"
    assert {store.messages[f"B.0000{i}"].status for i in (0, 2, 3)} == {Status.SUBMITTED}


def test_each_recipients_message_carries_its_contents_fields_by_name() -> None:
    two = DispatchPack.model_validate(
        {
            "pack_id": "B:tencent:0",
            "batch_id": "B",
            "provider": ProviderName.TENCENT,
            "created_at": "2026-11-26T09:59:00.000000Z",
            "contents": [
                {"type": "OTP", "template_id": "1234567", "template_params": {"code": "42", "minutes": "5"}},
                {
                    "type": "MKT",
                    "text": "sale",
                    "template_params": {"kept": "for failover"},
                    "sender_id": "Acme",
                    "validity_seconds": 3600,
                },
            ],
            "recipients": [
                {"id": "B.00000", "to": "+85251234560", "c": 1},
                {"id": "B.00001", "to": "+6591234567", "c": 0},
            ],
        }
    )
    assert outbound_messages(two) == [
        OutboundSms(
            message_id="B.00000",
            to="+85251234560",
            type=MessageType.MKT,
            text="sale",
            template_id=None,
            template_params=(),
            sender_id="Acme",
            validity_seconds=3600,
        ),
        OutboundSms(
            message_id="B.00001",
            to="+6591234567",
            type=MessageType.OTP,
            text=None,
            template_id="1234567",
            template_params=("42", "5"),
            sender_id=None,
            validity_seconds=None,
        ),
    ]


def test_send_all_keeps_input_order_and_fills_chunks_with_sendable_messages() -> None:
    messages = outbound_messages(pack(7))
    refused = {messages[0].to, messages[3].to, messages[6].to}
    provider = CheckingProvider(refused, max_recipients_per_call=2)
    outcomes = send_all(provider, messages)
    assert provider.checked == [m.message_id for m in messages]  # every message checked, before any send
    assert [o.message_id for o in outcomes] == [m.message_id for m in messages]
    assert [o.ok for o in outcomes] == [False, True, True, False, True, True, False]
    assert [[m.message_id for m in call] for call in provider.calls] == [["B.00001", "B.00002"], ["B.00004", "B.00005"]]
    error = outcomes[3].error
    assert error is not None and (error.category, error.code) == (ErrorCategory.REQUEST, "INVALID_REQUEST")


def test_when_every_message_is_refused_nothing_is_sent() -> None:
    messages = outbound_messages(pack(3))
    provider = CheckingProvider({m.to for m in messages})
    outcomes = send_all(provider, messages)
    assert provider.calls == []
    assert [o.error.code if o.error else None for o in outcomes] == ["INVALID_REQUEST"] * 3


def test_a_call_level_refusal_still_fails_only_its_own_chunk() -> None:
    class RefusesSecondCall(CheckingProvider):
        def send(self, messages: Sequence[OutboundSms]) -> list[SendOutcome]:
            if self.calls:
                self.calls.append(list(messages))
                raise InvalidProviderRequest("message_id", "must be unique within one call")
            return super().send(messages)

    messages = outbound_messages(pack(5))
    outcomes = send_all(RefusesSecondCall({messages[0].to}, max_recipients_per_call=2), messages)
    assert [o.ok for o in outcomes] == [False, True, True, False, False]
    assert [o.error.message if o.error else None for o in outcomes][3:] == [
        "message_id: must be unique within one call"
    ] * 2


def test_a_repeated_delivery_of_a_sent_pack_sends_nothing() -> None:
    store, claims, provider = MemoryStore(), MemoryClaims(), ScriptedProvider()
    run(pack(), provider, store, claims)
    summary = run(pack(), provider, store, claims)
    assert len(provider.calls) == 1
    assert (summary.skipped, summary.submitted) == (3, 0)
    assert {m.status for m in store.messages.values()} == {Status.SUBMITTED}


def test_a_pack_claimed_by_a_live_dispatcher_is_left_for_later() -> None:
    store, claims, provider = MemoryStore(), MemoryClaims(), ScriptedProvider()
    claims.claim("B:aliyun:0", now=NOW, lease_seconds=120)
    with pytest.raises(PackBusy):
        run(pack(), provider, store, claims)
    assert provider.calls == []


def test_a_pack_whose_dispatcher_died_after_claiming_is_not_sent_again() -> None:
    store, claims, provider = MemoryStore(), MemoryClaims(), ScriptedProvider()
    claims.claim("B:aliyun:0", now=NOW - timedelta(minutes=5), lease_seconds=120)
    summary = run(pack(), provider, store, claims)
    assert provider.calls == []
    assert summary.unknown == 3
    record = store.messages["B.00000"]
    assert (record.status, record.error_code) == (Status.SENDING, "DISPATCH_INTERRUPTED")
    assert run(pack(), provider, store, claims).skipped == 3


def test_a_takeover_of_a_resumed_accepts_copy_of_the_pack_reads_the_notes_by_recipient() -> None:
    """A resumed accept queues a copy of a pack under its id with only the recipients still as accept wrote them
    (accept/resume.py). When the dispatcher of the original died after putting one recipient back and recording
    another, the copy's takeover puts back that very recipient, not whoever now stands at its old position."""
    from globesms.dispatch.failover import Rerouted
    from globesms.dispatch.requeue import requeue_after_send

    store, claims, queues, provider = MemoryStore(), MemoryClaims(), MemoryQueues(), ScriptedProvider()
    original = pack(3)
    claims.claim(original.pack_id, now=NOW - timedelta(minutes=5), lease_seconds=120)
    requeue_after_send(claims, MemoryQueues(), original, retried=[2], deferred=[], moved=Rerouted(), deferred_delay=1)
    submitted = ScriptedProvider()
    run(pack(1), submitted, store)  # B.00000 sent and recorded (in a pack of its own here: its record is the point)
    copy = original.model_copy(update={"recipients": original.recipients[1:]})
    run(copy, provider, store, claims, queues=queues)
    assert provider.calls == []
    queued = {p.pack_id: [r.id for r in p.recipients] for p in queues.sent[ProviderName.ALIYUN]}
    # the recipient put back, queued again under the same pack id; the one maybe sent, to settle after the window
    assert queued == {"B:aliyun:0.r1": ["B.00002"], "B:aliyun:0.u": ["B.00001"]}
    assert store.messages["B.00001"].status is Status.SENDING  # maybe sent before the death: settled, not resent
    assert store.messages["B.00000"].status is Status.SUBMITTED
    assert "B.00002" not in store.messages


def test_a_breaker_count_that_fails_after_the_calls_leaves_the_outcomes_recorded() -> None:
    """On the last receive a failure here sent the pack to the dead-letter queue with its records as accept wrote
    them, though the provider had taken it."""

    class Throttled(MemoryBreakers):
        def record_success(self, provider: ProviderName) -> None:
            raise RuntimeError("ProvisionedThroughputExceededException")

    store, breakers, provider = MemoryStore(), Throttled(), ScriptedProvider()
    breakers.states[ProviderName.ALIYUN] = BreakerState(failures=4)  # the earlier receives of this pack failed
    summary = run(pack(), provider, store, breakers=breakers, last_attempt=True)
    assert provider.calls and summary.submitted == 3
    assert {m.status for m in store.messages.values()} == {Status.SUBMITTED}


def test_a_whole_pack_retry_releases_its_claim_so_the_next_delivery_sends() -> None:
    store, claims = MemoryStore(), MemoryClaims()
    busy = ProviderError(ErrorCategory.THROTTLED, "Throttling.User", "", 400)
    with pytest.raises(RetryPack):
        run(pack(), ScriptedProvider(answer=lambda m: busy), store, claims)
    provider = ScriptedProvider()
    run(pack(), provider, store, claims)
    assert len(provider.calls) == 1
    assert {m.status for m in store.messages.values()} == {Status.SUBMITTED}


def test_only_the_throttled_recipients_go_back_on_the_queue_with_a_delay() -> None:
    busy = ProviderError(ErrorCategory.THROTTLED, "LimitExceeded.PhoneNumberDailyLimit", "", 200)
    provider = ScriptedProvider(answer=lambda m: busy if m.message_id == "B.00001" else None)
    store, claims, queues = MemoryStore(), MemoryClaims(), MemoryQueues()
    summary = run(pack(), provider, store, claims, queues=queues)
    assert (summary.submitted, summary.retried) == (2, 1)
    assert "B.00001" not in store.messages  # not rewritten: still as accept wrote it
    (retry,) = queues.sent[ProviderName.ALIYUN]
    assert (retry.pack_id, retry.attempt, [r.id for r in retry.recipients]) == ("B:aliyun:0.r1", 1, ["B.00001"])
    assert 1 <= queues.delays[0] <= 20


def test_the_last_retry_pack_records_transient_failures_as_failed() -> None:
    busy = ProviderError(ErrorCategory.THROTTLED, "LimitExceeded.PhoneNumberDailyLimit", "", 200)
    provider = ScriptedProvider(answer=lambda m: busy if m.message_id == "B.00001" else None)
    store, queues = MemoryStore(), MemoryQueues()
    last = pack().model_copy(update={"attempt": 4})
    run(last, provider, store, MemoryClaims(), queues=queues)
    assert store.messages["B.00001"].status is Status.FAILED
    assert not queues.sent


# ---------------------------------------------------------------------------------------------------------------
# Rate limits: permits per operation per second, shared by every dispatcher (fake: MemoryRateLimiter)

SINGLE, BATCH = "SendMessageToGlobe", "BatchSendMessageToGlobe"
T0 = 1_800_000_000.25  # a quarter into a wall-clock second


def limited(pack_: DispatchPack, provider: ScriptedProvider, limiter: MemoryRateLimiter, **kw: Any):  # type: ignore[no-untyped-def]
    store, claims, queues = kw.pop("store", MemoryStore()), kw.pop("claims", MemoryClaims()), kw.pop("queues", None)
    queues = queues if queues is not None else MemoryQueues()
    deps = DispatchDeps(
        provider=provider,
        store=store,
        claims=claims,
        queues=queues,
        receipts=store,
        webhooks=MemoryWebhooks(),
        limiter=limiter,
        clock=kw.pop("clock", lambda: T0),
    )
    summary = dispatch_pack(pack_, deps, now=NOW, last_attempt=kw.pop("last_attempt", False))
    return summary, store, claims, queues


def test_within_the_limits_every_recipient_is_sent_and_its_permits_taken() -> None:
    provider = ScriptedProvider(one_call_per_message=True)
    limiter = MemoryRateLimiter({SINGLE: 2000})
    summary, _, _, queues = limited(pack(3), provider, limiter)
    assert (summary.submitted, summary.deferred) == (3, 0)
    assert limiter.granted == [(int(T0), {SINGLE: 3})]
    assert provider.operations == [SINGLE] * 3
    assert not queues.sent


def test_a_pack_larger_than_a_seconds_permits_sends_what_they_allow_and_requeues_the_rest() -> None:
    provider = ScriptedProvider(one_call_per_message=True)
    limiter = MemoryRateLimiter({SINGLE: 2})
    summary, store, claims, queues = limited(pack(5), provider, limiter)
    assert (summary.submitted, summary.deferred, summary.retried) == (2, 3, 0)
    assert sorted(store.messages) == ["B.00000", "B.00001"]  # the others are still as accept wrote them
    (rest,) = queues.sent[ProviderName.ALIYUN]
    assert (rest.pack_id, rest.attempt) == ("B:aliyun:0.w1", 0)  # waiting for a permit is not an attempt
    assert [r.id for r in rest.recipients] == ["B.00002", "B.00003", "B.00004"]
    assert 1 <= queues.delays[0] <= 2  # 3 calls at 2/s
    assert claims.state["B:aliyun:0"] == "DONE"
    assert limiter.used[(SINGLE, int(T0))] == 2

    # A repeated delivery of the original sends nothing; the remainder goes in a later second, 2 at a time.
    assert limited(pack(5), provider, limiter, store=store, claims=claims)[0].skipped == 5
    summary, _, _, later = limited(rest, provider, limiter, store=store, claims=claims, clock=lambda: T0 + 1)
    assert (summary.submitted, summary.deferred) == (2, 1)
    assert [(p.pack_id, [r.id for r in p.recipients]) for p in later.sent[ProviderName.ALIYUN]] == [
        ("B:aliyun:0.w2", ["B.00004"])
    ]
    assert len(provider.calls) == 4


def test_a_pack_without_any_permit_goes_back_whole_and_writes_nothing() -> None:
    provider = ScriptedProvider(one_call_per_message=True)
    limiter = MemoryRateLimiter({SINGLE: 2})
    assert limiter.acquire({SINGLE: 2}, second=int(T0))  # other dispatchers took this second's permits
    summary, store, claims, queues = limited(pack(3), provider, limiter)
    assert (summary.submitted, summary.failed, summary.unknown, summary.deferred) == (0, 0, 0, 3)
    assert provider.calls == [] and store.put_calls == 0
    (rest,) = queues.sent[ProviderName.ALIYUN]
    assert (rest.pack_id, len(rest.recipients)) == ("B:aliyun:0.w1", 3)
    assert claims.state["B:aliyun:0"] == "DONE"


def notify_pack(n: int) -> DispatchPack:
    return pack(n).model_copy(update={"contents": [pack(n).contents[0].model_copy(update={"type": "NOTIFY"})]})


def test_an_alibaba_batch_without_a_batch_permit_goes_as_single_calls() -> None:
    provider = ScriptedProvider(operation=BATCH, singles=SINGLE)
    limiter = MemoryRateLimiter({BATCH: 1, SINGLE: 2000})
    assert limited(notify_pack(3), provider, limiter)[0].submitted == 3
    assert provider.operations == [BATCH]  # the batch permit was free: one call
    assert limiter.acquire({BATCH: 0}, second=int(T0) + 1)
    provider.operations.clear()
    summary, *_ = limited(notify_pack(3).model_copy(update={"pack_id": "other"}), provider, limiter)
    assert summary.submitted == 3
    assert provider.operations == [SINGLE] * 3  # this second's batch permit is spent: single calls instead


def test_a_whole_pack_retry_takes_its_unsent_recipients_with_it() -> None:
    busy = ProviderError(ErrorCategory.THROTTLED, "Throttling.User", "", 400)
    provider = ScriptedProvider(one_call_per_message=True, answer=lambda m: busy)
    limiter = MemoryRateLimiter({SINGLE: 2})
    queues, claims = MemoryQueues(), MemoryClaims()
    with pytest.raises(RetryPack):
        limited(pack(4), provider, limiter, queues=queues, claims=claims)
    assert not queues.sent  # SQS delivers the whole pack again, the 2 unsent recipients included
    assert claims.state["B:aliyun:0"] == "OPEN"


def test_deferred_packs_are_numbered_in_a_row_and_keep_their_attempt() -> None:
    first = deferred_pack(pack(3), [1, 2])
    assert (first.pack_id, [r.id for r in first.recipients]) == ("B:aliyun:0.w1", ["B.00001", "B.00002"])
    assert deferred_pack(first, [1]).pack_id == "B:aliyun:0.w2"
    retried = pack(3).model_copy(update={"pack_id": "B:aliyun:0.w2.r1", "attempt": 1})
    assert (deferred_pack(retried, [0]).pack_id, deferred_pack(retried, [0]).attempt) == ("B:aliyun:0.w2.r1.w1", 1)


class Clock:
    """Wall-clock time the test moves: each provider call takes `per_call` seconds, `sleep` moves it on."""

    def __init__(self, start: float, per_call: float = 0.0) -> None:
        self.now, self.per_call = start, per_call
        self.slept: list[float] = []
        self.call_times: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def answer(self, message: OutboundSms) -> None:
        self.call_times.append(self.now)
        self.now += self.per_call


def test_no_call_starts_after_the_usable_part_of_the_second_its_permit_is_for() -> None:
    clock = Clock(1000.0, per_call=0.3)
    provider = ScriptedProvider(one_call_per_message=True, answer=clock.answer)  # type: ignore[arg-type]
    limiter = MemoryRateLimiter({SINGLE: 10})
    sent = send_within_limits(provider, outbound_messages(pack(6)), limiter, clock=clock, sleep=clock.sleep)
    assert all(o is not None and o.ok for o in sent.outcomes)
    assert [int(t) for t in clock.call_times] == [1000, 1000, 1000, 1001, 1001, 1001]
    assert all(t - int(t) < 1 - SECOND_MARGIN for t in clock.call_times)
    assert [second for second, _ in limiter.granted] == [1000, 1001]
    assert clock.slept == [pytest.approx(0.1)]  # from 1000.9 to the start of 1001: never longer than the margin


def test_after_its_time_budget_a_dispatcher_puts_the_rest_back() -> None:
    clock = Clock(1000.0, per_call=0.5)
    provider = ScriptedProvider(one_call_per_message=True, answer=clock.answer)  # type: ignore[arg-type]
    limiter = MemoryRateLimiter({SINGLE: 10})
    sent = send_within_limits(
        provider, outbound_messages(pack(6)), limiter, clock=clock, sleep=clock.sleep, budget_seconds=2.0
    )
    assert [int(t) for t in clock.call_times] == [1000, 1000, 1001, 1001]  # then 2 s have gone by
    assert sent.unsent == [4, 5]
    assert sent.delay_seconds == 1  # 2 calls at 10/s


def test_no_call_starts_that_could_still_be_waiting_when_the_invocation_must_stop_calling() -> None:
    """A call may take its timeouts (`longest_call_seconds`): one started late in the budget ran past it, and a
    second pack's call past the function's timeout, which left the pack to be settled as possibly sent."""
    clock = Clock(1000.0, per_call=0.3)
    provider = ScriptedProvider(one_call_per_message=True, answer=clock.answer)  # type: ignore[arg-type]
    provider.longest_call_seconds = 13.0
    sent = send_within_limits(
        provider,
        outbound_messages(pack(6)),
        MemoryRateLimiter({SINGLE: 10}),
        clock=clock,
        sleep=clock.sleep,
        calls_end_by=1013.5,  # room for two calls' timeouts from 1000.0 and 1000.3, not from 1000.6
    )
    assert clock.call_times == [pytest.approx(1000.0), pytest.approx(1000.3)]
    assert sent.unsent == [2, 3, 4, 5] and sent.delay_seconds >= 1  # back on the queue, as after the budget
    nothing = send_within_limits(
        provider, outbound_messages(pack(2)), MemoryRateLimiter({SINGLE: 10}), clock=clock, calls_end_by=clock.now + 12
    )
    assert nothing.unsent == [0, 1] and len(clock.call_times) == 2  # no time for even one: no round starts


def test_a_dispatcher_does_not_wait_for_the_next_second_when_this_ones_permits_are_gone() -> None:
    clock = Clock(1000.0, per_call=0.1)
    provider = ScriptedProvider(one_call_per_message=True, answer=clock.answer)  # type: ignore[arg-type]
    sent = send_within_limits(
        provider, outbound_messages(pack(4)), MemoryRateLimiter({SINGLE: 1}), clock=clock, sleep=clock.sleep
    )
    assert sent.unsent == [1, 2, 3]
    assert clock.now == pytest.approx(1000.1) and clock.slept == []


def test_a_chunk_the_provider_refuses_to_plan_fails_alone() -> None:
    class RefusesToPlanBigChunks(ScriptedProvider):
        def plan(self, messages: Sequence[OutboundSms]) -> list[PlannedCall]:
            if len(messages) > 1:
                raise InvalidProviderRequest("message_id", "must be unique within one call")
            return super().plan(messages)

    provider = RefusesToPlanBigChunks(max_recipients_per_call=2)
    sent = send_within_limits(provider, outbound_messages(pack(3)), MemoryRateLimiter({SINGLE: 10}))
    assert [o.error.code if o and o.error else None for o in sent.outcomes] == ["INVALID_REQUEST"] * 2 + [None]
    assert [len(call) for call in provider.calls] == [1]


def test_a_limiter_that_fails_before_any_call_releases_the_claim_so_the_pack_is_sent_later() -> None:
    class Broken(MemoryRateLimiter):
        def acquire(self, permits: Any, *, second: int) -> bool:
            raise ConnectionError("DynamoDB unreachable")

    provider = ScriptedProvider(one_call_per_message=True)
    claims = MemoryClaims()
    with pytest.raises(RateLimiterUnavailable, match="ConnectionError: DynamoDB unreachable"):
        limited(pack(2), provider, Broken({SINGLE: 10}), claims=claims)
    assert provider.calls == [] and claims.state["B:aliyun:0"] == "OPEN"


def test_a_limiter_that_fails_after_some_calls_leaves_the_rest_unsent() -> None:
    class FailsSecondTime(MemoryRateLimiter):
        def acquire(self, permits: Any, *, second: int) -> bool:
            if self.granted:
                raise ConnectionError("DynamoDB unreachable")
            return super().acquire(permits, second=second)

    clock = Clock(1000.0, per_call=0.5)
    provider = ScriptedProvider(one_call_per_message=True, answer=clock.answer)  # type: ignore[arg-type]
    sent = send_within_limits(
        provider, outbound_messages(pack(4)), FailsSecondTime({SINGLE: 10}), clock=clock, sleep=clock.sleep
    )
    assert sent.unsent == [2, 3] and sent.delay_seconds == 1


def test_a_pack_dead_lettered_after_its_last_attempt_is_sent_when_redriven() -> None:
    down = ProviderError(ErrorCategory.RETRYABLE, "ServiceUnavailable", "", 503)
    store, claims = MemoryStore(), MemoryClaims()
    with pytest.raises(RetryPack):
        run(pack(), ScriptedProvider(answer=lambda m: down), store, claims, last_attempt=True)
    assert {m.status for m in store.messages.values()} == {Status.FAILED}
    provider = ScriptedProvider()  # the fix: the provider is back
    run(pack(), provider, store, claims)
    assert len(provider.calls) == 1
    assert {m.status for m in store.messages.values()} == {Status.SUBMITTED}


def test_a_last_retry_pack_failed_as_a_whole_with_receives_left_is_finished_not_sent_again() -> None:
    """`.r4` is the pack's last attempt on SQS receive 1: its records say FAILED (the customer is told), so it must
    not stay claimable, or SQS's next receive would send it and turn FAILED into SUBMITTED."""
    down = ProviderError(ErrorCategory.RETRYABLE, "ServiceUnavailable", "", 503)
    store, claims = MemoryStore(), MemoryClaims()
    last = pack().model_copy(update={"pack_id": "B:aliyun:0.r1.r2.r3.r4", "attempt": 4})
    summary = run(last, ScriptedProvider(answer=lambda m: down), store, claims, last_attempt=False)  # receive 1 of 5
    assert summary.failed == 3 and claims.state[last.pack_id] == "DONE"
    assert {m.status for m in store.messages.values()} == {Status.FAILED}
    provider = ScriptedProvider()
    assert run(last, provider, store, claims, now=NOW + timedelta(seconds=180)).skipped == 3  # a repeated delivery
    assert provider.calls == []
    assert {m.status for m in store.messages.values()} == {Status.FAILED}


DOWN = ProviderError(ErrorCategory.RETRYABLE, "ServiceUnavailable", "", 503)


def limited_deps(
    provider: ScriptedProvider, limiter: MemoryRateLimiter, at: float, store: MemoryStore, **ports: Any
) -> DispatchDeps:
    """In-memory ports (`store`, `claims`, `queues` shared by the caller) with a limiter and a fixed clock."""
    webhooks = MemoryWebhooks()
    return DispatchDeps(provider, store, receipts=store, webhooks=webhooks, limiter=limiter, clock=lambda: at, **ports)


def test_a_dead_lettered_packs_recipient_without_a_permit_comes_back_with_the_pack_only() -> None:
    """Last receive, 1 permit a second: recipient 0 gets a 503, recipient 1 no permit. Queued on its own (`.w1`)
    it would be sent there and again by the redrive of the whole pack: it is recorded FAILED with the pack instead."""
    store, queues = MemoryStore(), MemoryQueues()
    ports: dict[str, Any] = {"store": store, "claims": MemoryClaims(), "queues": queues}
    down = ScriptedProvider(one_call_per_message=True, answer=lambda m: DOWN if m.message_id == "B.00000" else None)
    with pytest.raises(RetryPack):
        dispatch_pack(
            pack(2), limited_deps(down, MemoryRateLimiter({SINGLE: 1}), T0, **ports), now=NOW, last_attempt=True
        )
    assert queues.sent == {}
    assert {(m.status, m.error_code) for m in store.messages.values()} == {(Status.FAILED, "ServiceUnavailable")}
    up = ScriptedProvider(one_call_per_message=True)  # the operator redrives the pack after the fix
    later = limited_deps(up, MemoryRateLimiter({SINGLE: 10}), T0 + 600, **ports)
    dispatch_pack(pack(2), later, now=NOW, last_attempt=False)
    assert [m.message_id for call in up.calls for m in call] == ["B.00000", "B.00001"]  # each once


def test_a_last_retry_packs_recipient_without_a_permit_is_sent_once_by_its_deferred_pack() -> None:
    """`.r4` with SQS receives left: finished, not dead-lettered, so its `.w1` is the one way recipient 1 is sent."""
    queues = MemoryQueues()
    ports: dict[str, Any] = {"store": MemoryStore(), "claims": MemoryClaims(), "queues": queues}
    last = pack(2).model_copy(update={"pack_id": "B:aliyun:0.r1.r2.r3.r4", "attempt": 4})
    down = ScriptedProvider(one_call_per_message=True, answer=lambda m: DOWN if m.message_id == "B.00000" else None)
    dispatch_pack(last, limited_deps(down, MemoryRateLimiter({SINGLE: 1}), T0, **ports), now=NOW, last_attempt=False)
    (deferred,) = queues.sent[ProviderName.ALIYUN]
    up, later = ScriptedProvider(one_call_per_message=True), MemoryRateLimiter({SINGLE: 10})
    dispatch_pack(deferred, limited_deps(up, later, T0 + 5, **ports), now=NOW, last_attempt=False)
    again = NOW + timedelta(seconds=180)  # SQS's next receive of `.r4`
    dispatch_pack(last, limited_deps(up, later, T0 + 180, **ports), now=again, last_attempt=False)
    assert [m.message_id for call in up.calls for m in call] == ["B.00001"]


def test_a_pack_failing_after_its_calls_reports_them_once_and_raises_its_own_error() -> None:
    """Recording the outcomes fails after the provider answered: the calls go to `report_unfinished_calls` (the
    provider's alarms), and the write's own error propagates (the claim kept: a takeover settles the pack)."""

    class WriteFails(MemoryStore):
        def put_messages(self, messages: Sequence[Any], deadlines: Sequence[Any] = ()) -> None:
            raise ConnectionError("DynamoDB write timed out")

    reported: list[ProviderCalls] = []
    with pytest.raises(ConnectionError):
        run(pack(3), ScriptedProvider(), WriteFails(), report_unfinished_calls=reported.append)
    assert reported == [ProviderCalls(attempted=3, errors={}, breaker_opened=False)]


def test_a_breaker_count_that_fails_is_logged_and_the_pack_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    class CountFails(MemoryBreakers):
        def record_failure(
            self, provider: ProviderName, *, now: datetime, failures_to_open: int, cooldown_seconds: int
        ) -> BreakerState:
            raise ConnectionError("DynamoDB write timed out")

    with pytest.raises(RetryPack) as raised:  # every call failed: the whole pack again, as without a breaker
        run(pack(3), ScriptedProvider(answer=lambda m: DOWN), MemoryStore(), breakers=CountFails())
    assert raised.value.calls == ProviderCalls(attempted=3, errors={ErrorCategory.RETRYABLE: 3}, breaker_opened=False)
    assert "could not count the pack in the circuit breaker" in caplog.text


def test_a_dead_lettered_pack_reports_its_calls_on_its_retry_only() -> None:
    reported: list[ProviderCalls] = []
    with pytest.raises(RetryPack) as raised:
        run(
            pack(2),
            ScriptedProvider(answer=lambda m: DOWN),
            MemoryStore(),
            report_unfinished_calls=reported.append,
            last_attempt=True,
        )
    assert reported == [] and raised.value.calls.attempted == 2


def test_an_error_before_any_provider_call_releases_the_claim_so_the_pack_is_sent_later() -> None:
    """The breaker's DynamoDB read fails after the claim: kept, the claim would expire and its next delivery would
    make every recipient an unknown outcome (DISPATCH_INTERRUPTED), though nobody was texted."""

    class Flaky(MemoryBreakers):
        failed = False

        def state(self, provider: ProviderName) -> BreakerState:
            if not self.failed:
                self.failed = True
                raise ConnectionError("DynamoDB read timed out")
            return super().state(provider)

    store, claims, breakers, provider = MemoryStore(), MemoryClaims(), Flaky(), ScriptedProvider()
    with pytest.raises(ConnectionError):
        run(pack(2), provider, store, claims, breakers=breakers)
    assert provider.calls == [] and claims.state["B:aliyun:0"] == "OPEN"
    run(pack(2), provider, store, claims, breakers=breakers, now=NOW + timedelta(seconds=180))  # SQS redelivers
    assert len(provider.calls) == 1
    assert {m.status for m in store.messages.values()} == {Status.SUBMITTED}


def test_an_error_in_a_provider_call_keeps_the_claim_the_call_may_have_gone_out() -> None:
    class Crashing(ScriptedProvider):
        def send(self, messages, *, plan=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("connection reset after the request was written")

    claims = MemoryClaims()
    with pytest.raises(RuntimeError):
        run(pack(2), Crashing(), MemoryStore(), claims)
    assert claims.state["B:aliyun:0"] == "CLAIMED"  # its expiry settles the pack as interrupted


def test_a_limiter_that_fails_on_the_last_receive_leaves_records_that_say_so_for_the_dead_letter_queue() -> None:
    """docs/pipeline.md: a pack in a DLQ always has records that say so."""

    class Broken(MemoryRateLimiter):
        def acquire(self, permits: Any, *, second: int) -> bool:
            raise ConnectionError("DynamoDB unreachable")

    store, claims = MemoryStore(), MemoryClaims()
    with pytest.raises(RateLimiterUnavailable):
        limited(pack(2), ScriptedProvider(), Broken({SINGLE: 10}), store=store, claims=claims, last_attempt=True)
    failed = {(m.status, m.error_category, m.error_code, m.error_message) for m in store.messages.values()}
    assert failed == {(Status.FAILED, "retryable", "DISPATCH_FAILED", "the dispatcher failed (RateLimiterUnavailable)")}
    assert len(store.messages) == 2 and claims.state["B:aliyun:0"] == "DEAD"  # a redrive sends it
    other = MemoryStore()
    with pytest.raises(RateLimiterUnavailable):  # with receives left nothing is written: the next one may send it
        limited(pack(2), ScriptedProvider(), Broken({SINGLE: 10}), store=other)
    assert not other.messages


class EntriesLost(MemoryStore):
    """The records' batch write succeeds, the deadline entries' (a later chunk, or UnprocessedItems past the
    retries) does not: put_messages raises after the records are stored."""

    fail = True

    def put_messages(self, messages, deadlines=()):  # type: ignore[no-untyped-def]
        if self.fail and deadlines:
            super().put_messages(messages, ())
            raise RuntimeError("DynamoDB left 1 writes unprocessed after retries")
        super().put_messages(messages, deadlines)


def test_a_submitted_record_whose_deadline_entry_was_not_written_gets_one_after_the_takeover() -> None:
    store, claims, provider = EntriesLost(), MemoryClaims(), ScriptedProvider()
    with pytest.raises(RuntimeError):
        run(pack(1), provider, store, claims)
    assert store.messages["B.00000"].status is Status.SUBMITTED
    assert store.deadlines == {}
    store.fail = False
    # SQS delivers the pack again after its visibility timeout: the claim is stale, the takeover runs
    run(pack(1), provider, store, claims, now=NOW + timedelta(minutes=5))
    assert len(provider.calls) == 1
    record = store.messages["B.00000"]
    assert record.status is Status.SUBMITTED and record.receipt_due_at is not None
    # the reconciler reads only the entries: without one the message is never checked
    assert store.deadlines, "no deadline entry lists the SUBMITTED message: it is never reconciled"


def rotated_key_provider() -> Provider:
    """The dispatcher's client for a key the provider refuses, its secret holding a new one it takes."""
    from collections.abc import Mapping

    from globesms.providers import ProviderClients
    from tests.unit.providers.test_provider_clients import KeyedProvider, Secret

    secret = Secret("revoked")

    def build(name: ProviderName, env: Mapping[str, str]) -> Any:
        return KeyedProvider(env["GLOBESMS_ALIYUN_ACCESS_KEY_ID"], {"rotated"})

    provider = ProviderClients(ProviderName.ALIYUN, environment=secret.environment, build=build).current()
    secret.stored = "rotated"
    return provider


@pytest.mark.parametrize("limited", [True, False])
def test_a_rotated_key_sends_the_pack_with_the_new_key_counting_nothing_against_the_provider(limited: bool) -> None:
    """The refusal for the old key is no failure of the provider (its breaker would open after five packs at a
    rotation) nor of the messages (a last attempt recorded them FAILED): they go with the new key."""
    from globesms.dispatch.requeue import MAX_PACK_ATTEMPTS

    store, breakers = MemoryStore(), MemoryBreakers()
    breakers.states[ProviderName.ALIYUN] = BreakerState(failures=4)  # one more failed pack opens it
    last = pack(3).model_copy(update={"pack_id": "B:aliyun:0.r4", "attempt": MAX_PACK_ATTEMPTS - 1})
    limiter = MemoryRateLimiter({"SendMessageToGlobe": 10}) if limited else None
    summary = run(last, rotated_key_provider(), store, breakers=breakers, limiter=limiter, last_attempt=True)
    assert summary.submitted == 3
    assert {m.status for m in store.messages.values()} == {Status.SUBMITTED}
    assert breakers.states[ProviderName.ALIYUN] == BreakerState()  # an answered pack, not a fifth failed one
