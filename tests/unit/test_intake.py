import json
from datetime import UTC, datetime

import pytest

from globesms.accept.intake import IntakeRefused, accept_intake
from tests.fakes import MemoryQueues, MemoryStore

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def intake(body: str, store: MemoryStore, queues: MemoryQueues | None = None):  # type: ignore[no-untyped-def]
    return accept_intake(
        body, sqs_message_id="m-1", now=NOW, retention_days=90, store=store, queues=queues or MemoryQueues()
    ).answer


def test_a_good_body_is_accepted_under_the_batch_id_it_names() -> None:
    store = MemoryStore()
    result = intake(json.dumps({"batch_id": "order-42", "to": "+85251234567", "text": "hi"}), store)
    assert result.batch_id == "order-42"
    assert store.batches["order-42"].source == "sqs"


def test_without_a_batch_id_the_sqs_message_id_names_the_batch() -> None:
    store = MemoryStore()
    assert intake(json.dumps({"to": "+85251234567", "text": "hi"}), store).batch_id == "sqs-m-1"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"to": ', "MALFORMED_JSON"),
        ("[1, 2]", "VALIDATION_ERROR"),
        ('{"to": "+85251234567"}', "VALIDATION_ERROR"),
        ('{"batch_id": "has space", "to": "+85251234567", "text": "x"}', "VALIDATION_ERROR"),
    ],
)
def test_a_bad_body_is_recorded_as_a_rejected_batch_and_raises(body: str, code: str) -> None:
    store = MemoryStore()
    with pytest.raises(IntakeRefused) as info:
        intake(body, store)
    assert info.value.refusal.code == code
    batch = store.batches[info.value.batch_id]
    assert batch.state == "REJECTED"
    assert batch.refusal is not None and batch.refusal.code == code
    assert not store.messages


def test_a_body_delivered_again_is_a_replay_of_its_batch_and_sends_nothing() -> None:
    store, queues = MemoryStore(), MemoryQueues()
    body = json.dumps({"batch_id": "order-42", "to": "+85251234567", "text": "hi"})
    first = accept_intake(body, sqs_message_id="m-1", now=NOW, retention_days=90, store=store, queues=queues)
    again = accept_intake(body, sqs_message_id="m-2", now=NOW, retention_days=90, store=store, queues=queues)
    assert (first.replayed, again.replayed) == (False, True)  # counted as a replay, not accepted twice
    assert again.answer == first.answer and sum(len(p) for p in queues.sent.values()) == 1


def test_a_bad_body_never_overwrites_a_good_batch_with_the_same_id() -> None:
    store = MemoryStore()
    intake(json.dumps({"batch_id": "b-1", "to": "+85251234567", "text": "hi"}), store)
    with pytest.raises(IntakeRefused):
        intake(json.dumps({"batch_id": "b-1", "to": "+85251234567"}), store)
    assert store.batches["b-1"].state == "QUEUED"


def test_a_corrected_body_takes_the_batch_id_of_a_body_refused_as_a_whole() -> None:
    # Nothing was written, reserved or sent under the refused body's id: it does not hold the id.
    store = MemoryStore()
    with pytest.raises(IntakeRefused):
        intake(json.dumps({"batch_id": "order-7", "to": "+85251234567", "text": "hi", "x": 1}), store)
    result = intake(json.dumps({"batch_id": "order-7", "to": "+85251234567", "text": "hi"}), store)
    assert result.accepted == 1 and store.batches["order-7"].state == "QUEUED"
    assert store.batches["order-7"].refusal is None


