"""Giving a reservation back on the messages table (moto): a recipient dispatch records FAILED before reaching a
provider gives its cost back to the counters once, however often the release is repeated (a redelivered pack) and
however many dispatchers repeat it at the same time."""

import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from globesms.aws.dynamodb_receipts import DynamoDBReceiptStore
from globesms.aws.dynamodb_spend import RELEASE_CHUNK, DynamoDBSpendLedger, charge_key, release_key
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.dispatch.service import DispatchDeps, dispatch_pack
from globesms.errors import ErrorCategory, ProviderError
from globesms.guardrails import spend
from globesms.guardrails.limits import LimitsDoc
from globesms.guardrails.ports import Charge, ChargeMade, Reservation
from globesms.guardrails.prices import PriceTableDoc
from globesms.guardrails.release import release_unsent, release_unwritten
from globesms.models.outbound import ProviderName
from globesms.models.packs import DispatchPack
from tests.fakes import MemoryClaims, MemoryQueues, MemoryWebhooks, ScriptedProvider
from tests.integration.racing import child_main, moto_messages_table, race_in_child

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
CENT4 = Decimal("0.04")
MONTH = "2026-12"
LIMITS = LimitsDoc.model_validate({"version": 1, "monthly_spend": "100", "keys": {"billing": {"monthly_spend": "50"}}})
SCOPES = [spend.DEPLOYMENT, spend.key_scope("billing")]


def reserve(ledger: DynamoDBSpendLedger, batch_id: str, count: int) -> None:
    costs = [CENT4] * count
    request = spend.Request(batch_id=batch_id, owner="billing", costs=costs, now=NOW, expires_at=2_000_000_000)
    assert spend.reserve(ledger, request, LIMITS) == (count, False)


def pack(batch_id: str, count: int) -> DispatchPack:
    return DispatchPack.model_validate(
        {
            "pack_id": f"{batch_id}:aliyun:0",
            "batch_id": batch_id,
            "provider": "aliyun",
            "created_at": "2026-12-03T09:00:00.000000Z",
            "owner": "billing",
            "currency": "USD",
            "contents": [{"type": "OTP", "text": "code 1", "sender_id": "Acme"}],
            "recipients": [
                {"id": f"{batch_id}.{i:05d}", "to": f"+852512{i:05d}", "c": 0, "segments": 1, "cost": "0.04"}
                for i in range(count)
            ],
        }
    )


def bad_odd_numbers(message):  # type: ignore[no-untyped-def]
    seq = int(message.message_id.rsplit(".", 1)[1])
    return ProviderError(ErrorCategory.RECIPIENT, "MOBILE_NUMBER_ILLEGAL", "bad", 200) if seq % 2 else None


def test_dispatch_gives_back_the_failed_recipients_once(stack) -> None:  # type: ignore[no-untyped-def]
    ledger, store = DynamoDBSpendLedger(stack.table_name), DynamoDBMessageStore(stack.table_name)
    reserve(ledger, "B1", 10)
    deps = DispatchDeps(
        provider=ScriptedProvider(answer=bad_odd_numbers),
        store=store,
        claims=MemoryClaims(),
        queues=MemoryQueues(),
        receipts=DynamoDBReceiptStore(stack.table_name, retention_days=90),
        webhooks=MemoryWebhooks(),
        spend=ledger,
    )
    summary = dispatch_pack(pack("B1", 10), deps, now=NOW, last_attempt=False)
    assert (summary.submitted, summary.failed) == (5, 5)
    after = {spend.DEPLOYMENT: CENT4 * 5, spend.key_scope("billing"): CENT4 * 5}
    assert ledger.spent(MONTH, SCOPES) == after  # 10 reserved, the 5 refused by the provider given back
    # A redelivered pack (the dispatcher died after recording) releases the same records again: nothing more.
    records = list(store.get_messages([f"B1.{i:05d}" for i in range(10)]).values())
    assert release_unsent(ledger, records) == 0
    assert ledger.spent(MONTH, SCOPES) == after
    marker = stack.dynamodb.get_item(TableName=stack.table_name, Key=release_key("B1.00001"))["Item"]
    assert Decimal(marker["amount"]["N"]) == CENT4


