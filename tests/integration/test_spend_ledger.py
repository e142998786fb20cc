"""Spend reservations on the messages table (moto, the table as template.yaml declares it): exact under concurrent
writers, once per batch, given back on release."""

import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from globesms.aws.dynamodb_spend import DynamoDBSpendLedger, counter_key
from globesms.guardrails import spend
from globesms.guardrails.limits import LimitsDoc
from globesms.guardrails.ports import HeldForAnotherBody
from tests.integration.racing import child_main, moto_messages_table, race_in_child

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
CENT4 = Decimal("0.04")


def limits(total: str | None = None, **keys: str) -> LimitsDoc:
    return LimitsDoc.model_validate(
        {"version": 1, "monthly_spend": total, "keys": {k: {"monthly_spend": v} for k, v in keys.items()}}
    )


def request(batch_id: str, costs: list[Decimal], owner: str | None = None) -> spend.Request:
    return spend.Request(batch_id=batch_id, owner=owner, costs=costs, now=NOW, expires_at=1_900_000_000)


def test_a_request_keeps_the_prefix_that_fits_and_a_retry_of_the_batch_keeps_the_same(stack) -> None:  # type: ignore[no-untyped-def]
    ledger = DynamoDBSpendLedger(stack.table_name)
    costs = [Decimal("3"), Decimal("3"), Decimal("1"), Decimal("3")]
    assert spend.reserve(ledger, request("b1", costs), limits("8")) == (
        3,
        False,
    )  # 3 + 3 + 1 = 7; the fourth would be 10
    assert ledger.spent("2026-12", [spend.DEPLOYMENT]) == {spend.DEPLOYMENT: Decimal("7")}
    assert spend.reserve(ledger, request("b1", costs), limits("8")) == (3, False)  # the same batch: reserved once
    assert ledger.spent("2026-12", [spend.DEPLOYMENT]) == {spend.DEPLOYMENT: Decimal("7")}
    assert spend.reserve(ledger, request("b2", [Decimal("2")]), limits("8")) == (0, False)  # 7 + 2 > 8
    assert spend.reserve(ledger, request("b3", [Decimal("1")]), limits("8")) == (1, False)  # exactly the limit
    assert spend.peek(ledger, request("b4", [Decimal("0.01")]), limits("8")) == 0


def test_a_batchs_reservation_is_its_bodys_alone(stack) -> None:  # type: ignore[no-untyped-def]
    """Two bodies naming one batch id at once: the second found the first's marker and took its count as its own.
    The marker names its body: the same body finds it, another is told the batch id holds another body's."""
    ledger = DynamoDBSpendLedger(stack.table_name)
    mine = spend.Request(batch_id="o7", owner=None, costs=[CENT4], now=NOW, expires_at=1_900_000_000, body="a")
    assert spend.reserve(ledger, mine, limits()) == (1, False)
    other = spend.Request(batch_id="o7", owner=None, costs=[CENT4] * 10, now=NOW, expires_at=1_900_000_000, body="b")
    with pytest.raises(HeldForAnotherBody):
        spend.reserve(ledger, other, limits())
    assert spend.reserve(ledger, mine, limits()) == (1, False)  # a retry of the body that reserved
    assert ledger.spent("2026-12", [spend.DEPLOYMENT]) == {spend.DEPLOYMENT: CENT4}
    # A marker written before markers named their body is taken as the retry's, as it always was.
    assert spend.reserve(ledger, request("old", [CENT4]), limits()) == (1, False)
    assert spend.reserve(ledger, request("old", [CENT4] * 3), limits()) == (1, False)


