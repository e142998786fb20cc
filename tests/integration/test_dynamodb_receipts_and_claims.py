"""The receipt store and pack claims against moto, with the table as template.yaml declares it."""

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from globesms.accept.service import accept
from globesms.aws.dynamodb_claims import DynamoDBPackClaims
from globesms.aws.dynamodb_receipts import DynamoDBReceiptStore, hold_mark_key
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.domain.status import Status
from globesms.models.api import MessageSpec
from globesms.models.outbound import ProviderName
from globesms.models.receipts import EchoRange
from globesms.ports import Claim, ClaimNotes, Requeued
from globesms.providers.aliyun.receipts import parse_push
from globesms.receipts.apply import record_push
from tests.fakes import MemoryQueues

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def accepted(stack, numbers: list[str]) -> DynamoDBMessageStore:  # type: ignore[no-untyped-def]
    store = DynamoDBMessageStore(stack.table_name)
    spec = MessageSpec.model_validate({"to": numbers, "text": "hello"})
    accept([spec], batch_id="B", source="api", now=NOW, retention_days=90, store=store, queues=MemoryQueues())
    return store


def test_delivery_writes_are_versioned(stack) -> None:  # type: ignore[no-untyped-def]
    accepted(stack, ["+85251234567"])
    receipts = DynamoDBReceiptStore(stack.table_name)
    record = receipts.reload("B.00000")
    assert record is not None and record.version == 0
    first = record.model_copy(
        update={"status": Status.DELIVERED, "version": 1, "events": [{"id": "r1"}], "receipt_ids": {"r1"}}
    )
    assert receipts.save_delivery(first, expected_version=0) is True
    assert receipts.save_delivery(first, expected_version=0) is False  # somebody else's write got there first
    stored = receipts.reload("B.00000")
    assert stored is not None and (stored.status, stored.version, stored.receipt_ids) == (Status.DELIVERED, 1, {"r1"})


def test_provider_ids_set_by_a_receipt_are_found_through_the_index(stack) -> None:  # type: ignore[no-untyped-def]
    accepted(stack, ["+85251234567"])
    receipts = DynamoDBReceiptStore(stack.table_name)
    record = receipts.reload("B.00000")
    assert record is not None
    receipts.save_delivery(record.model_copy(update={"provider_message_id": "pm-9", "version": 1}), expected_version=0)
    found = receipts.message_for_provider_ref(ProviderName.ALIYUN, "pm-9")
    assert found is not None and found.id == "B.00000"
    assert receipts.message_for_provider_ref(ProviderName.ALIYUN, "pm-unknown") is None
    assert receipts.message_id_for_provider_ref(ProviderName.ALIYUN, "pm-9") == "B.00000"
    assert receipts.message_id_for_provider_ref(ProviderName.TENCENT, "pm-9") is None


def test_a_push_s_messages_are_read_together(stack) -> None:  # type: ignore[no-untyped-def]
    accepted(stack, [f"+852512345{n:02d}" for n in range(30)])
    receipts = DynamoDBReceiptStore(stack.table_name)
    wanted = [f"B.{seq:05d}" for seq in range(0, 30, 2)] + ["B.00099", "not-an-id"]
    found = receipts.read_messages(wanted)
    assert sorted(found) == wanted[:15]
    assert all(found[i] == receipts.reload(i) for i in found)


def ids(records: list[Any]) -> list[str]:
    return [r.id for r in records]


def test_echo_ranges_find_the_recipient_by_number_past_the_first_page(stack) -> None:  # type: ignore[no-untyped-def]
    numbers = [f"+8525123{i:04d}" for i in range(300)]
    accepted(stack, numbers)
    receipts = DynamoDBReceiptStore(stack.table_name)
    assert ids(receipts.find_recipients(EchoRange("B", 10, 509), "+85251230299")) == ["B.00299"]
    assert receipts.find_recipients(EchoRange("B", 10, 509), "+85251230005") == []  # before the call's first id
    assert ids(receipts.find_recipients(EchoRange("B", 7, 7), "+85251230007")) == ["B.00007"]
    # An echo alone is guessable (ids are in every event a customer receives): without the number it names nobody.
    assert receipts.find_recipients(EchoRange("B", 7, 7), None) == []
    assert receipts.find_recipients(EchoRange("B", 7, 7), "+85251230008") == []


