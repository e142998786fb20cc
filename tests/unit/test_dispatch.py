from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from globesms.dispatch import PackBusy, RetryPack, dispatch_pack, outbound_messages, send_all
from globesms.errors import ErrorCategory, InvalidProviderRequest, ProviderError
from globesms.models.outbound import OutboundSms, ProviderName, SendOutcome
from globesms.models.packs import DispatchPack
from globesms.status import Status
from tests.fakes import MemoryClaims, MemoryQueues, MemoryStore, MemoryWebhooks, ScriptedProvider

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


def test_every_recipient_is_recorded_submitted_with_its_provider_id() -> None:
    store, provider = MemoryStore(), ScriptedProvider()
    summary = dispatch_pack(
        pack(),
        provider=provider,
        store=store,
        claims=MemoryClaims(),
        queues=MemoryQueues(),
        receipts=store,
        webhooks=MemoryWebhooks(),
        now=NOW,
        last_attempt=False,
    )
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


def test_per_recipient_errors_are_failed_with_raw_and_normalised_codes() -> None:
    bad = ProviderError(ErrorCategory.RECIPIENT, "MOBILE_NUMBER_ILLEGAL", "bad number", 200)
    provider = ScriptedProvider(answer=lambda m: bad if m.message_id == "B.00001" else None)
    store = MemoryStore()
    summary = dispatch_pack(
        pack(),
        provider=provider,
        store=store,
        claims=MemoryClaims(),
        queues=MemoryQueues(),
        receipts=store,
        webhooks=MemoryWebhooks(),
        now=NOW,
        last_attempt=False,
    )
    assert (summary.submitted, summary.failed) == (2, 1)
    failed = store.messages["B.00001"]
    assert failed.status is Status.FAILED
    assert (failed.error_category, failed.error_code) == ("recipient", "MOBILE_NUMBER_ILLEGAL")


def test_a_call_that_failed_transiently_as_a_whole_is_retried_and_writes_nothing() -> None:
    busy = ProviderError(ErrorCategory.THROTTLED, "Throttling.User", "slow down", 400)
    store = MemoryStore()
    with pytest.raises(RetryPack):
        dispatch_pack(
            pack(),
            provider=ScriptedProvider(answer=lambda m: busy),
            store=store,
            claims=MemoryClaims(),
            queues=MemoryQueues(),
            receipts=store,
            webhooks=MemoryWebhooks(),
            now=NOW,
            last_attempt=False,
        )
    assert not store.messages


def test_on_the_last_attempt_a_transient_failure_is_recorded_before_the_dead_letter_queue() -> None:
    down = ProviderError(ErrorCategory.RETRYABLE, "ServiceUnavailable", "", 503)
    store = MemoryStore()
    with pytest.raises(RetryPack):
        dispatch_pack(
            pack(),
            provider=ScriptedProvider(answer=lambda m: down),
            store=store,
            claims=MemoryClaims(),
            queues=MemoryQueues(),
            receipts=store,
            webhooks=MemoryWebhooks(),
            now=NOW,
            last_attempt=True,
        )
    assert {m.status for m in store.messages.values()} == {Status.FAILED}
    assert {m.error_code for m in store.messages.values()} == {"ServiceUnavailable"}


def test_an_unknown_outcome_is_not_marked_failed() -> None:
    timeout = ProviderError(ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT", "")
    store = MemoryStore()
    summary = dispatch_pack(
        pack(1),
        provider=ScriptedProvider(answer=lambda m: timeout),
        store=store,
        claims=MemoryClaims(),
        queues=MemoryQueues(),
        receipts=store,
        webhooks=MemoryWebhooks(),
        now=NOW,
        last_attempt=False,
    )
    assert summary.unknown == 1
    assert store.messages["B.00000"].status is Status.SENDING


def test_packs_larger_than_a_provider_call_are_sent_in_chunks() -> None:
    provider = ScriptedProvider(max_recipients_per_call=2)
    dispatch_pack(
        pack(5),
        provider=provider,
        store=(m := MemoryStore()),
        claims=MemoryClaims(),
        queues=MemoryQueues(),
        receipts=m,
        webhooks=MemoryWebhooks(),
        now=NOW,
        last_attempt=False,
    )
    assert [len(c) for c in provider.calls] == [2, 2, 1]


class RefusingProvider(ScriptedProvider):
    def send(self, messages):  # type: ignore[no-untyped-def]
        raise InvalidProviderRequest("From", "at most 11 characters when it contains a letter")


def test_a_request_the_client_refuses_fails_with_field_and_rule() -> None:
    store = MemoryStore()
    dispatch_pack(
        pack(2),
        provider=RefusingProvider(),
        store=store,
        claims=MemoryClaims(),
        queues=MemoryQueues(),
        receipts=store,
        webhooks=MemoryWebhooks(),
        now=NOW,
        last_attempt=False,
    )
    record = store.messages["B.00000"]
    assert record.status is Status.FAILED
    assert record.error_category == "request"
    assert record.error_message == "From: at most 11 characters when it contains a letter"


def test_outcomes_keep_provider_segments_when_given() -> None:
    class Billing(ScriptedProvider):
        def send(self, messages):  # type: ignore[no-untyped-def]
            return [SendOutcome(message_id=m.message_id, provider_message_id="x", segments=2) for m in messages]

    store = MemoryStore()
    dispatch_pack(
        pack(1),
        provider=Billing(),
        store=store,
        claims=MemoryClaims(),
        queues=MemoryQueues(),
        receipts=store,
        webhooks=MemoryWebhooks(),
        now=NOW,
        last_attempt=False,
    )
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
    summary = dispatch_pack(
        pack(4),
        provider=provider,
        store=store,
        claims=MemoryClaims(),
        queues=MemoryQueues(),
        receipts=store,
        webhooks=MemoryWebhooks(),
        now=NOW,
        last_attempt=False,
    )
    assert (summary.submitted, summary.failed) == (3, 1)
    assert [[m.message_id for m in call] for call in provider.calls] == [["B.00000", "B.00002", "B.00003"]]
    refused = store.messages["B.00001"]
    assert refused.status is Status.FAILED
    assert (refused.error_category, refused.error_code) == ("request", "INVALID_REQUEST")
    assert refused.error_message == "to: numbers in the Chinese mainland (+86) cannot be sent"
    assert {store.messages[f"B.0000{i}"].status for i in (0, 2, 3)} == {Status.SUBMITTED}


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


def run(pack_: DispatchPack, provider: ScriptedProvider, store: MemoryStore, claims: MemoryClaims, **kw):  # type: ignore[no-untyped-def]
    queues = kw.pop("queues", MemoryQueues())
    return dispatch_pack(
        pack_,
        provider=provider,
        store=store,
        claims=claims,
        queues=queues,
        receipts=store,
        webhooks=MemoryWebhooks(),
        now=kw.pop("now", NOW),
        last_attempt=kw.pop("last_attempt", False),
    )


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
