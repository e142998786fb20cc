"""Tencent's status-report pushes -> DeliveryReport: real shapes, every status, refusals, echoes, numbers."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from globesms.domain.status import Status
from globesms.models.outbound import ProviderName
from globesms.models.receipts import EchoRange, ReceiptBodyInvalid
from globesms.models.records import message_id
from globesms.providers.tencent.receipts import ACK, echo_of, normalised_number, outcome, parse_push
from local.emulators import tencent as emulator
from tests.unit.providers.receipt_cases import FIELD_VALUES, JSON_VALUES

# The documented sample ("SMS Sending Status Notification"), with the SessionContext echo the client enables.
DOC_REPORT: dict[str, Any] = {
    "user_receive_time": "2015-10-17 08:03:04",
    "nationcode": "86",
    "mobile": "13800000001",
    "report_status": "SUCCESS",
    "errmsg": "DELIVRD",
    "description": "The SMS message is successfully delivered",
    "sid": "2019:6422138450516520071",
    "ext": "01J0000000000000000000000A.00012",
}


def body(*reports: Any) -> bytes:
    return json.dumps(list(reports)).encode()


def report(**changes: Any) -> dict[str, Any]:
    return {**DOC_REPORT, **changes}


def test_ack_is_the_documented_answer() -> None:
    assert ACK == {"result": 0, "errmsg": "OK"}


def test_documented_report_is_read_field_for_field() -> None:
    push = parse_push(body(DOC_REPORT), "application/json")
    assert push.refused_items == []
    [read] = push.reports
    assert read.provider is ProviderName.TENCENT
    assert read.provider_message_id == "2019:6422138450516520071"
    assert (read.status, read.raw_status, read.error_code) == (Status.DELIVERED, "SUCCESS", "DELIVRD")
    assert read.description == "The SMS message is successfully delivered"
    assert read.to == "+8613800000001"
    assert read.echo == EchoRange("01J0000000000000000000000A", 12, 12)
    assert read.provider_time == "2015-10-17 08:03:04"
    assert (read.part, read.parts) == (None, None)


def test_the_docs_own_sample_without_ext_and_with_a_masked_number() -> None:
    sample = {k: v for k, v in DOC_REPORT.items() if k != "ext"} | {"mobile": "13xxxxxxxxx", "sid": "xxxxxxx"}
    [read] = parse_push(body(sample), "").reports
    assert (read.provider_message_id, read.echo, read.to) == ("xxxxxxx", None, "13xxxxxxxxx")


@pytest.mark.parametrize(
    ("report_status", "errmsg", "description", "status"),
    [
        ("SUCCESS", "DELIVRD", "delivered", Status.DELIVERED),
        ("success", "DELIVRD", None, Status.DELIVERED),
        ("FAIL", "UNDELIV", "The SMS message could not be delivered", Status.UNDELIVERED),
        ("FAIL", "MK:0001", "carrier error", Status.UNDELIVERED),
        ("FAIL", None, None, Status.UNDELIVERED),
        ("FAIL", "EXPIRED", "whatever", Status.EXPIRED),
        ("FAIL", "expired", None, Status.EXPIRED),
        ("FAIL", "DB:0141", "The message expired before delivery", Status.EXPIRED),
        ("FAIL", "MK:0005", "短信已过期", Status.EXPIRED),
        ("FAIL", "REJECTD", "rejected by the SMSC", Status.REJECTED),
        ("PENDING", None, None, None),  # undocumented: kept raw, no status change
        ("UNKNOWN", "UNKNOWN", None, None),
    ],
)
def test_status_mapping(report_status: str, errmsg: str | None, description: str | None, status: Status | None) -> None:
    assert outcome(report_status, errmsg, description) == status
    [read] = parse_push(body(report(report_status=report_status, errmsg=errmsg, description=description)), "").reports
    assert (read.status, read.raw_status, read.error_code) == (status, report_status, errmsg)


def test_blank_optional_fields_are_absent() -> None:
    [read] = parse_push(body(report(errmsg="", description=" ", ext="", user_receive_time="")), "").reports
    assert (read.error_code, read.description, read.echo, read.provider_time) == (None, None, None, None)


# --------------------------------------------------------------------------------------------------- dedupe


def test_a_repeated_push_gives_the_same_receipt_ids() -> None:
    push = body(DOC_REPORT, report(sid="2019:2", ext="01J0000000000000000000000A.00013"))
    first, again = parse_push(push, ""), parse_push(push, "")
    assert [r.receipt_id for r in first.reports] == [r.receipt_id for r in again.reports]
    assert len({r.receipt_id for r in first.reports}) == 2


def test_the_same_report_twice_in_one_push_has_one_receipt_id() -> None:
    reports = parse_push(body(DOC_REPORT, DOC_REPORT), "").reports
    assert len(reports) == 2 and reports[0].receipt_id == reports[1].receipt_id


# ------------------------------------------------------------------------------------------------ refusals


def test_malformed_items_are_refused_with_reasons_and_the_rest_survive() -> None:
    long_number = "13800000001" * 4
    items = [
        DOC_REPORT,
        {k: v for k, v in DOC_REPORT.items() if k != "sid"},
        report(report_status=None),
        report(mobile=long_number),
        42,
        report(sid=True),
        report(sid="good-2", ext={"not": "a string"}),  # an odd echo is no echo, never a refusal
        report(nationcode="123456789"),
    ]
    push = parse_push(body(*items), "application/json")
    assert [r.provider_message_id for r in push.reports] == ["2019:6422138450516520071", "good-2"]
    assert push.reports[1].echo is None
    assert [reason.split(":")[0] for reason in push.refused_items] == [
        "item 1",
        "item 2",
        "item 3",
        "item 4",
        "item 5",
        "item 7",
    ]
    assert "sid" in push.refused_items[0] and "report_status" in push.refused_items[1]
    assert "mobile" in push.refused_items[2] and push.refused_items[3] == "item 4: not a JSON object"
    assert not any(long_number[:11] in reason for reason in push.refused_items)


@pytest.mark.parametrize(
    "raw",
    [b"", b"{}", b'{"result": 0}', b"[1,", b"true", b"\x80abc", b"[Infinity]", b"[" * 100_000],
)
def test_unreadable_bodies_raise(raw: bytes) -> None:
    with pytest.raises(ReceiptBodyInvalid):
        parse_push(raw, "application/json")


def test_a_full_push_of_100_reports() -> None:
    items = [report(sid=f"2019:{i}", ext=message_id("B1", i)) for i in range(100)]
    push = parse_push(body(*items), "application/json")
    assert len(push.reports) == 100 and push.refused_items == []
    assert [r.echo for r in push.reports] == [EchoRange("B1", i, i) for i in range(100)]


# ---------------------------------------------------------------------------------------------------- echo


@pytest.mark.parametrize(
    ("ext", "echo"),
    [
        ("B1.00007", EchoRange("B1", 7, 7)),
        (message_id("sqs-1a2b", 99999), EchoRange("sqs-1a2b", 99999, 99999)),
        (None, None),
        ("", None),
        ("user-ctx-123", None),  # another system's SessionContext
        ("B1.7", None),
        ("B1.0000٣", None),  # an Arabic-Indic digit
        (".00001", None),
        ("a b.00001", None),
        ("B1.00001+2", None),  # Tencent echoes one message id, never a range
    ],
)
def test_echo_parsing(ext: str | None, echo: EchoRange | None) -> None:
    assert echo_of(ext) == echo


# ------------------------------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("nationcode", "mobile", "to"),
    [
        ("86", "13800000001", "+8613800000001"),
        ("852", "51230001", "+85251230001"),
        (852, 51230001, "+85251230001"),  # numbers in the JSON
        ("+65", "91000001", "+6591000001"),
        ("65", "6591000001", "+6591000001"),  # the mobile already carries its country code
        ("65", "+6591000001", "+6591000001"),
        (None, "85251230001", "+85251230001"),
        ("852", "1", "1"),  # not a possible number: as sent
        ("86", "13xxxxxxxxx", "13xxxxxxxxx"),
        ("86", None, None),
    ],
)
def test_number_normalisation(nationcode: Any, mobile: Any, to: str | None) -> None:
    [read] = parse_push(body(report(nationcode=nationcode, mobile=mobile)), "").reports
    assert read.to == to


def test_normalised_number_without_a_mobile() -> None:
    assert normalised_number("86", None) is None


# ---------------------------------------------------------------------------------------- emulator round trip


@pytest.mark.parametrize("outcome_name", sorted(emulator._RECEIPT_STATUSES))
def test_the_emulators_reports_round_trip(outcome_name: str) -> None:
    def accepted(number: str, context: str) -> emulator.Recipient:
        info = emulator.MultiSmsInfo.model_validate(
            {"PhoneNumber": number, "TemplateId": "1", "SessionContext": context}
        )
        return emulator.Recipient(info=info, number=phonenumbers.parse(number))

    received = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    sent = [accepted("+6591000001", "B1.00001"), accepted("+85251230002", ""), accepted("+447700900123", "x")]
    wire = [emulator.receipt_report(r, outcome_name, received) for r in sent]
    push = parse_push(json.dumps(wire).encode(), "application/json")
    assert push.refused_items == []
    assert [r.status for r in push.reports] == [Status(outcome_name)] * 3
    assert [r.provider_message_id for r in push.reports] == [r.serial_no for r in sent]
    assert [r.to for r in push.reports] == ["+6591000001", "+85251230002", "+447700900123"]
    assert [r.echo for r in push.reports] == [EchoRange("B1", 1, 1), None, None]
    assert push.reports[0].provider_time == "2024-05-01 20:00:00"  # Beijing time, as Tencent writes it


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
@given(st.lists(st.dictionaries(FIELDS, FIELD_VALUES, max_size=8), max_size=5))
def test_arbitrary_report_fields_are_read_or_refused_item_by_item(items: list[dict[str, Any]]) -> None:
    push = parse_push(json.dumps(items).encode(), "")
    assert len(push.reports) + len(push.refused_items) == len(items)
    for read in push.reports:
        assert read.provider_message_id
        assert read.echo is None or read.echo.first_seq == read.echo.last_seq
