"""`make bench` figure 4 (AWS cost per recipient), small: the billing rules of the meter, and one quick run of the
whole pipeline whose figures must add up."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from bench import aws_cost
from bench._cost_meter import (
    IndexSpec,
    TableSpec,
    index_write_units,
    item_size,
    number_size,
    read_units,
    value_size,
    write_units,
)
from bench.figures import Figure

MESSAGES = TableSpec(("pk", "sk"), (IndexSpec("ProviderRef", ("provider_ref",), "KEYS_ONLY"),))


def test_item_sizes_follow_the_dynamodb_rules() -> None:
    assert item_size({"to": {"S": "+85251234567"}}) == 2 + 12
    assert number_size("0") == 1 + 1
    assert number_size("1764150000") == math.ceil(6 / 2) + 1  # trailing zeros do not count
    assert number_size("-12.345") == math.ceil(5 / 2) + 1
    assert value_size({"BOOL": True}) == 1 and value_size({"NULL": True}) == 1
    assert value_size({"SS": ["ab", "cde"]}) == 5
    assert value_size({"L": [{"S": "ab"}, {"N": "7"}]}) == 3 + (1 + 2) + (1 + 2)
    assert value_size({"M": {"id": {"S": "x"}}}) == 3 + 1 + 2 + 1
    assert value_size({"B": b"\x00\x01\x02"}) == 3
    assert item_size(None) == 0


def test_units_round_up_per_started_kilobyte_and_4_kilobytes() -> None:
    assert [write_units(n) for n in (0, 1, 1024, 1025, 3000)] == [1, 1, 1, 2, 3]
    assert read_units(4096, consistent=True) == 1.0
    assert read_units(4097, consistent=True) == 2.0
    assert read_units(100, consistent=False) == 0.5


def test_index_writes_only_when_an_entry_appears_moves_or_disappears() -> None:
    record = {"pk": {"S": "B#1"}, "sk": {"S": "M#00000"}, "status": {"S": "QUEUED"}}
    submitted = {**record, "status": {"S": "SUBMITTED"}, "provider_ref": {"S": "aliyun#1"}}
    delivered = {**submitted, "status": {"S": "DELIVERED"}}
    assert index_write_units(MESSAGES, record, {**record, "status": {"S": "SENDING"}}) == 0
    assert index_write_units(MESSAGES, record, submitted) == 1  # the entry appears
    assert index_write_units(MESSAGES, submitted, delivered) == 0  # keys only, same key: nothing to write
    assert index_write_units(MESSAGES, submitted, {**submitted, "provider_ref": {"S": "aliyun#2"}}) == 2
    assert index_write_units(MESSAGES, submitted, None) == 1  # the entry disappears


@pytest.fixture(scope="module")
def figures() -> Iterator[dict[str, Figure]]:
    yield {f.id: f for f in aws_cost.measure(quick=True)}


def test_quick_run_takes_every_recipient_to_delivered(figures: dict[str, Figure]) -> None:
    detail: dict[str, Any] = figures["aws_cost.requests_to_submitted"].detail
    assert detail["recipients"] == aws_cost.QUICK_RECIPIENTS
    assert detail["statuses"] == {"DELIVERED": aws_cost.QUICK_RECIPIENTS}
    assert detail["webhook_events_delivered"] == detail["with_status_callback"] > 0
    assert sum(detail["receipts"].values()) == aws_cost.QUICK_RECIPIENTS
    # Huawei's receipts as docs/deploy.md configures them: batch status reports, up to 50 a push.
    assert aws_cost.HUAWEI_RECEIPT_FORMAT == "batch"
    assert detail["receipt_pushes"]["huawei"] == math.ceil(detail["receipts"]["huawei"] / 50)


def test_figures_are_compared_with_their_goals(figures: dict[str, Figure]) -> None:
    assert set(figures) == {"aws_cost.requests_to_submitted", "aws_cost.write_units", "aws_cost.dollars_per_million"}
    for figure in figures.values():
        assert figure.reference is not None and figure.ratio is not None
        assert figure.value > 0 and math.isfinite(figure.value)
        assert figure.ratio == pytest.approx(figure.value / figure.reference)
        assert (figure.goal_op, figure.goal_value, figure.reference_label) == ("<=", 1.0, "goal")
        assert figure.goal_met == (figure.value <= figure.reference)


def test_figures_add_up(figures: dict[str, Figure]) -> None:
    requests = figures["aws_cost.requests_to_submitted"]
    detail: dict[str, Any] = requests.detail
    idle = detail["phase"]["idle_receives_left_out"] / detail["recipients"]
    assert sum(detail["by_operation_per_recipient"].values()) - idle == pytest.approx(requests.value, abs=1e-3)

    writes = figures["aws_cost.write_units"]
    write_detail: dict[str, Any] = writes.detail
    assert sum(write_detail["by_phase_per_recipient"].values()) == pytest.approx(writes.value, abs=1e-3)
    assert writes.value >= 3  # each record is written at accept, at SUBMITTED and at DELIVERED

    dollars = figures["aws_cost.dollars_per_million"]
    dollar_detail: dict[str, Any] = dollars.detail
    assert sum(dollar_detail["dollars_per_million_by_item"].values()) == pytest.approx(dollars.value, abs=1e-2)
    assert dollar_detail["prices_us_east_1"]["as_of"] == aws_cost.PRICES_AS_OF


def test_the_otp_guard_costs_requests_per_request_not_per_recipient(figures: dict[str, Figure]) -> None:
    extra = figures["aws_cost.requests_to_submitted"].detail["otp_guard_extra_requests"]
    one = extra["one_otp_recipient"]
    assert one["requests"] == {"batch_get_item": 1, "transact_write_items": 1, "update_item": 1}
    many = extra["many_otp_recipients"]
    assert many["recipients"] == aws_cost.OTP_GUARD_RECIPIENTS and many["refused"] == 0
    assert many["requests"] == {"batch_get_item": 4, "transact_write_items": 4, "update_item": 1}  # 301 keys; 300/99


def test_spend_ledger_requests_are_told_apart_by_key() -> None:
    from bench._cost_pipeline import spend_ledger_request

    marker = {"pk": {"S": "B#b1"}, "sk": {"S": "$spend"}}
    counter = {"pk": {"S": "S#acct#2026-12"}, "sk": {"S": "$month"}}
    record = {"pk": {"S": "B#b1"}, "sk": {"S": "M#00000"}}
    reserve = {"TransactItems": [{"Put": {"TableName": "t", "Item": marker}}, {"Update": {"Key": counter}}]}
    assert spend_ledger_request("dynamodb.TransactWriteItems", reserve)
    assert spend_ledger_request("dynamodb.GetItem", {"TableName": "t", "Key": counter})
    assert spend_ledger_request("dynamodb.BatchGetItem", {"RequestItems": {"t": {"Keys": [record, counter]}}})
    assert not spend_ledger_request(
        "dynamodb.BatchWriteItem", {"RequestItems": {"t": [{"PutRequest": {"Item": record}}]}}
    )
    assert not spend_ledger_request("dynamodb.GetItem", {"TableName": "t", "Key": record})
    assert not spend_ledger_request("sqs.SendMessage", {"Key": marker})


def test_every_phase_is_shown_and_the_phases_add_up(figures: dict[str, Figure]) -> None:
    from bench._cost_pipeline import PER_RUN, PHASES, STATUS_COUNTS, TO_SUBMITTED

    dollars: dict[str, Any] = figures["aws_cost.dollars_per_million"].detail
    by_phase = dollars["by_phase"]
    assert list(by_phase) == list(PHASES)
    per_recipient = [p for p in PHASES if p not in PER_RUN]
    total = sum(by_phase[p]["dollars_per_million"] for p in per_recipient)
    assert total == pytest.approx(figures["aws_cost.dollars_per_million"].value, rel=1e-3)

    requests = figures["aws_cost.requests_to_submitted"]
    summed = sum(by_phase[p]["requests_per_recipient"] for p in TO_SUBMITTED)
    assert summed == pytest.approx(requests.value, abs=1e-3)

    # The stream's changes reach StatusCountsFunction, whose invocations and writes are counted: every record is
    # written at accept, at SUBMITTED and at DELIVERED (the first two drained together, the last on its own).
    assert dollars["status_counts_stream"]["records_handed_over"] == {
        STATUS_COUNTS[0]: 2 * aws_cost.QUICK_RECIPIENTS,
        STATUS_COUNTS[1]: aws_cost.QUICK_RECIPIENTS,
    }
    for phase in STATUS_COUNTS:
        assert by_phase[phase]["lambda_invocations"] >= 1
        assert by_phase[phase]["write_units_per_recipient"] > 0
        assert by_phase[phase]["calls"].get("dynamodb.TransactWriteItems", 0) >= 1
    assert by_phase["spend_ledger"]["calls"] == {"dynamodb.TransactWriteItems": 1}  # one reservation per batch
    assert by_phase["reconcile"]["lambda_invocations"] == 1 and by_phase["reconcile"]["requests_per_run"] > 0
    assert dollars["within_ceiling"] == (
        figures["aws_cost.dollars_per_million"].value <= aws_cost.CEILING_DOLLARS_PER_MILLION
    )
