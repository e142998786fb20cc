"""Our status-query clients against the emulators (in process): Alibaba QueryMessage, Tencent's pulls, and the
knobs that withhold receipts or make them UNDELIVERED with a carrier code."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from globesms.domain.status import Status
from globesms.models.outbound import MessageType, OutboundSms
from globesms.models.receipts import StatusQueryFailed
from globesms.models.records import MessageRecord
from globesms.providers.aliyun import AliyunClient, AliyunSettings
from globesms.providers.tencent import TencentSettings, TencentSmsClient
from local.emulators import aliyun as aliyun_emulator
from local.emulators import tencent as tencent_emulator
from local.emulators.common import EmulatorState, Knobs
from local.settings import LOCAL_ENV_DEFAULTS


def aliyun_client(app: object) -> AliyunClient:
    settings = AliyunSettings(
        endpoint="http://dysmsapi.emulator",
        access_key_id=LOCAL_ENV_DEFAULTS["GLOBESMS_ALIYUN_ACCESS_KEY_ID"],
        access_key_secret=LOCAL_ENV_DEFAULTS["GLOBESMS_ALIYUN_ACCESS_KEY_SECRET"],
    )
    return AliyunClient(settings, http=httpx.Client(transport=httpx.WSGITransport(app=app)))  # type: ignore[arg-type]


def tencent_client(app: object) -> TencentSmsClient:
    settings = TencentSettings.from_environment(LOCAL_ENV_DEFAULTS | {"GLOBESMS_TENCENT_ENDPOINT": "http://t.emulator"})
    return TencentSmsClient(settings, http=httpx.Client(transport=httpx.WSGITransport(app=app)))  # type: ignore[arg-type]


def record_of(provider: str, to: str, pmid: str, message_id: str = "B.00000") -> MessageRecord:
    stamp = datetime.now(UTC).isoformat()
    return MessageRecord.model_validate(
        {
            "id": message_id,
            "batch_id": "B",
            "to": to,
            "provider": provider,
            "type": "OTP",
            "status": "SUBMITTED",
            "text": "code",
            "provider_message_id": pmid,
            "created_at": stamp,
            "updated_at": stamp,
            "submitted_at": stamp,
        }
    )


@pytest.mark.parametrize(
    ("mix", "code", "expected", "error_code"),
    [
        ({"DELIVERED": 1.0}, None, Status.DELIVERED, "DELIVERED"),
        ({"UNDELIVERED": 1.0}, "ROUTE_FAILURE", Status.UNDELIVERED, "ROUTE_FAILURE"),
    ],
)
def test_query_message_answers_the_outcome_of_a_withheld_receipt(
    mix: dict[str, float], code: str | None, expected: Status, error_code: str
) -> None:
    app = aliyun_emulator.create_app(
        Knobs(receipt_mix=mix, receipt_withhold_rate=1.0, undelivered_code=code, receipt_callback_url=None)
    )
    client = aliyun_client(app)
    [outcome] = client.send([OutboundSms("B.00000", "+6591234567", text="code 1", type=MessageType.OTP)])
    assert outcome.provider_message_id
    answer = client.query_status(record_of("aliyun", "+6591234567", outcome.provider_message_id), now=datetime.now(UTC))
    assert answer.report is not None
    assert (answer.report.status, answer.report.error_code) == (expected, error_code)


def test_query_message_says_still_delivering_when_asked_to_and_refuses_an_unknown_id() -> None:
    app = aliyun_emulator.create_app(Knobs(receipt_withhold_rate=1.0, status_query_answers="pending"))
    client = aliyun_client(app)
    [outcome] = client.send([OutboundSms("B.00000", "+6591234567", text="code 1", type=MessageType.OTP)])
    assert outcome.provider_message_id
    assert client.query_message(outcome.provider_message_id).pending
    assert client.query_message("no-such-id").pending  # a readable refusal: no status


def test_query_message_counts_as_its_own_operation_and_is_signed() -> None:
    app = aliyun_emulator.create_app(Knobs(rate_limits={"QueryMessage": 1}))
    state: EmulatorState = app.extensions[aliyun_emulator.STATE_KEY]
    client = aliyun_client(app)
    client.query_message("x")
    with pytest.raises(StatusQueryFailed):  # throttled in the same second: a failed query, never a status
        for _ in range(3):
            client.query_message("x")
    assert "QueryMessage" in state.ledger.snapshot()["calls_per_second"]


def test_tencent_pulls_find_a_withheld_status_by_number_with_its_sub_error() -> None:
    app = tencent_emulator.create_app(
        Knobs(
            rate_limits={"SendMultiGlobalSms": 0},
            receipt_mix={"UNDELIVERED": 1.0},
            receipt_withhold_rate=1.0,
            undelivered_code="SUB_ROUTE_FAILURE",
        )
    )
    client = tencent_client(app)
    [outcome] = client.send([OutboundSms("B.00000", "+6591234567", template_id="1800308", template_params=("1",))])
    assert outcome.provider_message_id
    record = record_of("tencent", "+6591234567", outcome.provider_message_id)
    answer = client.query_status(record, now=datetime.fromtimestamp(time.time() + 5, UTC))
    assert answer.report is not None and answer.report.status is Status.UNDELIVERED
    assert (answer.report.sub_error, answer.report.error_code) == ("SUB_ROUTE_FAILURE", "SUB_ROUTE_FAILURE")
    [pulled] = client.pull_status()
    assert pulled.serial_no == outcome.provider_message_id
    assert client.pull_status() == []  # each status is pulled once


def test_tencent_pulls_are_empty_for_withheld_statuses_when_asked_to_be() -> None:
    app = tencent_emulator.create_app(
        Knobs(rate_limits={"SendMultiGlobalSms": 0}, receipt_withhold_rate=1.0, status_query_answers="pending")
    )
    client = tencent_client(app)
    [outcome] = client.send([OutboundSms("B.00000", "+6591234567", template_id="1800308", template_params=("1",))])
    assert outcome.provider_message_id
    record = record_of("tencent", "+6591234567", outcome.provider_message_id)
    assert client.query_status(record, now=datetime.fromtimestamp(time.time() + 5, UTC)).pending