def test_an_echo_range_finds_the_number_in_its_own_batch_through_the_recipient_index(stack) -> None:  # type: ignore[no-untyped-def]
    store = accepted(stack, [f"+8525123{i:04d}" for i in range(20)])
    later = MessageSpec.model_validate({"to": ["+85251230001", "+85251230015"], "text": "again"})
    accept([later], batch_id="C", source="api", now=NOW, retention_days=90, store=store, queues=MemoryQueues())
    receipts = DynamoDBReceiptStore(stack.table_name)
    # Not C's, though C's is the number's newest message.
    assert ids(receipts.find_recipients(EchoRange("B", 10, 19), "+85251230015")) == ["B.00015"]
    assert ids(receipts.find_recipients(EchoRange("C", 0, 1), "+85251230015")) == ["C.00001"]
    assert receipts.find_recipients(EchoRange("C", 0, 1), "+85251230002") == []  # the number was not in C


def two_calls_to_one_number(stack) -> DynamoDBReceiptStore:  # type: ignore[no-untyped-def]
    """Specs [A, C] and [A, D] of one request: two calls (by content) that both text A, B.00000 and B.00002."""
    store = DynamoDBMessageStore(stack.table_name)
    first = MessageSpec.model_validate({"to": ["+85251230001", "+85251230002"], "text": "hello"})
    second = MessageSpec.model_validate({"to": ["+85251230001", "+85251230003"], "text": "second text"})
    accept([first, second], batch_id="B", source="api", now=NOW, retention_days=90, store=store, queues=MemoryQueues())
    return DynamoDBReceiptStore(stack.table_name)


def test_an_echo_range_lists_a_numbers_messages_of_the_batch_by_id(stack) -> None:  # type: ignore[no-untyped-def]
    receipts = two_calls_to_one_number(stack)
    # Every message of the batch has the same created_at, the Recipient index's order: its order among them is
    # arbitrary. By id, the first call's message (TaskId "B.00000+2") comes first.
    assert ids(receipts.find_recipients(EchoRange("B", 0, 1), "+85251230001")) == ["B.00000", "B.00002"]
    assert ids(receipts.find_recipients(EchoRange("B", 2, 3), "+85251230001")) == ["B.00002"]


def test_a_receipt_after_unknown_outcomes_settles_the_message_of_its_own_call(stack) -> None:  # type: ignore[no-untyped-def]
    """A call's echo names its first id, which is the call's own message: to the report's number, it is this
    report's (a call never repeats a number), whatever other call's message to the number the range reaches."""
    receipts = two_calls_to_one_number(stack)
    for message in ("B.00000", "B.00002"):  # both calls ended with an unknown outcome: SENDING, no provider id
        record = receipts.reload(message)
        assert record is not None
        assert receipts.save_delivery(
            record.model_copy(update={"status": Status.SENDING, "version": 1}), expected_version=0
        )
    body = json.dumps(
        [
            {
                "MessageId": "pm-call1-a",
                "Status": "2",
                "ErrorCode": "DELIVRD?",
                "TaskId": "B.00000+2",
                "To": "85251230001",
            }
        ]
    ).encode()
    record_push(parse_push(body).reports, store=receipts, now=NOW)
    one, two = receipts.reload("B.00000"), receipts.reload("B.00002")
    assert one is not None and two is not None
    assert (one.status, one.provider_message_id) == (Status.UNDELIVERED, "pm-call1-a")
    assert (two.status, two.provider_message_id) == (Status.SENDING, None)  # the second call's is untouched


