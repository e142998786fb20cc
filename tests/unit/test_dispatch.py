from datetime import UTC, datetime

import pytest

from globesms.dispatch import RetryPack, dispatch_pack
from globesms.errors import ErrorCategory, InvalidProviderRequest, ProviderError
from globesms.models.outbound import OutboundSms, ProviderName, SendOutcome
from globesms.models.packs import DispatchPack
from globesms.status import Status
from tests.fakes import MemoryStore, ScriptedProvider

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
    summary = dispatch_pack(pack(), provider=provider, store=store, now=NOW, last_attempt=False)
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
    summary = dispatch_pack(pack(), provider=provider, store=store, now=NOW, last_attempt=False)
    assert (summary.submitted, summary.failed) == (2, 1)
    failed = store.messages["B.00001"]
    assert failed.status is Status.FAILED
    assert (failed.error_category, failed.error_code) == ("recipient", "MOBILE_NUMBER_ILLEGAL")


def test_a_call_that_failed_transiently_as_a_whole_is_retried_and_writes_nothing() -> None:
    busy = ProviderError(ErrorCategory.THROTTLED, "Throttling.User", "slow down", 400)
    store = MemoryStore()
    with pytest.raises(RetryPack):
        dispatch_pack(
            pack(), provider=ScriptedProvider(answer=lambda m: busy), store=store, now=NOW, last_attempt=False
        )
    assert not store.messages


def test_on_the_last_attempt_a_transient_failure_is_recorded_before_the_dead_letter_queue() -> None:
    down = ProviderError(ErrorCategory.RETRYABLE, "ServiceUnavailable", "", 503)
    store = MemoryStore()
    with pytest.raises(RetryPack):
        dispatch_pack(pack(), provider=ScriptedProvider(answer=lambda m: down), store=store, now=NOW, last_attempt=True)
    assert {m.status for m in store.messages.values()} == {Status.FAILED}
    assert {m.error_code for m in store.messages.values()} == {"ServiceUnavailable"}


def test_an_unknown_outcome_is_not_marked_failed() -> None:
    timeout = ProviderError(ErrorCategory.UNKNOWN_OUTCOME, "READ_TIMEOUT", "")
    store = MemoryStore()
    summary = dispatch_pack(
        pack(1), provider=ScriptedProvider(answer=lambda m: timeout), store=store, now=NOW, last_attempt=False
    )
    assert summary.unknown == 1
    assert store.messages["B.00000"].status is Status.SENDING


def test_packs_larger_than_a_provider_call_are_sent_in_chunks() -> None:
    provider = ScriptedProvider(max_recipients_per_call=2)
    dispatch_pack(pack(5), provider=provider, store=MemoryStore(), now=NOW, last_attempt=False)
    assert [len(c) for c in provider.calls] == [2, 2, 1]


class RefusingProvider(ScriptedProvider):
    def send(self, messages):  # type: ignore[no-untyped-def]
        raise InvalidProviderRequest("From", "at most 11 characters when it contains a letter")


def test_a_request_the_client_refuses_fails_with_field_and_rule() -> None:
    store = MemoryStore()
    dispatch_pack(pack(2), provider=RefusingProvider(), store=store, now=NOW, last_attempt=False)
    record = store.messages["B.00000"]
    assert record.status is Status.FAILED
    assert record.error_category == "request"
    assert record.error_message == "From: at most 11 characters when it contains a letter"


def test_outcomes_keep_provider_segments_when_given() -> None:
    class Billing(ScriptedProvider):
        def send(self, messages):  # type: ignore[no-untyped-def]
            return [SendOutcome(message_id=m.message_id, provider_message_id="x", segments=2) for m in messages]

    store = MemoryStore()
    dispatch_pack(pack(1), provider=Billing(), store=store, now=NOW, last_attempt=False)
    assert store.messages["B.00000"].segments == 2