def test_a_batch_id_conflict_counts_no_otp_and_reserves_no_spend() -> None:
    from datetime import timedelta

    from globesms.guardrails import otp_guard
    from tests.unit.test_guardrails import MemoryLedger
    from tests.unit.test_otp_guard import MemoryOtpCounters

    store, ledger, counters = MemoryStore(), MemoryLedger(), MemoryOtpCounters()

    def send(message: str, kind: str, now: datetime):  # type: ignore[no-untyped-def]
        body = json.dumps({"batch_id": "order-7", "to": "+85251234567", "text": "Your code is 1", "type": kind})
        return accept_intake(
            body, sqs_message_id=message, now=now, retention_days=90, store=store, queues=MemoryQueues(),
            ledger=ledger, otp=otp_guard.OtpGuard(counters), owner="intake",
        )  # fmt: skip

    send("m-1", "NOTIFY", NOW - timedelta(days=31))  # last month: its header is kept 90 days
    reserved = dict(ledger.counters)
    with pytest.raises(IntakeRefused) as info:
        send("m-2", "OTP", NOW)  # another body under the same batch id
    assert info.value.refusal.code == "BATCH_ID_CONFLICT"
    assert (counters.numbers, ledger.counters) == ({}, reserved)  # nothing counted, nothing reserved this month


@pytest.mark.parametrize("named", ["order-1 ", " order-1", "order-1\n"])
def test_a_batch_id_with_anything_around_it_is_refused_not_accepted_under_another_id(named: str) -> None:
    # It was validated stripped but used as written: "order-1 " became sqs-<MessageId> (a resend: a second batch,
    # sent twice), "order-1\n" a batch id with a newline in it.
    store = MemoryStore()
    with pytest.raises(IntakeRefused) as info:
        intake(json.dumps({"batch_id": named, "to": "+85251234567", "text": "hi"}), store)
    assert info.value.batch_id == "sqs-m-1" and not store.messages
    assert [f.field for f in info.value.refusal.fields] == ["batch_id"]


def test_schema_errors_name_the_field_and_rule() -> None:
    with pytest.raises(IntakeRefused) as info:
        intake(json.dumps({"to": "+85251234567", "text": "x", "sender_id": "Has Space"}), MemoryStore())
    fields = {d.field: d.rule for d in info.value.refusal.fields}
    assert "sender_id" in fields
    assert "letters and digits" in fields["sender_id"]


@pytest.mark.parametrize(
    "body",
    ["{", '{"to": 1}', '{"to": "+85251234567", "text": "x", "dry_run": true}'],
    ids=["json", "schema", "dry-run"],
)
def test_a_refused_body_is_recorded_as_the_intake_owners(body: str) -> None:
    # Its REJECTED header had no owner, and a record without one is every API key's to read, refusal included.
    store = MemoryStore()
    with pytest.raises(IntakeRefused) as info:
        accept_intake(
            body, sqs_message_id="m-1", now=NOW, retention_days=90, store=store, queues=MemoryQueues(), owner="intake"
        )
    assert store.batches[info.value.batch_id].owner == "intake"


def test_a_refusal_keeps_the_first_hundred_fields_and_how_many_there_were() -> None:
    # Every pair was kept: a body of 10,000 bad numbers made a REJECTED header past DynamoDB's 400 KB item limit.
    store = MemoryStore()
    with pytest.raises(IntakeRefused) as info:
        intake(json.dumps({"batch_id": "order-9", "to": [1] * 300, "text": "x"}), store)
    refusal = info.value.refusal
    assert (len(refusal.fields), refusal.fields_total) == (100, 301)
    assert store.batches["order-9"].refusal == refusal


@pytest.mark.parametrize("body", ["[1, 2]", "null", '"text"', "42"])
def test_a_body_that_is_not_an_object_is_refused_naming_the_body_and_the_rule(body: str) -> None:
    # Found by tests/fuzz: this refusal was the one VALIDATION_ERROR that named no field.
    with pytest.raises(IntakeRefused) as info:
        intake(body, MemoryStore())
    assert [(d.field, d.rule) for d in info.value.refusal.fields] == [("body", "must be a JSON object")]


@pytest.mark.parametrize(
    "body",
    [
        "[" * 50_000 + "]" * 50_000,
        '{"to": "+85251234567", "text": "x", "validity_seconds": ' + "9" * 5_000 + "}",
        "9" * 5_000,
    ],
    ids=["deep-array", "huge-integer-field", "huge-integer"],
)
def test_bodies_json_cannot_hold_are_refused_as_malformed_json_not_a_crash(body: str) -> None:
    # RecursionError and ValueError escaped: the record failed as a crash, retried, with no REJECTED batch.
    store = MemoryStore()
    with pytest.raises(IntakeRefused) as info:
        intake(body, store)
    assert info.value.refusal.code == "MALFORMED_JSON"
    assert store.batches[info.value.batch_id].state == "REJECTED"