def test_held_receipts_are_deduplicated_and_read_back_by_provider_id(stack) -> None:  # type: ignore[no-untyped-def]
    receipts = DynamoDBReceiptStore(stack.table_name)
    event = {"id": "r1", "status": "DELIVERED", "raw_status": "1", "received_at": "2026-11-26T10:00:00Z"}
    assert receipts.hold_receipt(ProviderName.ALIYUN, "pm-1", event, None) is True
    assert receipts.hold_receipt(ProviderName.ALIYUN, "pm-1", event, None) is False
    assert receipts.hold_receipt(ProviderName.ALIYUN, "pm-1", {**event, "id": "r2"}, None) is True
    # A receipt whose message is known is held for the message (an unknown outcome has no provider id).
    assert receipts.hold_receipt(ProviderName.ALIYUN, "pm-3", {**event, "id": "r3"}, "B.00000") is True
    held = receipts.held_receipts(
        ProviderName.ALIYUN, ["B.00000", "B.00001"], ["pm-1", "pm-2"] + [f"pm-x{i}" for i in range(150)]
    )
    assert sorted(held.by_provider_id) == ["pm-1"] and sorted(held.for_messages) == ["B.00000"]
    assert [e["id"] for e in held.by_provider_id["pm-1"]] == ["r1", "r2"]
    assert [e["id"] for e in held.for_messages["B.00000"]] == ["r3"]


def test_no_provider_id_names_the_receipts_held_for_a_message(stack) -> None:  # type: ignore[no-untyped-def]
    receipts = DynamoDBReceiptStore(stack.table_name)
    event = {"id": "r1", "status": "DELIVERED", "raw_status": "1", "received_at": "2026-11-26T10:00:00Z"}
    for spelled in ("B.00000", "msg:B.00000"):  # our id, and the key held receipts had before
        assert receipts.hold_receipt(ProviderName.ALIYUN, spelled, {**event, "id": spelled}, None) is True
    held = receipts.held_receipts(ProviderName.ALIYUN, ["B.00000"], [])
    assert held.for_messages == {} and held.by_provider_id == {}


def test_a_receipt_held_for_a_message_under_the_old_key_is_still_found(stack) -> None:  # type: ignore[no-untyped-def]
    """Before December 2026 receipts held for a message were kept under the provider id `msg:<message id>`: those
    (which carry the message's id) are read until they expire; a provider id spelled so never joins them."""
    old = {"id": "r-old", "provider_message_id": "pm-1", "status": "DELIVERED", "raw_status": "1"}
    stack.dynamodb.put_item(
        TableName=stack.table_name,
        Item={
            "pk": {"S": "R#aliyun#msg:B.00000"},
            "sk": {"S": "#"},
            "events": {"L": [{"M": {k: {"S": v} for k, v in old.items()}}]},
            "receipt_ids": {"SS": ["r-old"]},
            "message_id": {"S": "B.00000"},
            "provider": {"S": "aliyun"},
        },
    )
    receipts = DynamoDBReceiptStore(stack.table_name)
    forged = {**old, "id": "r-forged", "provider_message_id": "msg:B.00000"}
    assert receipts.hold_receipt(ProviderName.ALIYUN, "msg:B.00000", forged, None) is False  # not kept
    held = receipts.held_receipts(ProviderName.ALIYUN, ["B.00000"], [])
    assert held.for_messages == {"B.00000": [old]} and held.by_provider_id == {}


