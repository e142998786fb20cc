"""Huawei's status-report pushes -> DeliveryReport (form and statusReportList variants), and the optional AK/SK
push signature."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from globesms.domain.status import Status
from globesms.models.outbound import ProviderName
from globesms.models.receipts import EchoRange, ReceiptBodyInvalid
from globesms.models.records import message_id
from globesms.providers.huawei import AuthMode, HuaweiClient, settings_from_environment, signer
from globesms.providers.huawei.client import MAX_NUMBERS_PER_CALL
from globesms.providers.huawei.receipts import (
    ACK,
    FORM_CONTENT_TYPE,
    MAX_RECIPIENTS_PER_CALL,
    echo_of,
    outcome,
    parse_push,
    verify_push_signature,
)
from local.emulators import huawei as emulator
from local.settings import LOCAL_ENV_DEFAULTS
from tests.unit.providers.receipt_cases import FIELD_VALUES, JSON_VALUES

# The documented example push ("SMS Status Error Codes"), byte for byte.
DOC_FORM = (
    b"sequence=1&total=1&orgCode=000&updateTime=2018-04-13T06%3A31%3A46Z&source=2"
    b"&smsMsgId=b9d9b4fe-ad0e-4a2a-a2c7-445505b674ac_6&status=DELIVRD"
)
# A report with every documented field (as the emulator sends them when the call had an `extend`).
FULL: dict[str, str] = {
    "smsMsgId": "5963c5be-f189-4c0c-ab2e-7cab0c42c798_52",
    "total": "2",
    "sequence": "1",
    "status": "UNDELIV",
    "statusDesc": "The SMS failed to be delivered to the user.",
    "source": "2",
    "updateTime": "2018-05-25T16:34:34Z",
    "extend": "01J0000000000000000000000A.00040",
    "to": "+8615512345678",
    "orgCode": "UNDELIV",
}
JSON_TYPE = "application/json"


def form(fields: dict[str, Any]) -> bytes:
    return urlencode(fields).encode()


def batch(*reports: Any) -> bytes:
    return json.dumps({"statusReportList": list(reports)}).encode()


def test_ack_is_small_json() -> None:
    assert json.loads(json.dumps(ACK)) == {"result": "ok"}


def test_the_documented_form_push() -> None:
    push = parse_push(DOC_FORM, FORM_CONTENT_TYPE)
    assert push.refused_items == []
    [read] = push.reports
    assert read.provider is ProviderName.HUAWEI
    assert read.provider_message_id == "b9d9b4fe-ad0e-4a2a-a2c7-445505b674ac_6"
    assert (read.status, read.raw_status, read.error_code) == (Status.DELIVERED, "DELIVRD", "000")
    assert read.provider_time == "2018-04-13T06:31:46Z"  # url-decoded, otherwise as sent
    assert (read.part, read.parts) == (1, 1)
    assert (read.to, read.echo, read.description) == (None, None, None)


def test_every_field_of_a_form_push() -> None:
    [read] = parse_push(form(FULL), "application/x-www-form-urlencoded; charset=UTF-8").reports
    assert (read.status, read.raw_status, read.error_code) == (Status.UNDELIVERED, "UNDELIV", "UNDELIV")
    assert read.description == "The SMS failed to be delivered to the user."
    assert read.to == "+8615512345678"
    assert read.echo == EchoRange("01J0000000000000000000000A", 40, 40 + 499)
    assert (read.part, read.parts, read.provider_time) == (1, 2, "2018-05-25T16:34:34Z")


def test_the_batch_variant_with_numbers_where_strings_are_documented() -> None:
    second = FULL | {"smsMsgId": "x_53", "sequence": 2, "total": 2, "status": "DELIVRD", "orgCode": None}
    push = parse_push(batch(FULL, second), JSON_TYPE)
    assert push.refused_items == []
    assert [(r.provider_message_id, r.status, r.part, r.parts) for r in push.reports] == [
        (FULL["smsMsgId"], Status.UNDELIVERED, 1, 2),
        ("x_53", Status.DELIVERED, 2, 2),
    ]
    assert push.reports[1].error_code == "DELIVRD"  # no orgCode: the status is the code


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("", DOC_FORM),  # no content type: sniffed
        ("text/plain", DOC_FORM),
        ("", batch(FULL)),
        ("application/octet-stream", b"  \n" + batch(FULL)),
        ("APPLICATION/JSON; charset=utf-8", batch(FULL)),
        ("application/vnd.huawei+json", batch(FULL)),
    ],
)
def test_the_variant_is_told_by_content_type_or_by_the_body(content_type: str, raw: bytes) -> None:
    push = parse_push(raw, content_type)
    assert len(push.reports) == 1 and push.refused_items == []


@pytest.mark.parametrize(
    ("raw_status", "status"),
    [
        ("DELIVRD", Status.DELIVERED),
        ("UNDELIV", Status.UNDELIVERED),
        ("EXPIRED", Status.EXPIRED),
        ("REJECTD", Status.REJECTED),
        ("DELETED", Status.UNDELIVERED),
        ("MILIMIT", Status.REJECTED),
        ("LIMIT", Status.REJECTED),
        ("E200015", Status.REJECTED),
        ("E200028", Status.REJECTED),
        ("E200041", Status.REJECTED),
        ("delivrd", Status.DELIVERED),
        ("ACCEPTD", None),  # intermediate: kept raw, no status change
        ("UNKNOWN", None),
        ("RTE_ERR", None),  # undocumented
        ("E2", None),
        ("E20001X", None),
    ],
)
def test_status_mapping(raw_status: str, status: Status | None) -> None:
    assert outcome(raw_status) == status
    [read] = parse_push(form(FULL | {"status": raw_status, "orgCode": ""}), FORM_CONTENT_TYPE).reports
    assert (read.status, read.raw_status, read.error_code) == (status, raw_status, raw_status)


def test_the_emulators_status_table_maps_back_to_its_outcomes() -> None:
    for name, (raw_status, _, _) in emulator._RECEIPT_STATUSES.items():
        assert outcome(raw_status) == Status(name)


# --------------------------------------------------------------------------------------------------- dedupe


def test_a_repeated_push_gives_the_same_receipt_id() -> None:
    [first] = parse_push(form(FULL), FORM_CONTENT_TYPE).reports
    [again] = parse_push(batch(FULL), JSON_TYPE).reports  # the same report in the other variant
    assert first.receipt_id == again.receipt_id


def test_each_part_of_a_long_message_is_its_own_receipt() -> None:
    [one] = parse_push(form(FULL | {"sequence": "1"}), FORM_CONTENT_TYPE).reports
    [two] = parse_push(form(FULL | {"sequence": "2"}), FORM_CONTENT_TYPE).reports
    assert one.receipt_id != two.receipt_id


# ------------------------------------------------------------------------------------------------ refusals


def test_malformed_batch_items_are_refused_with_reasons_and_the_rest_survive() -> None:
    long_number = "+8615512345678" * 3
    items = [
        FULL,
        {k: v for k, v in FULL.items() if k != "smsMsgId"},
        FULL | {"status": ""},
        FULL | {"sequence": "0"},
        FULL | {"sequence": "3", "total": "2"},
        FULL | {"to": long_number},
        ["not", "an", "object"],
        FULL | {"total": "many"},
        FULL | {"smsMsgId": "good-2", "extend": {"odd": 1}},  # an odd echo is no echo, never a refusal
    ]
    push = parse_push(batch(*items), JSON_TYPE)
    assert [r.provider_message_id for r in push.reports] == [FULL["smsMsgId"], "good-2"]
    assert push.reports[1].echo is None
    assert [reason.split(": ")[:2] for reason in push.refused_items] == [
        ["item 1", "smsMsgId"],
        ["item 2", "status"],
        ["item 3", "sequence"],
        ["item 4", "sequence"],
        ["item 5", "to"],
        ["item 6", "not a JSON object"],
        ["item 7", "total"],
    ]
    assert not any("15512345678" in reason for reason in push.refused_items)


def test_a_malformed_form_report_is_refused_not_an_error() -> None:
    push = parse_push(form(FULL | {"sequence": "x"}), FORM_CONTENT_TYPE)
    assert push.reports == []
    assert [reason.split(": ")[:2] for reason in push.refused_items] == [["item 0", "sequence"]]


def test_a_form_with_a_repeated_field_is_refused() -> None:
    push = parse_push(DOC_FORM + b"&status=UNDELIV&total=2", FORM_CONTENT_TYPE)
    assert push.reports == [] and push.refused_items == ["item 0: status, total: field repeated"]


def test_unknown_form_fields_are_ignored_even_repeated() -> None:
    [read] = parse_push(DOC_FORM + b"&%2B8615512345678=1&%2B8615512345678=2&vendor=x", FORM_CONTENT_TYPE).reports
    assert read.status is Status.DELIVERED


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        (FORM_CONTENT_TYPE, b""),
        (FORM_CONTENT_TYPE, b"status=DELIVRD&total=1"),  # no smsMsgId
        (FORM_CONTENT_TYPE, b"smsMsgId=&status=DELIVRD"),
        (FORM_CONTENT_TYPE, b"smsMsgId=%FF%FE&status=DELIVRD"),  # not UTF-8 once decoded
        (FORM_CONTENT_TYPE, b"\xff\xfe"),
        (FORM_CONTENT_TYPE, b"&".join(b"f%d=1" % i for i in range(100)) + b"&smsMsgId=x&status=DELIVRD"),
        (FORM_CONTENT_TYPE, b'{"statusReportList": []}'),  # JSON labelled as a form
        (JSON_TYPE, DOC_FORM),  # a form labelled as JSON
        (JSON_TYPE, b"[]"),
        (JSON_TYPE, b'{"statusReportList": {"smsMsgId": "x"}}'),
        (JSON_TYPE, b'{"reports": []}'),
        (JSON_TYPE, b'{"statusReportList": [NaN]}'),
        (JSON_TYPE, b"{" * 100_000),
        ("", b"garbage"),
        ("", b""),
    ],
)
def test_unreadable_bodies_raise(content_type: str, raw: bytes) -> None:
    with pytest.raises(ReceiptBodyInvalid):
        parse_push(raw, content_type)


# ---------------------------------------------------------------------------------------------------- echo


def test_the_echo_range_is_one_full_call() -> None:
    assert MAX_RECIPIENTS_PER_CALL == MAX_NUMBERS_PER_CALL == 500


@pytest.mark.parametrize(
    ("extend", "echo"),
    [
        ("B1.00001", EchoRange("B1", 1, 500)),
        (message_id("sqs-77aa", 2000), EchoRange("sqs-77aa", 2000, 2499)),
        (None, None),
        ("", None),
        ("m1", None),  # another system's extend
        ("B1.1", None),
        ("B1.0000¹", None),
        (".00001", None),
        ("{B1}.00001", None),
    ],
)
def test_echo_parsing(extend: str | None, echo: EchoRange | None) -> None:
    assert echo_of(extend) == echo


# ------------------------------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("to", "normalised"),
    [
        ("+8615512345678", "+8615512345678"),
        ("8615512345678", "+8615512345678"),
        ("+2412000000", "+2412000000"),  # the seed's Gabon example
        ("+86155****5678", "+86155****5678"),  # masked, as in the docs: as sent
        ("+1", "+1"),
    ],
)
def test_to_normalisation(to: str, normalised: str) -> None:
    [read] = parse_push(form(FULL | {"to": to}), FORM_CONTENT_TYPE).reports
    assert read.to == normalised


# ---------------------------------------------------------------------------------------- emulator round trip


@pytest.mark.parametrize("outcome_name", sorted(emulator._RECEIPT_STATUSES))
def test_the_emulators_reports_round_trip(outcome_name: str) -> None:
    results = [
        {"smsMsgId": f"a1b2_{i}", "originTo": number, "total": 1}
        for i, number in enumerate(["+6591000001", "+8613800000001"])
    ]
    with_extend = [emulator._status_report(r, "B1.00010", outcome_name) for r in results]
    without = [emulator._status_report(r, None, outcome_name) for r in results]
    wire = [r.model_dump(by_alias=True, exclude_none=True) for r in with_extend + without]
    as_forms = [parse_push(urlencode(fields).encode(), FORM_CONTENT_TYPE) for fields in wire]
    as_batch = parse_push(json.dumps({"statusReportList": wire}).encode(), JSON_TYPE)
    for reports in ([r for push in as_forms for r in push.reports], as_batch.reports):
        assert [r.status for r in reports] == [Status(outcome_name)] * 4
        assert [r.to for r in reports] == ["+6591000001", "+8613800000001", None, None]
        assert [r.echo for r in reports] == [EchoRange("B1", 10, 509)] * 2 + [None] * 2
        assert [(r.part, r.parts) for r in reports] == [(1, 1)] * 4
    assert [r.receipt_id for push in as_forms for r in push.reports] == [r.receipt_id for r in as_batch.reports]


# ------------------------------------------------------------------------------------------ push signature

APP_KEY = "localHuaweiAppKey"
APP_SECRET = "local-huawei-app-secret"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PUSH_PATH = "/Prod/v1/receipts/huawei/token-123"
PUSH_HOST = "abc123.execute-api.ap-southeast-1.amazonaws.com"


def signed_push(
    body: bytes = DOC_FORM, *, at: datetime = NOW, query: tuple[tuple[str, str], ...] = ()
) -> dict[str, str]:
    headers = {"Content-Type": FORM_CONTENT_TYPE, "Host": PUSH_HOST, "X-Sdk-Date": signer.sdk_date(at)}
    headers["Authorization"] = signer.aksk_authorization(
        app_key=APP_KEY,
        app_secret=APP_SECRET.encode(),
        method="POST",
        path=PUSH_PATH,
        query=query,
        headers=headers,
        body=body,
    )
    return headers


def verify(headers: dict[str, str], body: bytes = DOC_FORM, **changes: Any) -> bool:
    arguments: dict[str, Any] = {
        "method": "POST",
        "path": PUSH_PATH,
        "query": {},
        "headers": headers,
        "body": body,
        "app_key": APP_KEY,
        "app_secret": APP_SECRET,
        "now": NOW,
    } | changes
    return verify_push_signature(**arguments)


def test_a_signed_push_verifies() -> None:
    assert verify(signed_push())
    assert verify({name.lower(): value for name, value in signed_push().items()})  # header names in any case
    assert verify(signed_push(), app_secret=APP_SECRET.encode())


def test_the_query_is_covered() -> None:
    headers = signed_push(query=(("b", "2"), ("a", "x y")))
    assert verify(headers, query={"a": "x y", "b": "2"})
    assert verify(headers, query=[("b", "2"), ("a", "x y")])
    assert not verify(headers, query={"a": "x y", "b": "3"})
    assert not verify(headers)


def test_a_call_signed_by_the_client_verifies() -> None:
    env = {**LOCAL_ENV_DEFAULTS, "GLOBESMS_HUAWEI_AUTH": AuthMode.AKSK.value}
    client = HuaweiClient(settings_from_environment(env), clock=lambda: NOW)
    raw = json.dumps({"statusReportList": [FULL]}).encode()
    headers = client.auth_headers(raw)
    assert verify(headers, raw, path="/sms/batchSendDiffSms/v1")
    assert not verify(headers, raw + b" ", path="/sms/batchSendDiffSms/v1")
    client.close()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"body": DOC_FORM.replace(b"DELIVRD", b"UNDELIV")}, False),  # tampered body
        ({"app_secret": "another-secret"}, False),
        ({"app_key": "someoneElse"}, False),
        ({"path": "/Prod/v1/receipts/huawei/other"}, False),
        ({"method": "PUT"}, False),
        ({"now": NOW + timedelta(minutes=14)}, True),
        ({"now": NOW - timedelta(minutes=14)}, True),
        ({"now": NOW + timedelta(minutes=16)}, False),  # stale X-Sdk-Date
        ({"now": NOW - timedelta(minutes=16)}, False),  # from the future
    ],
)
def test_anything_changed_fails(change: dict[str, Any], expected: bool) -> None:
    assert verify(signed_push(), **change) is expected


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: h | {"Host": "evil.example.com"},
        lambda h: h | {"X-Sdk-Date": signer.sdk_date(NOW + timedelta(seconds=1))},
        lambda h: h | {"X-Sdk-Date": "2024-05-01T12:00:00Z"},
        lambda h: h | {"Content-Type": "application/json"},
        lambda h: {k: v for k, v in h.items() if k != "Authorization"},
        lambda h: {k: v for k, v in h.items() if k != "Host"},  # a signed header missing
        lambda h: h | {"Authorization": h["Authorization"].replace("SDK-HMAC-SHA256", "SDK-HMAC-SHA1")},
        lambda h: h | {"Authorization": h["Authorization"][:-1] + ("0" if h["Authorization"][-1] != "0" else "1")},
        lambda h: (
            h | {"Authorization": h["Authorization"].replace("content-type;host;x-sdk-date", "content-type;host")}
        ),
        lambda h: h | {"Authorization": "SDK-HMAC-SHA256 Access=x"},
        lambda h: h | {"Authorization": ""},
    ],
)
def test_tampered_headers_fail(tamper: Any) -> None:
    assert not verify(tamper(signed_push()))


def test_quoted_authorization_values_are_accepted() -> None:
    headers = signed_push()
    auth = headers["Authorization"]
    quoted = auth.replace("Access=", 'Access="').replace(", SignedHeaders=", '", SignedHeaders="')
    quoted = quoted.replace(", Signature=", '", Signature="') + '"'
    assert verify(headers | {"Authorization": quoted})


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["Authorization", "X-Sdk-Date", "Host", "Content-Type"]), st.text(max_size=80)),
    st.binary(max_size=64),
)
def test_arbitrary_headers_never_raise(headers: dict[str, str], body: bytes) -> None:
    assert verify(headers, body) is False


# ------------------------------------------------------------------------------------------------ hypothesis

FIELDS = st.sampled_from(sorted(FULL))
CONTENT_TYPES = st.sampled_from(["", FORM_CONTENT_TYPE, JSON_TYPE, "text/plain"])


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), CONTENT_TYPES)
def test_arbitrary_bytes_only_ever_raise_receipt_body_invalid(raw: bytes, content_type: str) -> None:
    try:
        push = parse_push(raw, content_type)
    except ReceiptBodyInvalid:
        return
    assert push.reports or push.refused_items or raw.lstrip()[:1] == b"{"


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, CONTENT_TYPES)
def test_arbitrary_json_only_ever_raises_receipt_body_invalid(value: Any, content_type: str) -> None:
    with contextlib.suppress(ReceiptBodyInvalid):
        parse_push(json.dumps(value).encode(), content_type)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(FIELDS, FIELD_VALUES, max_size=10), max_size=5))
def test_arbitrary_batch_fields_are_read_or_refused_item_by_item(items: list[dict[str, Any]]) -> None:
    push = parse_push(batch(*items), JSON_TYPE)
    assert len(push.reports) + len(push.refused_items) == len(items)
    for read in push.reports:
        assert read.provider_message_id and read.raw_status
        assert read.part is None or read.parts is None or read.part <= read.parts


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(FIELDS, st.text(max_size=30), max_size=10))
def test_arbitrary_form_fields_are_one_report_one_refusal_or_invalid(fields: dict[str, str]) -> None:
    try:
        push = parse_push(form(fields), FORM_CONTENT_TYPE)
    except ReceiptBodyInvalid:
        assert not fields.get("smsMsgId", "").strip()
        return
    assert len(push.reports) + len(push.refused_items) == 1


@pytest.mark.parametrize(("app_key", "app_secret"), [(APP_KEY, ""), ("", APP_SECRET), ("", "")])
def test_with_push_authentication_on_a_missing_key_or_secret_refuses_every_push(
    app_key: str, app_secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    # An HMAC under an empty secret is one anyone can make: the key travels in every push's Authorization header.
    from globesms.receipts.auth import push_signature_accepted

    headers = {"Content-Type": FORM_CONTENT_TYPE, "Host": PUSH_HOST, "X-Sdk-Date": signer.sdk_date(NOW)}
    headers["Authorization"] = signer.aksk_authorization(
        app_key=app_key, app_secret=app_secret.encode(), method="POST", path=PUSH_PATH, query=(), headers=headers,
        body=DOC_FORM,
    )  # fmt: skip
    env = {
        "GLOBESMS_HUAWEI_RECEIPT_AUTH": "aksk",
        "GLOBESMS_HUAWEI_APP_KEY": app_key,
        "GLOBESMS_HUAWEI_APP_SECRET": app_secret,
    }
    request = {"method": "POST", "path": PUSH_PATH, "query": {}, "headers": headers, "body": DOC_FORM, "now": NOW}
    assert push_signature_accepted(ProviderName.HUAWEI, env, **request) is False
    assert "every Huawei push refused" in caplog.text
    signed = signed_push()
    full = env | {"GLOBESMS_HUAWEI_APP_KEY": APP_KEY, "GLOBESMS_HUAWEI_APP_SECRET": APP_SECRET}
    assert push_signature_accepted(ProviderName.HUAWEI, full, **(request | {"headers": signed})) is True


@pytest.mark.parametrize("left_in_secret", ["none", "", "yes"])
def test_the_credentials_secret_cannot_switch_the_deployed_push_check_off(
    left_in_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the application key and secret are taken from Huawei's credentials secret. Until 2026-12-07 all of it was
    merged over the receipts function's environment, so an older secret still carrying
    GLOBESMS_HUAWEI_RECEIPT_AUTH=none turned HuaweiReceiptAuth=aksk off (unsigned pushes accepted), and an invalid
    value there made every push a 5xx (found by a review)."""
    from globesms import secrets
    from globesms.providers import receipt_environment
    from globesms.receipts.auth import push_signature_accepted

    stored = {
        "globesms/huawei-receipts": {"GLOBESMS_HUAWEI_RECEIPT_TOKEN": "t" * 24},
        "globesms/huawei": {
            "GLOBESMS_HUAWEI_APP_KEY": APP_KEY,
            "GLOBESMS_HUAWEI_APP_SECRET": APP_SECRET,
            "GLOBESMS_HUAWEI_RECEIPT_AUTH": left_in_secret,
        },
    }
    secrets.forget_stored_secrets()
    monkeypatch.setattr(secrets, "read_secret", lambda name, force=False: stored[name])
    env = {
        "GLOBESMS_HUAWEI_RECEIPT_AUTH": "aksk",  # the template's HuaweiReceiptAuth=aksk
        "GLOBESMS_HUAWEI_SECRET_NAME": "globesms/huawei",
        "GLOBESMS_HUAWEI_RECEIPT_SECRET_NAME": "globesms/huawei-receipts",
        "GLOBESMS_TABLE_NAME": "t",
        "GLOBESMS_WEBHOOK_QUEUE_URL": "https://sqs.example/q",
    }
    merged = receipt_environment(ProviderName.HUAWEI, env)
    assert merged["GLOBESMS_HUAWEI_RECEIPT_AUTH"] == "aksk"
    unsigned = {"Content-Type": FORM_CONTENT_TYPE, "Host": PUSH_HOST}
    request = {"method": "POST", "path": PUSH_PATH, "query": {}, "body": DOC_FORM, "now": NOW}
    assert push_signature_accepted(ProviderName.HUAWEI, merged, headers=unsigned, **request) is False
    assert push_signature_accepted(ProviderName.HUAWEI, merged, headers=signed_push(), **request) is True
    secrets.forget_stored_secrets()
