from datetime import UTC, datetime

import pytest

from globesms.domain.status import FINAL_STATUSES, Status
from globesms.models.records import MessageRecord
from globesms.webhooks.events import status_event
from globesms.webhooks.signing import sign, verify

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def record(status: Status, **extra: object) -> MessageRecord:
    return MessageRecord.model_validate(
        {
            "id": "B.00003",
            "batch_id": "B",
            "to": "+85251234567",
            "provider": "tencent",
            "type": "OTP",
            "status": status,
            "template_id": "1234567",
            "status_callback": "https://hooks.example.com/sms",
            "created_at": "2026-11-26T09:59:00Z",
            "updated_at": "2026-11-26T10:00:00Z",
            **extra,
        }
    )


@pytest.mark.parametrize("status", sorted(FINAL_STATUSES))
def test_every_final_status_yields_one_stable_signed_event(status: Status) -> None:
    delivery = status_event(record(status), NOW)
    assert delivery is not None
    name = status.value.lower()
    assert (delivery.event.id, delivery.event.type) == (f"B.00003.{name}", f"message.{name}")
    assert delivery.event.message["status"] == status.value
    assert status_event(record(status), NOW) == delivery  # the same status always yields the same event
    body = delivery.event.model_dump_json().encode()
    header = sign("s3cret", 1_795_000_000, body)
    assert verify("s3cret", header, body, now=1_795_000_010)


@pytest.mark.parametrize("status", [Status.ACCEPTED, Status.QUEUED, Status.SENDING, Status.SUBMITTED])
def test_progress_statuses_yield_nothing_unless_submitted_was_asked_for(status: Status) -> None:
    assert status_event(record(status), NOW) is None
    asked = status_event(record(status, status_callback_on_submitted=True), NOW)
    assert (asked is not None) is (status is Status.SUBMITTED)


def test_no_callback_no_event() -> None:
    assert status_event(record(Status.DELIVERED, status_callback=None), NOW) is None