def test_holding_a_receipt_raises_its_batch_s_or_its_provider_s_hold_mark(stack) -> None:  # type: ignore[no-untyped-def]
    receipts = DynamoDBReceiptStore(stack.table_name)
    event = {"id": "r1", "status": "DELIVERED", "raw_status": "1", "received_at": "2026-11-26T10:00:00Z"}
    before = int(time.time())
    assert not receipts.holds_since(ProviderName.ALIYUN, {"B"}, 0)  # nothing held yet: no mark at all

    receipts.hold_receipt(ProviderName.ALIYUN, "pm-3", event, "B.00000")  # the echo named the message: B's mark
    assert receipts.holds_since(ProviderName.ALIYUN, {"B"}, before)
    assert receipts.holds_since(ProviderName.ALIYUN, {"C", "B"}, before)
    assert not receipts.holds_since(ProviderName.ALIYUN, {"C"}, before)
    assert not receipts.holds_since(ProviderName.ALIYUN, {"B"}, int(time.time()) + 60)  # none that recent

    receipts.hold_receipt(ProviderName.TENCENT, "pm-4", {**event, "id": "r2"}, None)  # unknown message: Tencent's
    assert receipts.holds_since(ProviderName.TENCENT, {"C"}, before)  # any batch's message may be it
    assert not receipts.holds_since(ProviderName.ALIYUN, {"C"}, before)

    # A mark is never lowered: a hold noted with an earlier clock leaves a later mark as it is.
    later = int(time.time()) + 3600
    stack.dynamodb.update_item(
        TableName=stack.table_name,
        Key=hold_mark_key(ProviderName.ALIYUN, "B"),
        UpdateExpression="SET held_at = :later",
        ExpressionAttributeValues={":later": {"N": str(later)}},
    )
    assert receipts.hold_receipt(ProviderName.ALIYUN, "pm-5", {**event, "id": "r3"}, "B.00001") is True
    assert receipts.holds_since(ProviderName.ALIYUN, {"B"}, later)


def test_a_mark_is_written_once_a_second_per_process_however_many_receipts_it_holds(stack) -> None:  # type: ignore[no-untyped-def]
    marks: list[str] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(stack.dynamodb, name)

        def update_item(self, **kwargs: Any) -> Any:
            if kwargs["Key"]["pk"]["S"].startswith("H#"):
                marks.append(kwargs["Key"]["pk"]["S"])
            return stack.dynamodb.update_item(**kwargs)

    second = 2_000_000_000.0
    receipts = DynamoDBReceiptStore(stack.table_name, client_factory=Counting, clock=lambda: second)
    event = {"id": "r", "status": "DELIVERED", "raw_status": "1", "received_at": "2026-11-26T10:00:00Z"}
    for n in range(5):  # five unmatched receipts in one second: the provider's mark once
        receipts.hold_receipt(ProviderName.ALIYUN, f"pm-{n}", {**event, "id": f"r{n}"}, None)
    receipts.hold_receipt(ProviderName.ALIYUN, "pm-9", {**event, "id": "r9"}, "B.00000")
    assert marks == ["H#provider#aliyun", "H#batch#B"]

    second += 1
    receipts.hold_receipt(ProviderName.ALIYUN, "pm-10", {**event, "id": "r10"}, None)
    assert marks[-1] == "H#provider#aliyun" and len(marks) == 3
    assert receipts.holds_since(ProviderName.ALIYUN, {"C"}, int(second))


def test_pack_claims_move_through_their_states(stack) -> None:  # type: ignore[no-untyped-def]
    claims = DynamoDBPackClaims(stack.table_name)
    assert claims.claim("P1", now=NOW, lease_seconds=120) is Claim.CLAIMED
    assert claims.claim("P1", now=NOW, lease_seconds=120) is Claim.BUSY
    claims.release("P1")
    assert claims.claim("P1", now=NOW, lease_seconds=120) is Claim.CLAIMED
    later = NOW + timedelta(minutes=5)
    assert claims.claim("P1", now=later, lease_seconds=120) is Claim.STALE
    assert claims.claim("P1", now=later, lease_seconds=120) is Claim.BUSY  # the taker holds a fresh lease
    claims.finish("P1")
    assert claims.claim("P1", now=later, lease_seconds=120) is Claim.DONE


