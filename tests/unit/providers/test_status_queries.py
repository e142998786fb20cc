"""What the providers' status queries answer, read (Alibaba QueryMessage, Tencent pulls; reconcile/)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from globesms.domain.status import Status
from globesms.models.receipts import StatusQueryFailed
from globesms.models.records import MessageRecord
from globesms.providers.aliyun import queries as aliyun
from globesms.providers.tencent import TencentSettings, TencentSmsClient
from globesms.providers.tencent import queries as tencent
from globesms.providers.tencent.receipts import parse_push
from globesms.receipts.apply import failure_message


def query_answer(**fields: object) -> bytes:
    return json.dumps({"ResponseCode": "OK", "RequestId": "r", "MessageId": "m-1", **fields}).encode()


@pytest.mark.parametrize(
    ("status", "error_code", "expected"),
    [
        ("1", "DELIVERED", Status.DELIVERED),  # page A: 1 delivered
        ("3", "DELIVERED", Status.DELIVERED),  # page B: 3 delivered; the ErrorCode decides either way
        ("2", "SMSC_REJECT", Status.UNDELIVERED),  # both pages: 2 failed
        ("2", "EXPIRED", Status.EXPIRED),
        ("6", None, Status.EXPIRED),
        ("1", None, None),  # submitted (page B) or delivered (page A): not a verdict
        ("3", None, None),  # delivering (page A) or delivered (page B): not a verdict
        ("9", "SOMETHING", None),
    ],
)
def test_query_message_maps_by_error_code_first(status: str, error_code: str | None, expected: Status | None) -> None:
    answer = aliyun.answer(200, query_answer(Status=status, ErrorCode=error_code), "m-1")
    if expected is None:
        assert answer.pending and answer.report is None
    else:
        assert answer.report is not None and answer.report.status is expected
        assert answer.report.kind == "pulled" and answer.report.error_code == error_code


def test_query_message_ignores_fields_it_does_not_know() -> None:
    body = query_answer(Status="1", ErrorCode="DELIVERED", NewField={"x": 1}, NumberDetail={"Carrier": "c"})
    report = aliyun.answer(200, body, "m-1").report
    assert report is not None and report.status is Status.DELIVERED


@pytest.mark.parametrize(
    ("http_status", "body"),
    [
        (200, b"<html>"),
        (200, b"[]"),
        (200, json.dumps({"ResponseCode": ""}).encode()),
        (200, json.dumps({"ResponseCode": "OK", "Status": {"nested": 1}}).encode()),
        (400, json.dumps({"Code": "SignatureDoesNotMatch", "Message": "x"}).encode()),
        (503, b""),
        (200, b"[" * 100_000 + b"]" * 100_000),  # deeper than the JSON parser goes (RecursionError)
    ],
)
def test_an_unreadable_or_gateway_answer_is_a_failed_query_never_a_status(http_status: int, body: bytes) -> None:
    with pytest.raises(StatusQueryFailed):
        aliyun.answer(http_status, body, "m-1")


def test_an_answer_about_another_message_id_is_no_status_of_this_one() -> None:
    # Applied, it ended our message with another's verdict (a final UNDELIVERED here).
    with pytest.raises(StatusQueryFailed) as failed:
        aliyun.answer(200, query_answer(MessageId="m-2", Status="2", ErrorCode="UNDELIV"), "m-1")
    assert failed.value.code == "ANOTHER_MESSAGE"


def test_a_readable_business_refusal_is_no_status_yet() -> None:
    answer = aliyun.answer(200, json.dumps({"ResponseCode": "MESSAGE_NOT_FOUND"}).encode(), "m-1")
    assert answer.pending


# ------------------------------------------------------------------------------------------------ Tencent


def pulled(**fields: object) -> dict[str, object]:
    return {
        "UserReceiveTime": 1764669600,
        "CountryCode": "65",
        "SubscriberNumber": "91234567",
        "PhoneNumber": "+6591234567",
        "SerialNo": "sn-1",
        "ReportStatus": "FAIL",
        "Description": "carrier rejected",
        "SessionContext": "B.00000",
        **fields,
    }


def pull_body(*statuses: dict[str, object]) -> bytes:
    return json.dumps({"Response": {"PullSmsSendStatusSet": list(statuses), "RequestId": "r"}}).encode()


def test_pulled_statuses_keep_sub_error_and_ignore_unknown_fields() -> None:
    body = pull_body(pulled(SubError="SUB_ROUTE_FAIL", SubErrorDesc="operator route failure", Brand="new"))
    [status] = tencent.pulled_statuses(200, body)
    answer = tencent.answer_for([status], "sn-1")
    report = answer.report
    assert report is not None and report.status is Status.UNDELIVERED
    event = report.event("2026-12-02T10:00:00Z")
    assert (event["sub_error"], event["sub_error_desc"], event["type"]) == (
        "SUB_ROUTE_FAIL",
        "operator route failure",
        "pulled",
    )
    assert failure_message(event) == "carrier rejected (SUB_ROUTE_FAIL: operator route failure)"


def test_a_pull_without_the_message_is_pending_and_a_success_is_delivered() -> None:
    statuses = tencent.pulled_statuses(200, pull_body(pulled(SerialNo="other", ReportStatus="SUCCESS")))
    assert tencent.answer_for(statuses, "sn-1").pending
    delivered = tencent.pulled_statuses(200, pull_body(pulled(ReportStatus="SUCCESS")))
    report = tencent.answer_for(delivered, "sn-1").report
    assert report is not None and report.status is Status.DELIVERED


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        json.dumps({"Response": {"RequestId": "r"}}).encode(),
        json.dumps({"Response": {"Error": {"Code": "FailedOperation.PullModeNotOn", "Message": "x"}}}).encode(),
        pull_body({"SerialNo": "", "ReportStatus": "SUCCESS"}),
    ],
)
def test_an_unreadable_pull_is_a_failed_query(body: bytes) -> None:
    with pytest.raises(StatusQueryFailed):
        tencent.pulled_statuses(200, body)


def test_pushed_receipts_keep_sub_error_too() -> None:
    body = json.dumps(
        [
            {
                "user_receive_time": "2026-12-02 10:00:00",
                "nationcode": "65",
                "mobile": "91234567",
                "report_status": "FAIL",
                "errmsg": "UNDELIV",
                "description": "failed",
                "sid": "sn-1",
                "sub_error": "SUB_1",
                "sub_error_desc": "route",
                "some_future_field": 1,
            }
        ]
    ).encode()
    [report] = parse_push(body).reports
    assert (report.sub_error, report.sub_error_desc, report.status) == ("SUB_1", "route", Status.UNDELIVERED)


def test_the_tencent_query_asks_for_the_number_since_the_send_and_matches_the_serial_no() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, content=pull_body(pulled(ReportStatus="SUCCESS")))

    client = TencentSmsClient(
        TencentSettings(secret_id="AKIDx", secret_key=SecretStr("k"), sdk_app_id="1400000000"),
        http=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    record = MessageRecord.model_validate(
        {
            "id": "B.00000",
            "batch_id": "B",
            "to": "+6591234567",
            "provider": "tencent",
            "type": "OTP",
            "status": "SUBMITTED",
            "template_id": "1",
            "provider_message_id": "sn-1",
            "created_at": "2026-12-02T10:00:00Z",
            "updated_at": "2026-12-02T10:00:00Z",
            "submitted_at": "2026-12-02T10:00:00Z",
        }
    )
    now = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
    answer = client.query_status(record, now=now)
    assert answer.report is not None and answer.report.status is Status.DELIVERED
    submitted = int(datetime(2026, 12, 2, 10, 0, tzinfo=UTC).timestamp())
    assert seen == [
        {
            "BeginTime": submitted - 60,
            "Offset": 0,
            "Limit": 100,
            "PhoneNumber": "+6591234567",
            "SmsSdkAppId": "1400000000",
            "EndTime": int(now.timestamp()),
        }
    ]