def test_a_release_larger_than_one_transaction_and_partly_done_before(stack) -> None:  # type: ignore[no-untyped-def]
    ledger = DynamoDBSpendLedger(stack.table_name)
    count = RELEASE_CHUNK * 2 + 5
    reserve(ledger, "B2", count)
    amounts = {f"B2.{i:05d}": CENT4 for i in range(count)}
    first = dict(list(amounts.items())[7:20])  # an earlier, interrupted release gave these back already
    assert ledger.release_once(MONTH, SCOPES, first, None) == CENT4 * 13
    assert ledger.release_once(MONTH, SCOPES, amounts, None) == CENT4 * (count - 13)
    assert ledger.release_once(MONTH, SCOPES, amounts, None) == 0
    assert ledger.spent(MONTH, SCOPES) == dict.fromkeys(SCOPES, Decimal(0))


def test_a_recharge_takes_back_exactly_what_was_given_back_once(stack) -> None:  # type: ignore[no-untyped-def]
    """A redrive of a dead-lettered pack charges its given-back recipients again: only those given back, once per
    release, in transactions of RELEASE_CHUNK; a later release gives them back again."""
    ledger = DynamoDBSpendLedger(stack.table_name)
    count = RELEASE_CHUNK + 5
    reserve(ledger, "B4", count)
    amounts = {f"B4.{i:05d}": CENT4 for i in range(count)}
    given_back = dict(list(amounts.items())[3:])  # three were sent: never given back
    assert ledger.release_once(MONTH, SCOPES, given_back, None) == CENT4 * (count - 3)
    never = spend.key_scope("never-reserved")  # no counter: nothing was given back to it, nothing is charged to it
    assert ledger.recharge_once(MONTH, [*SCOPES, never], amounts) == CENT4 * (count - 3)
    assert ledger.spent(MONTH, SCOPES) == dict.fromkeys(SCOPES, CENT4 * count)
    missing = stack.dynamodb.get_item(
        TableName=stack.table_name, Key={"pk": {"S": f"S#{never}#{MONTH}"}, "sk": {"S": "$month"}}
    )
    assert "Item" not in missing
    assert ledger.recharge_once(MONTH, SCOPES, amounts) == 0  # a repeated delivery of the redriven pack
    assert "Item" not in stack.dynamodb.get_item(TableName=stack.table_name, Key=release_key("B4.00004"))
    assert ledger.release_once(MONTH, SCOPES, given_back, None) == CENT4 * (count - 3)  # failed again
    assert ledger.spent(MONTH, SCOPES) == dict.fromkeys(SCOPES, CENT4 * 3)


def test_a_scope_without_a_counter_is_left_alone(stack) -> None:  # type: ignore[no-untyped-def]
    ledger = DynamoDBSpendLedger(stack.table_name)
    reserve(ledger, "B3", 2)
    released = ledger.release_once(MONTH, [*SCOPES, spend.key_scope("never-reserved")], {"B3.00000": CENT4}, None)
    assert released == CENT4
    assert ledger.spent(MONTH, SCOPES) == dict.fromkeys(SCOPES, CENT4)
    missing = stack.dynamodb.get_item(
        TableName=stack.table_name, Key={"pk": {"S": f"S#key:never-reserved#{MONTH}"}, "sk": {"S": "$month"}}
    )
    assert "Item" not in missing  # never made negative


def test_concurrent_dispatchers_give_each_recipient_back_once() -> None:
    # Through a moto server (as test_spend_ledger's race): each dispatcher its own client, all at once.
    answer = race_in_child(__file__)
    assert answer["released"] == answer["expected"]  # the sum over every racer: each recipient once
    assert Decimal(answer["spent"]) == 0  # reserved, then all given back: never below zero