class RetriedAfterLanding:
    """A DynamoDB client whose every UpdateItem lands and is then sent again, as botocore retries a write whose
    answer was lost (a timeout, a 500 after the write): the caller sees the second answer."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def update_item(self, **params: Any) -> Any:
        self._client.update_item(**params)
        return self._client.update_item(**params)


def test_a_claim_retried_after_it_landed_is_still_ours(stack) -> None:  # type: ignore[no-untyped-def]
    """Not another dispatcher's (BUSY), which left the pack to be settled later as possibly sent."""
    retried = DynamoDBPackClaims(stack.table_name, lambda: RetriedAfterLanding(stack.dynamodb))
    claims = DynamoDBPackClaims(stack.table_name)
    assert retried.claim("P1", now=NOW, lease_seconds=120) is Claim.CLAIMED
    assert claims.claim("P1", now=NOW, lease_seconds=120) is Claim.BUSY  # another dispatcher's claim still is
    later = NOW + timedelta(minutes=5)
    assert retried.claim("P1", now=later, lease_seconds=120) is Claim.STALE  # a takeover retried after it landed
    claims.release("P1", dead_lettered_at=later)
    assert retried.claim("P1", now=later, lease_seconds=120) is Claim.REDRIVEN  # as the landed write answered
    claims.release("P1")
    assert retried.claim("P1", now=later, lease_seconds=120) is Claim.CLAIMED  # no dead-lettering being redriven
    claims.finish("P1")
    assert retried.claim("P1", now=later, lease_seconds=120) is Claim.DONE


def test_a_pack_released_on_its_way_to_the_dead_letter_queue_is_claimed_back_as_a_redrive(stack) -> None:  # type: ignore[no-untyped-def]
    claims = DynamoDBPackClaims(stack.table_name)
    assert claims.claim("P1", now=NOW, lease_seconds=120) is Claim.CLAIMED
    claims.release("P1", dead_lettered_at=NOW)
    assert claims.claim("P1", now=NOW, lease_seconds=120) is Claim.REDRIVEN  # its spend is charged again first
    assert claims.claim("P1", now=NOW, lease_seconds=120) is Claim.BUSY
    claims.release("P1")  # the redrive failed before any call, with receives left: an ordinary retry next
    assert claims.claim("P1", now=NOW, lease_seconds=120) is Claim.CLAIMED
    claims.release("P1", dead_lettered_at=NOW)
    assert claims.cancel("P1", now=NOW) is True  # a dead-lettered pack is nobody's: a cancel may take it
    assert claims.claim("P1", now=NOW, lease_seconds=120) is Claim.CANCELED


def test_a_cancel_takes_a_pack_only_where_no_dispatcher_holds_or_finished_it(stack) -> None:  # type: ignore[no-untyped-def]
    claims = DynamoDBPackClaims(stack.table_name)
    assert claims.cancel("P1", now=NOW) is True  # nobody had it
    assert claims.cancel("P1", now=NOW) is True  # a repeated cancel: still canceled
    assert claims.claim("P1", now=NOW, lease_seconds=120) is Claim.CANCELED  # the dispatcher sends nothing
    assert claims.claim("P2", now=NOW, lease_seconds=120) is Claim.CLAIMED
    assert claims.cancel("P2", now=NOW) is False  # being sent
    claims.release("P2")  # nothing was sent: it may be taken again, by either
    assert claims.cancel("P2", now=NOW) is True
    assert claims.claim("P3", now=NOW, lease_seconds=120) is Claim.CLAIMED
    claims.finish("P3")
    assert claims.cancel("P3", now=NOW) is False
    assert claims.claim("P3", now=NOW, lease_seconds=120) is Claim.DONE


