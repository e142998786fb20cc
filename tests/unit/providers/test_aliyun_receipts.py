"""Alibaba's global-API receipt pushes -> DeliveryReport: real shapes, every status, refusals, echoes, numbers."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from globesms.domain.status import Status
from globesms.models.outbound import ProviderName
from globesms.models.receipts import EchoRange, ReceiptBodyInvalid
from globesms.models.records import message_id
from globesms.providers.aliyun import batch_task_id
from globesms.providers.aliyun.receipts import ACK, echo_of, normalised_number, parse_push
from local.emulators import aliyun as emulator
from tests.unit.providers.receipt_cases import FIELD_VALUES, JSON_VALUES

# The documented report, field for field (providers.md "Delivery receipts"; dates in UTC+8).
DOC_REPORT: dict[str, Any] = {
    "To": "85251230001",
    "Status": "1",
    "MessageId": "1008030300****",
    "TaskId": "01J0000000000000000000000A.00003",
    "SmsSize": "1",
    "SendDate": "Thu, 25 Nov 2021 10:26:58 +0800",
    "ReceiveDate": "Thu, 25 Nov 2021 10:27:00 +0800",
    "ErrorCode": "DELIVERED",
    "ErrorDescription": "success",
}


def body(*reports: Any) -> bytes:
    return json.dumps(list(reports)).encode()


def report(**changes: Any) -> dict[str, Any]:
    return {**DOC_REPORT, **changes}


def test_ack_is_the_documented_answer() -> None:
    assert ACK == {"code": 0, "msg": "success"}


def test_documented_report_is_read_field_for_field() -> None:
    push = parse_push(body(DOC_REPORT), "application/json")
    assert push.refused_items == []
    [read] = push.reports
    assert read.provider is ProviderName.ALIYUN
    assert read.provider_message_id == "1008030300****"
    assert (read.status, read.raw_status) == (Status.DELIVERED, "1")
    assert (read.error_code, read.description) == ("DELIVERED", "success")
    assert read.to == "+85251230001"
    assert read.echo == EchoRange("01J0000000000000000000000A", 3, 3)
    assert read.provider_time == "Thu, 25 Nov 2021 10:27:00 +0800"
    assert (read.part, read.parts) == (None, None)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("1", Status.DELIVERED),
        ("2", Status.UNDELIVERED),
        ("6", Status.EXPIRED),
        (1, Status.DELIVERED),  # a number where a string is documented
        (2, Status.UNDELIVERED),
        (6, Status.EXPIRED),
        ("0", None),  # undocumented values: kept raw, no status change
        ("3", None),
        ("DELIVRD", None),
    ],
)
def test_status_mapping(raw: Any, status: Status | None) -> None:
    [read] = parse_push(body(report(Status=raw)), "application/json").reports
    assert read.status == status
    assert read.raw_status == str(raw)


def test_failure_keeps_the_carriers_code_and_description() -> None:
    [read] = parse_push(
        body(report(Status="2", ErrorCode="UNDELIV", ErrorDescription="The message could not be delivered.")), ""
    ).reports
    assert (read.status, read.error_code, read.description) == (
        Status.UNDELIVERED,
        "UNDELIV",
        "The message could not be delivered.",
    )
    assert read.event("2024-01-01T00:00:00Z")["error_code"] == "UNDELIV"


def test_blank_optional_fields_are_absent() -> None:
    [read] = parse_push(body(report(ErrorCode="", ErrorDescription=" ", TaskId="", SmsSize="")), "").reports
    assert (read.error_code, read.description, read.echo) == (None, None, None)


def test_long_description_is_bounded_not_refused() -> None:
    [read] = parse_push(body(report(ErrorDescription="x" * 5000)), "").reports
    assert read.description is not None and len(read.description) == 512


# --------------------------------------------------------------------------------------------------- dedupe


def test_a_repeated_push_gives_the_same_receipt_ids() -> None:
    push = body(DOC_REPORT, report(MessageId="other", To="85251230002"))
    first, again = parse_push(push, ""), parse_push(push, "")
    assert [r.receipt_id for r in first.reports] == [r.receipt_id for r in again.reports]
    assert len({r.receipt_id for r in first.reports}) == 2


def test_a_different_outcome_for_the_same_message_is_a_different_receipt() -> None:
    [a] = parse_push(body(report(Status="2")), "").reports
    [b] = parse_push(body(report(Status="1")), "").reports
    assert a.receipt_id != b.receipt_id


# ------------------------------------------------------------------------------------------------ refusals


def test_malformed_items_are_refused_with_reasons_and_the_rest_survive() -> None:
    number = "85251239999"
    items = [
        DOC_REPORT,
        {key: value for key, value in DOC_REPORT.items() if key != "MessageId"},
        report(Status=""),
        report(To=number * 4),  # far too long to be a number
        "not an object",
        report(SmsSize="many"),
        report(MessageId=["a"]),
        report(MessageId="second-good", TaskId={"odd": "echo"}),  # an odd echo is no echo, never a refusal
    ]
    push = parse_push(body(*items), "application/json")
    assert [r.provider_message_id for r in push.reports] == ["1008030300****", "second-good"]
    assert push.reports[1].echo is None
    assert len(push.refused_items) == 6
    assert push.refused_items[0].startswith("item 1: MessageId:")
    assert push.refused_items[1].startswith("item 2: Status:")
    assert push.refused_items[2].startswith("item 3: To:")
    assert push.refused_items[3] == "item 4: not a JSON object"
    assert push.refused_items[4].startswith("item 5: SmsSize:")
    assert push.refused_items[5].startswith("item 6: MessageId:")
    assert not any(number in reason for reason in push.refused_items)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b'{"To": "85251230001"}',  # an object, not an array
        b'"text"',
        b"null",
        b"[NaN]",
        b"\xff\xfe\x00",
        b"[" * 100_000,  # deeper than any parser recursion
    ],
)
def test_unreadable_bodies_raise(raw: bytes) -> None:
    with pytest.raises(ReceiptBodyInvalid):
        parse_push(raw, "application/json")


def test_an_empty_array_is_an_empty_push() -> None:
    push = parse_push(b"[]", "application/json")
    assert (push.reports, push.refused_items) == ([], [])


# ---------------------------------------------------------------------------------------------------- echo


@pytest.mark.parametrize(
    ("task_id", "echo"),
    [
        ("B1.00007", EchoRange("B1", 7, 7)),
        (message_id("01HZX", 123456), EchoRange("01HZX", 123456, 123456)),
        (batch_task_id("B1.00001", 250), EchoRange("B1", 1, 250)),
        (batch_task_id("B1.00010", 1), EchoRange("B1", 10, 10)),
        (batch_task_id("sqs-9f0e.00000", 1000), EchoRange("sqs-9f0e", 0, 999)),
        (None, None),
        ("", None),
        ("order-42", None),  # another system's TaskId
        ("v1.2", None),  # not our 5-digit sequence
        ("B1.0000x", None),
        ("B1.0000²", None),  # a digit to str.isdigit, not to int()
        (".00001", None),
        ("B1.00001+0", None),
        ("B1.00001+1001", None),  # more than a batch call holds
        ("B1.00001+abc", None),
        ("B1.00001+", None),
        ("+5", None),
        ("has space.00001", None),
    ],
)
def test_echo_parsing(task_id: str | None, echo: EchoRange | None) -> None:
    assert echo_of(task_id) == echo


def test_echo_in_a_push() -> None:
    [single, batch, foreign] = parse_push(
        body(
            report(MessageId="1", TaskId="B1.00004"),
            report(MessageId="2", TaskId="B1.00001+3"),
            report(MessageId="3", TaskId="crm-campaign-7"),
        ),
        "",
    ).reports
    assert single.echo == EchoRange("B1", 4, 4)
    assert batch.echo == EchoRange("B1", 1, 3)
    assert foreign.echo is None


# ------------------------------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("85251230001", "+85251230001"),
        ("+85251230001", "+85251230001"),
        ("6591000001", "+6591000001"),
        ("852 5123 0001", "+85251230001"),
        (85251230001, "+85251230001"),  # a number in the JSON
        ("8525123", "8525123"),  # too short for Hong Kong: kept as sent
        ("99912345678", "99912345678"),  # no such country code
        ("85251230xxx", "85251230xxx"),  # masked
        ("hello", "hello"),
    ],
)
def test_to_is_normalised_when_possible(raw: Any, e164: str) -> None:
    [read] = parse_push(body(report(To=raw)), "").reports
    assert read.to == e164


def test_missing_to_is_none() -> None:
    assert normalised_number(None) is None
    [read] = parse_push(body({k: v for k, v in DOC_REPORT.items() if k != "To"}), "").reports
    assert read.to is None


# ---------------------------------------------------------------------------------------- emulator round trip


@pytest.mark.parametrize("outcome", sorted(emulator.RECEIPT_OUTCOMES))
def test_the_emulators_reports_round_trip(outcome: str) -> None:
    sent_at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    single = emulator._receipt(
        "85251230001", "100803030001", "hi", "B1.00001", outcome, sent_at, sent_at + timedelta(seconds=3)
    )
    batch = emulator._receipt(
        "6591000002", "100803030002", "hi", batch_task_id("B1.00002", 2), outcome, sent_at, sent_at
    )
    no_task = emulator._receipt("6591000003", "100803030003", "hi", None, outcome, sent_at, sent_at)
    push = parse_push(json.dumps([single, batch, no_task]).encode(), "application/json")
    assert push.refused_items == []
    assert [r.status for r in push.reports] == [Status(outcome)] * 3
    assert [r.to for r in push.reports] == ["+85251230001", "+6591000002", "+6591000003"]
    assert [r.echo for r in push.reports] == [EchoRange("B1", 1, 1), EchoRange("B1", 2, 3), None]
    assert push.reports[0].provider_time == single["ReceiveDate"]


# ------------------------------------------------------------------------------------------------ hypothesis

FIELDS = st.sampled_from(sorted(DOC_REPORT))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_receipt_body_invalid(raw: bytes) -> None:
    with contextlib.suppress(ReceiptBodyInvalid):
        parse_push(raw, "application/json")


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_arbitrary_json_only_ever_raises_receipt_body_invalid(value: Any) -> None:
    try:
        push = parse_push(json.dumps(value).encode(), "application/json")
    except ReceiptBodyInvalid:
        assert not isinstance(value, list)
        return
    assert isinstance(value, list)
    assert len(push.reports) + len(push.refused_items) == len(value)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(FIELDS, FIELD_VALUES, max_size=9), max_size=5))
def test_arbitrary_report_fields_are_read_or_refused_item_by_item(items: list[dict[str, Any]]) -> None:
    push = parse_push(json.dumps(items).encode(), "")
    assert len(push.reports) + len(push.refused_items) == len(items)
    for read in push.reports:
        assert read.provider_message_id
        assert read.echo is None or read.echo.first_seq <= read.echo.last_seq
