"""`HistoryStep` writes exactly the entries that were written by hand before it (records and packs unchanged)."""

from __future__ import annotations

import json

from globesms.accept.queries import history
from globesms.domain.history import HistoryStep
from globesms.domain.status import Status
from globesms.models.outbound import ProviderName
from globesms.models.records import MessageRecord
from globesms.receipts.implied_status import implied_status

AT = "2026-01-02T03:04:05.000Z"


def record_with(events: list[dict[str, object]], **fields: object) -> MessageRecord:
    """A record of one recipient with these stored events (and any field changed)."""
    base: dict[str, object] = {
        "id": "m1",
        "batch_id": "b1",
        "to": "+8613800000000",
        "type": "NOTIFY",
        "text": "hi",
        "provider": ProviderName.TENCENT,
        "status": Status.SENDING,
        "created_at": AT,
        "updated_at": AT,
    }
    return MessageRecord.model_validate({**base, **fields, "events": events})


def test_each_step_serialises_to_the_shape_stored_before() -> None:
    # The dicts below are the literals the dispatcher wrote before `HistoryStep` (dispatch/service.py,
    # dispatch/unknown_outcomes.py twice, dispatch/failover.py), key order included.
    cases = [
        (
            HistoryStep("sending", Status.SENDING, "READ_TIMEOUT", AT),
            {"id": "sending", "type": "status", "status": "SENDING", "error_code": "READ_TIMEOUT", "received_at": AT},
        ),
        (
            HistoryStep("resend-after-unknown-outcome", Status.SENDING, "UNKNOWN_OUTCOME_EXPIRED", AT),
            {
                "id": "resend-after-unknown-outcome",
                "type": "status",
                "status": "SENDING",
                "error_code": "UNKNOWN_OUTCOME_EXPIRED",
                "received_at": AT,
            },
        ),
        (
            HistoryStep("unknown-outcome-expired", Status.FAILED, "UNKNOWN_OUTCOME_EXPIRED", AT),
            {
                "id": "unknown-outcome-expired",
                "type": "status",
                "status": "FAILED",
                "error_code": "UNKNOWN_OUTCOME_EXPIRED",
                "received_at": AT,
            },
        ),
        (
            HistoryStep("failover-aliyun", Status.QUEUED, "CIRCUIT_OPEN", AT, provider=ProviderName.ALIYUN),
            {
                "id": "failover-aliyun",
                "type": "status",
                "status": "QUEUED",
                "provider": "aliyun",
                "error_code": "CIRCUIT_OPEN",
                "received_at": AT,
            },
        ),
    ]
    for step, before in cases:
        item = step.to_item()
        assert item == before
        assert json.dumps(item) == json.dumps(before)  # same key order: same pack bodies on SQS
        assert all(type(value) is str for value in item.values())  # plain strings, not enums, in DynamoDB


def test_receipts_ignore_our_steps_and_the_api_shows_them_as_status_events() -> None:
    failover = HistoryStep("failover-aliyun", Status.QUEUED, "CONFIG", AT, provider=ProviderName.ALIYUN).to_item()
    sending = HistoryStep("sending", Status.SENDING, "READ_TIMEOUT", AT).to_item()
    assert implied_status([failover, sending]) is None
    record = record_with([failover, sending])
    shown = history(record)[1:]
    assert [(e.type, e.status, e.error_code, e.at) for e in shown] == [
        ("status", Status.QUEUED, "CONFIG", AT),
        ("status", Status.SENDING, "READ_TIMEOUT", AT),
    ]


def test_the_first_attempts_submit_step_has_no_error_code() -> None:
    step = HistoryStep("first-attempt-submitted", Status.SUBMITTED, None, AT, provider=ProviderName.ALIYUN)
    assert step.to_item() == {
        "id": "first-attempt-submitted",
        "type": "status",
        "status": "SUBMITTED",
        "provider": "aliyun",
        "received_at": AT,
    }


def test_the_api_shows_a_history_oldest_first_whatever_order_it_was_stored_in() -> None:
    """A record resent after an UNDELIVERED receipt (as the stack wrote it before the first attempt's SUBMITTED was
    kept): the resend's submitted_at is later than the stored receipt and step, and those of one instant keep their
    stored order."""
    events = [
        {"id": "r1", "type": "receipt", "status": "UNDELIVERED", "received_at": "2026-12-07T04:01:43.439539Z"},
        HistoryStep(
            "receipt-failover", Status.QUEUED, "ROUTE_FAILURE", "2026-12-07T04:01:43.439539Z", ProviderName.TENCENT
        ).to_item(),
        {"id": "r2", "type": "receipt", "status": "DELIVERED", "received_at": "2026-12-07T04:01:46.541089Z"},
    ]
    record = record_with(
        events,
        type="OTP",
        provider=ProviderName.HUAWEI,
        status=Status.DELIVERED,
        created_at="2026-12-07T04:01:40.204017Z",
        updated_at="2026-12-07T04:01:46.541089Z",
        submitted_at="2026-12-07T04:01:43.483910Z",
    )
    assert [(e.type, e.status) for e in history(record)] == [
        ("status", Status.ACCEPTED),
        ("receipt", Status.UNDELIVERED),
        ("status", Status.QUEUED),
        ("status", Status.SUBMITTED),
        ("receipt", Status.DELIVERED),
    ]