def test_cancel_unsent_moves_only_accepted_or_queued_records(stack) -> None:  # type: ignore[no-untyped-def]
    store = accepted(stack, ["+85251234567", "+85251234568"])
    assert {r.accept_pack_id() for r in store.get_messages(["B.00000", "B.00001"]).values()} == {"B:aliyun:0"}
    receipts = DynamoDBReceiptStore(stack.table_name)
    sent = receipts.reload("B.00001")
    assert sent is not None
    assert receipts.save_delivery(
        sent.model_copy(update={"status": Status.SUBMITTED, "version": 1}), expected_version=0
    )
    moved, others = store.cancel_unsent(["B.00000", "B.00001", "B.00009"], now=NOW)
    assert [(r.id, r.status, r.events[-1]["status"]) for r in moved] == [("B.00000", Status.CANCELED, "CANCELED")]  # type: ignore[index]
    assert others == {"B.00001": "SUBMITTED"}  # B.00009: no such record, left out
    assert store.cancel_unsent(["B.00000"], now=NOW) == ([], {"B.00000": "CANCELED"})


def test_a_quiet_hours_hold_is_taken_by_a_cancel_or_by_its_dispatcher_never_both(stack) -> None:  # type: ignore[no-untyped-def]
    claims = DynamoDBPackClaims(stack.table_name)
    assert claims.hold_state("B:aliyun:0.q") is None  # neither ended nor canceled yet
    assert claims.take_hold("B:aliyun:0.q", now=NOW) is True  # its dispatcher ends it: the recipients go
    assert claims.hold_state("B:aliyun:0.q") == "RELEASED"
    assert claims.take_hold("B:aliyun:0.q", now=NOW) is True  # a retry of that write (or a later wait) finds it so
    assert claims.cancel("B:aliyun:0.q", now=NOW) is False  # too late for a cancel
    assert claims.cancel("B:aliyun:1.q", now=NOW) is True  # a cancel came first
    assert claims.take_hold("B:aliyun:1.q", now=NOW) is False  # its dispatcher sends nothing
    assert claims.hold_state("B:aliyun:1.q") == "CANCELED"
    assert claims.cancel("B:aliyun:1.q", now=NOW) is True


def test_a_hold_is_noted_only_on_records_not_yet_sent(stack) -> None:  # type: ignore[no-untyped-def]
    store = accepted(stack, ["+85251234567", "+85251234568"])
    receipts = DynamoDBReceiptStore(stack.table_name)
    sent = receipts.reload("B.00001")
    assert sent is not None
    assert receipts.save_delivery(
        sent.model_copy(update={"status": Status.SUBMITTED, "version": 1}), expected_version=0
    )
    store.mark_held(["B.00000", "B.00001", "B.00009"], held_key=":aliyun:0.q")
    found = store.get_messages(["B.00000", "B.00001"])
    assert (found["B.00000"].held_key, found["B.00000"].cancel_pack_id()) == (":aliyun:0.q", "B:aliyun:0.q")
    assert (found["B.00001"].held_key, found["B.00001"].cancel_pack_id()) == (None, "B:aliyun:0")
    assert "B.00009" not in store.get_messages(["B.00009"])  # no record written for an id that has none
    store.mark_held(["B.00000"], held_key=":aliyun:0.q1.q")  # a wait of that hold ended it for others: a new one
    store.mark_held(["B.00000"], held_key=":aliyun:0.q")  # the first pack's takeover, queueing its wait again
    assert store.get_messages(["B.00000"])["B.00000"].held_key == ":aliyun:0.q1.q"