def test_a_key_given_twice_is_refused_naming_it_under_the_messages_own_id() -> None:
    # The last value won. The body is not read, so the batch_id it names (twice, or once) is not taken either.
    store = MemoryStore()
    with pytest.raises(IntakeRefused) as info:
        intake('{"batch_id": "b-1", "to": "+85251234567", "text": "x", "to": "+6591234567"}', store)
    assert (info.value.batch_id, info.value.refusal.code) == ("sqs-m-1", "MALFORMED_JSON")
    assert info.value.refusal.message == 'the body is not JSON globesms reads: the key "to" is given twice'
    assert not store.messages


def test_an_intake_body_above_the_cap_is_refused_as_too_large() -> None:
    from globesms.models.limits import MAX_BODY_BYTES

    store = MemoryStore()
    with pytest.raises(IntakeRefused) as info:
        intake('{"to": "+85251234567", "text": "x"' + " " * MAX_BODY_BYTES + "}", store)
    assert info.value.refusal.code == "BODY_TOO_LARGE"
    assert store.batches[info.value.batch_id].state == "REJECTED"


@pytest.mark.parametrize(
    ("body", "counted"),
    [
        ({"to": [f"+8525{i:07d}" for i in range(10_001)], "text": "x"}, "10001 recipients"),
        ({"messages": [{"to": [f"+8525{i:07d}" for i in range(10_001)], "text": "x"}]}, "at least 10001 recipients"),
        ({"messages": [{"to": f"+8525{i:07d}", "text": "x"} for i in range(10_001)]}, "at least 10001 recipients"),
    ],
    ids=["one-spec", "one-spec-of-a-batch", "messages"],
)
def test_a_list_over_the_recipient_limit_is_refused_as_too_many_recipients(body: dict, counted: str) -> None:  # type: ignore[type-arg]
    """The schema's cap on one list, as the cap on the whole request's count is (it was a 422 field error)."""
    store = MemoryStore()
    with pytest.raises(IntakeRefused) as info:
        intake(json.dumps(body), store)
    assert info.value.refusal.code == "TOO_MANY_RECIPIENTS"
    assert info.value.refusal.message == f"{counted}; at most 10000 per request"
    assert store.batches[info.value.batch_id].state == "REJECTED" and not store.messages


def test_a_bad_envelope_field_and_a_bad_body_are_refused_together_as_the_api_does() -> None:
    store = MemoryStore()
    with pytest.raises(IntakeRefused) as info:
        intake(json.dumps({"idempotency_key": " bad", "to": "+85251234567"}), store)
    assert [d.field for d in info.value.refusal.fields] == ["idempotency_key", "body"]  # text or template
    over = {"idempotency_key": " bad", "to": [f"+8525{i:07d}" for i in range(10_001)], "text": "x"}
    with pytest.raises(IntakeRefused) as info:
        intake(json.dumps(over), store)
    assert info.value.refusal.code == "TOO_MANY_RECIPIENTS"


def test_a_body_arriving_while_the_guardrail_settings_are_unreadable_is_left_for_a_later_receive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not refused (a REJECTED batch for good), nor sent under the shipped documents: deferred, nothing written."""
    from globesms.accept.intake import IntakeDeferred
    from globesms.guardrails import gate
    from globesms.guardrails.documents import DocumentUnavailable

    def unreadable() -> gate.Rules:
        raise DocumentUnavailable("limits.json")

    monkeypatch.setattr(gate, "current_rules", unreadable)
    store = MemoryStore()
    with pytest.raises(IntakeDeferred) as deferred:
        intake(json.dumps({"batch_id": "order-42", "to": "+85251234567", "text": "hi"}), store)
    assert deferred.value.metric == "GuardrailsUnavailable"
    assert not store.batches and not store.messages