def test_a_retry_planned_again_keeps_only_what_the_reservation_covers(stack) -> None:  # type: ignore[no-untyped-def]
    """The first attempt reserved one recipient at 0.044 and stopped before its header; its retry, planned again,
    puts a dearer one first (a country allowed meanwhile). The count alone kept it: 0.32 of records against 0.044
    reserved, under a limit of 0.05."""
    ledger = DynamoDBSpendLedger(stack.table_name)
    first = spend.Request(batch_id="K1", owner=None, costs=[Decimal("0.044")], now=NOW, expires_at=1_900_000_000)
    assert spend.reserve(ledger, first, limits("0.05")) == (1, False)
    retry = spend.Request(
        batch_id="K1", owner=None, costs=[Decimal("0.32"), Decimal("0.044")], now=NOW, expires_at=1_900_000_000
    )
    assert spend.reserve(ledger, retry, limits("0.05")) == (0, False)  # the first is dearer than what is reserved
    cheaper = spend.Request(
        batch_id="K1", owner=None, costs=[Decimal("0.03"), Decimal("0.01")], now=NOW, expires_at=1_900_000_000
    )
    assert spend.reserve(ledger, cheaper, limits("0.05")) == (1, False)  # never more than it counted
    assert ledger.spent("2026-12", [spend.DEPLOYMENT]) == {spend.DEPLOYMENT: Decimal("0.044")}


def test_the_key_limit_and_the_deployment_limit_both_hold(stack) -> None:  # type: ignore[no-untyped-def]
    ledger = DynamoDBSpendLedger(stack.table_name)
    doc = limits("10", keyA="2")
    assert spend.reserve(ledger, request("a1", [Decimal(1)] * 5, owner="keyA"), doc) == (2, False)
    assert spend.reserve(ledger, request("b1", [Decimal(1)] * 20, owner="keyB"), doc) == (8, False)
    spent = ledger.spent("2026-12", [spend.DEPLOYMENT, "key:keyA", "key:keyB"])
    assert spent == {spend.DEPLOYMENT: Decimal(10), "key:keyA": Decimal(2), "key:keyB": Decimal(8)}


def test_a_release_gives_the_amount_back_to_every_scope(stack) -> None:  # type: ignore[no-untyped-def]
    ledger = DynamoDBSpendLedger(stack.table_name)
    assert spend.reserve(ledger, request("r1", [CENT4] * 3, owner="k"), limits("1")) == (3, False)
    ledger.release("2026-12", {spend.DEPLOYMENT: CENT4, "key:k": CENT4})
    ledger.release("2027-01", {spend.DEPLOYMENT: CENT4})  # no counter that month: nothing made negative
    assert ledger.spent("2026-12", [spend.DEPLOYMENT, "key:k"]) == {spend.DEPLOYMENT: CENT4 * 2, "key:k": CENT4 * 2}
    month_after = stack.dynamodb.get_item(TableName=stack.table_name, Key=counter_key(spend.DEPLOYMENT, "2027-01"))
    assert "Item" not in month_after


def test_concurrent_writers_never_overspend_and_use_the_whole_limit() -> None:
    # Through the moto server `make run` starts (a child process: its patches change moto for the whole process),
    # as concurrent Lambdas reach DynamoDB: each writer its own client, all at once.
    answer = race_in_child(__file__)
    assert answer["spent"] == answer["counted"]  # every recipient kept is counted, nothing else
    assert answer["spent"] == answer["limit"]  # 0 overspend, and the limit used to the last recipient
    assert answer["kept"] == 150
    assert answer["requests"] == 48


def _race(writers: int = 8, requests: int = 6, recipients: int = 7) -> dict[str, Any]:
    import boto3

    with moto_messages_table() as url:
        limit = CENT4 * 150  # room for 150 recipients at 0.04; 8 writers x 6 requests x 7 recipients ask for 336
        doc = limits(str(limit))
        kept: list[int] = []
        start = threading.Barrier(writers)

        def writer(n: int) -> None:
            client = boto3.client("dynamodb", endpoint_url=url)
            ledger = DynamoDBSpendLedger("messages", client_factory=lambda: client)
            start.wait()
            for i in range(requests):
                kept.append(spend.reserve(ledger, request(f"w{n}-{i}", [CENT4] * recipients), doc).kept)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ledger = DynamoDBSpendLedger("messages", client_factory=lambda: boto3.client("dynamodb", endpoint_url=url))
        spent = ledger.spent("2026-12", [spend.DEPLOYMENT])[spend.DEPLOYMENT]
        return {
            "spent": str(spent),
            "counted": str(CENT4 * sum(kept)),
            "limit": str(limit),
            "kept": sum(kept),
            "requests": len(kept),
        }


if __name__ == "__main__":
    child_main(_race)