def test_a_claim_keeps_which_recipients_were_put_back_unsent(stack) -> None:  # type: ignore[no-untyped-def]
    claims = DynamoDBPackClaims(stack.table_name)
    assert claims.claim("P2", now=NOW, lease_seconds=120) is Claim.CLAIMED
    assert claims.notes("P2") == ClaimNotes(Requeued())
    claims.record_requeued("P2", Requeued(retried=(1, 4), failed_over=(2,)))
    assert claims.notes("P2").requeued == Requeued(retried=(1, 4), failed_over=(2,))
    later = NOW + timedelta(minutes=5)
    assert claims.claim("P2", now=later, lease_seconds=120) is Claim.STALE
    assert claims.notes("P2").requeued == Requeued(
        retried=(1, 4), failed_over=(2,)
    )  # still there for the dispatcher settling the pack
    by_seq = Requeued(retried=(17,), quiet=(3, 40), by_position=False)  # as dispatch notes them
    claims.record_requeued("P2", by_seq)
    assert claims.notes("P2").requeued == by_seq
    claims.release("P2")
    assert claims.claim("P2", now=later, lease_seconds=120) is Claim.CLAIMED
    assert claims.notes("P2") == ClaimNotes(Requeued())  # a new claim: its holder has put nobody back yet
    claims.record_requeued("P2", Requeued(deferred=(5,)))  # a note of positions (as before seqs were kept)
    assert claims.notes("P2").requeued == Requeued(deferred=(5,))


def test_a_claim_keeps_a_redrive_of_its_last_dead_lettering_once_it_goes_on_to_its_call(stack) -> None:  # type: ignore[no-untyped-def]
    """Across a release for a retry and the next claim (a redrive again: it knows it sends a redrive), and a
    takeover; a mark left from an earlier dead-lettering does not count (dispatch/recovery.py)."""
    claims = DynamoDBPackClaims(stack.table_name)
    assert claims.notes("P3") == ClaimNotes(Requeued(), redriving=None)  # no claim item yet
    assert claims.claim("P3", now=NOW, lease_seconds=120) is Claim.CLAIMED
    assert claims.mark_redriving("P3") is None  # never dead-lettered
    dead = NOW + timedelta(seconds=1.5)
    claims.release("P3", dead_lettered_at=dead)
    redrive = NOW + timedelta(hours=1)
    assert claims.claim("P3", now=redrive, lease_seconds=120) is Claim.REDRIVEN
    assert claims.notes("P3").redriving is None  # not yet past its charge: a death now sent nothing
    assert claims.mark_redriving("P3") == dead
    claims.release("P3")  # a whole-pack retry
    assert claims.claim("P3", now=redrive, lease_seconds=120) is Claim.REDRIVEN
    assert claims.claim("P3", now=redrive + timedelta(minutes=5), lease_seconds=120) is Claim.STALE
    assert claims.notes("P3").redriving == dead
    claims.release("P3", dead_lettered_at=redrive)  # dead-lettered again: the mark is an earlier redrive's
    assert claims.notes("P3").redriving is None
    assert claims.claim("P3", now=redrive, lease_seconds=120) is Claim.REDRIVEN  # from DEAD
    claims.release("P3")
    assert claims.claim("P3", now=redrive, lease_seconds=120) is Claim.CLAIMED  # never got past its charge


def test_an_echo_numbered_past_our_last_message_finds_nothing_and_sends_dynamodb_no_inverted_range(stack) -> None:  # type: ignore[no-untyped-def]
    """Our message ids have five digits; an echo's may have up to nine (another system's, or a forged one). Its
    range query `BETWEEN M#999999 AND M#99999` has its bounds the wrong way round as strings, which DynamoDB (not
    moto) refuses: the push was answered 5xx every time it came, its other receipts never applied (a review)."""
    import boto3

    real = boto3.client("dynamodb")

    class RefusingInvertedRanges:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def query(self, **request: Any) -> Any:
            values = request.get("ExpressionAttributeValues", {})
            if "BETWEEN :first AND :last" in request.get("FilterExpression", ""):
                assert values[":first"]["S"] <= values[":last"]["S"], "ValidationException: BETWEEN bounds inverted"
            return real.query(**request)

    receipts = DynamoDBReceiptStore(stack.table_name, RefusingInvertedRanges)
    assert receipts.find_recipients(EchoRange("B", 999_999, 1_000_498), "+6591230000") == []
    assert receipts.find_recipients(EchoRange("B", 99_999_123, 99_999_124), "+6591230000") == []