def _race(racers: int = 6, recipients: int = 40) -> dict[str, Any]:
    import boto3

    with moto_messages_table() as url:
        reserve(DynamoDBSpendLedger("messages", lambda: boto3.client("dynamodb", endpoint_url=url)), "R", recipients)
        amounts = {f"R.{i:05d}": CENT4 for i in range(recipients)}
        released: list[Decimal] = []
        start = threading.Barrier(racers)

        def racer(n: int) -> None:
            client = boto3.client("dynamodb", endpoint_url=url)
            ledger = DynamoDBSpendLedger("messages", client_factory=lambda: client)
            mine = dict(list(amounts.items())[n * 3 :])  # overlapping sets: every racer repeats most of them
            start.wait()
            released.append(ledger.release_once(MONTH, SCOPES, mine, None))

        threads = [threading.Thread(target=racer, args=(n,)) for n in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ledger = DynamoDBSpendLedger("messages", client_factory=lambda: boto3.client("dynamodb", endpoint_url=url))
        return {
            "released": str(sum(released, Decimal(0))),
            "expected": str(CENT4 * recipients),
            "spent": str(ledger.spent(MONTH, [spend.DEPLOYMENT])[spend.DEPLOYMENT]),
        }


if __name__ == "__main__":
    child_main(_race)


def test_an_interrupted_batch_gives_back_the_rest_of_its_reservation_once(stack) -> None:  # type: ignore[no-untyped-def]
    ledger = DynamoDBSpendLedger(stack.table_name)
    assert ledger.reservation("B4") is None
    reserve(ledger, "B4", 10)
    assert ledger.reservation("B4") == Reservation(month=MONTH, count=10, amount=CENT4 * 10, scopes=tuple(SCOPES))
    written = CENT4 * 7  # the records the stopped accept wrote (their own releases are theirs)
    now = int(NOW.timestamp())

    # The last attempt's owner may not be the one that reserved (GLOBESMS_INTAKE_OWNER changed in between): the rest
    # goes back to the counters the reservation was added to.
    given_back = release_unwritten(ledger, batch_id="B4", owner="other", written_cost=written, expires_at=None, now=now)
    again = release_unwritten(ledger, batch_id="B4", owner="other", written_cost=written, expires_at=None, now=now)

    assert (given_back, again) == (CENT4 * 3, 0)
    assert ledger.spent(MONTH, [*SCOPES, spend.key_scope("other")]) == {
        **{scope: CENT4 * 7 for scope in SCOPES},
        spend.key_scope("other"): 0,
    }
    # Its marker is no recipient's: a recipient's own release stays possible.
    assert ledger.release_once(MONTH, SCOPES, {"B4.00009": CENT4}, None) == CENT4


def test_a_charge_is_added_once_per_message_kind_and_provider(stack) -> None:  # type: ignore[no-untyped-def]
    """A failover's difference (either sign) and a resend's cost, each once: a repeated failover or a redelivered
    resend adds nothing, in transactions of RELEASE_CHUNK; a charge to a counter that does not exist creates it."""
    ledger = DynamoDBSpendLedger(stack.table_name)
    count = RELEASE_CHUNK + 5
    reserve(ledger, "B6", count)
    moves = {Charge(f"B6.{i:05d}", "move", "aliyun"): Decimal("0.02") for i in range(count)}
    cheaper = {Charge("B6.00000", "move", "huawei"): Decimal("-0.01")}  # moved on again, to a cheaper provider
    resend = {Charge("B6.00001", "resend", "aliyun"): Decimal("0.06")}  # the same provider, another kind
    assert ledger.charge_once(MONTH, SCOPES, moves, 2_000_000_000) == Decimal("0.02") * count
    assert ledger.charge_once(MONTH, SCOPES, {**moves, **cheaper, **resend}, 2_000_000_000) == Decimal("0.05")
    assert ledger.charge_once(MONTH, SCOPES, {**moves, **cheaper, **resend}, 2_000_000_000) == 0
    expected = CENT4 * count + Decimal("0.02") * count + Decimal("0.05")
    assert ledger.spent(MONTH, SCOPES) == dict.fromkeys(SCOPES, expected)
    marker = stack.dynamodb.get_item(TableName=stack.table_name, Key=charge_key(Charge("B6.00000", "move", "huawei")))
    assert (marker["Item"]["amount"]["N"], marker["Item"]["expires_at"]["N"]) == ("-0.01", "2000000000")
    fresh = spend.key_scope("priced-nothing-this-month")
    assert ledger.charge_once(MONTH, [fresh], {Charge("B6.00002", "resend", "tencent"): CENT4}, None) == CENT4
    assert ledger.spent(MONTH, [fresh]) == {fresh: CENT4}


def test_a_failover_at_dispatch_charges_the_dearer_providers_difference(stack) -> None:  # type: ignore[no-untyped-def]
    """End to end on the table: 10 recipients reserved at Alibaba's 0.04 move to Tencent (a config refusal), which
    the price table prices at 0.05 there: the month's counters hold 0.50, what the sends cost, not 0.40."""
    ledger, store = DynamoDBSpendLedger(stack.table_name), DynamoDBMessageStore(stack.table_name)
    reserve(ledger, "B7", 10)
    prices = PriceTableDoc.model_validate(
        {"version": 1, "currency": "USD", "as_of": "2026-12-01", "prices": {"tencent": {"HK": {"*": "0.05"}}}}
    )
    moving = pack("B7", 10).model_dump()
    moving["contents"][0]["route"] = ["aliyun", "tencent"]
    for recipient in moving["recipients"]:
        recipient["country"] = "HK"
    config = ProviderError(ErrorCategory.CONFIG, "isv.SMS_SIGNATURE_ILLEGAL", "sender id not approved", 200)
    queues = MemoryQueues()
    deps = DispatchDeps(
        provider=ScriptedProvider(answer=lambda message: config),
        store=store,
        claims=MemoryClaims(),
        queues=queues,
        receipts=DynamoDBReceiptStore(stack.table_name, retention_days=90),
        webhooks=MemoryWebhooks(),
        spend=ledger,
        prices=lambda: prices,
    )
    assert dispatch_pack(DispatchPack.model_validate(moving), deps, now=NOW, last_attempt=False).failed_over == 10
    assert {r.cost for p in queues.sent[ProviderName.TENCENT] for r in p.recipients} == {"0.05"}
    assert ledger.spent(MONTH, SCOPES) == dict.fromkeys(SCOPES, Decimal("0.50"))


def test_a_charge_given_back_once_and_made_again_by_a_redrive(stack) -> None:  # type: ignore[no-untyped-def]
    """A resend that never reached its provider gives its charge back once; a redrive charges it again; the batch's
    charges read back with what each message carried before its resend."""
    ledger = DynamoDBSpendLedger(stack.table_name)
    reserve(ledger, "B8", 2)
    resend, move = Charge("B8.00000", "resend", "tencent"), Charge("B8.00001", "move", "huawei")
    carried = {resend: CENT4}
    assert ledger.charge_once(
        MONTH, SCOPES, {resend: Decimal("0.05"), move: Decimal("-0.01")}, None, carried
    ) == Decimal("0.04")
    never = Charge("B8.00001", "resend", "aliyun")
    assert ledger.uncharge_once(MONTH, SCOPES, [resend, never]) == Decimal("0.05")
    assert ledger.uncharge_once(MONTH, SCOPES, [resend]) == 0  # once
    assert ledger.spent(MONTH, SCOPES) == dict.fromkeys(SCOPES, CENT4 * 2 - Decimal("0.01"))
    made = {m.charge: m for m in ledger.batch_charges("B8")}
    assert made[resend] == ChargeMade(resend, Decimal("0.05"), CENT4, True)
    assert made[move] == ChargeMade(move, Decimal("-0.01"), None, False)
    assert ledger.recharge_given_back(MONTH, SCOPES, [resend, move, never]) == Decimal("0.05")  # a redrive
    assert ledger.recharge_given_back(MONTH, SCOPES, [resend]) == 0
    assert ledger.charge_once(MONTH, SCOPES, {resend: Decimal("0.05")}, None, carried) == 0  # charged already
    assert {m.charge: m.given_back for m in ledger.batch_charges("B8")} == {resend: False, move: False}
    assert ledger.uncharge_once(MONTH, SCOPES, [resend]) == Decimal("0.05")  # given back again, then made anew
    assert ledger.charge_once(MONTH, SCOPES, {resend: Decimal("0.06")}, None, carried) == Decimal("0.06")
    assert ledger.spent(MONTH, SCOPES) == dict.fromkeys(SCOPES, CENT4 * 2 - Decimal("0.01") + Decimal("0.06"))
