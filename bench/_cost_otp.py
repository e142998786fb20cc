"""The OTP guard's extra AWS requests (docs/guardrails.md, "SMS-pumping protection"), counted on moto: what accept
adds for OTP recipients (velocity per number, pumping per country) on top of the pipeline figure, which sends NOTIFY
and so makes none of them.

Two requests through `otp_guard.screen` with the DynamoDB adapter on a table shaped as template.yaml's: one OTP
recipient (the usual verification code), and one request of many distinct numbers in one country (the largest).
Every request to DynamoDB is counted by operation, with the items it carries (a transaction's items are billed 2
write units each when under 1 KB, as these are).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import boto3
from moto import mock_aws

from globesms.aws.dynamodb_otp import DynamoDBOtpCounters
from globesms.guardrails import otp_guard
from globesms.guardrails.limits import LimitsDoc
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.records import MessageRecord, message_id
from local.aws import create_messages_like_table

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


class _Counting:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: Counter[str] = Counter()
        self.transaction_items = 0

    def __getattr__(self, name: str) -> Any:
        def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            self.transaction_items += len(kwargs.get("TransactItems", []))
            return getattr(self.client, name)(**kwargs)

        return call


def _records(batch_id: str, count: int) -> list[MessageRecord]:
    return [
        MessageRecord(
            id=message_id(batch_id, i),
            batch_id=batch_id,
            to=f"+8525{i:07d}",
            provider=ProviderName.ALIYUN,
            type=MessageType.OTP,
            status="ACCEPTED",
            text="code",
            country="HK",
            created_at="2026-12-03T09:00:00Z",
            updated_at="2026-12-03T09:00:00Z",
        )
        for i in range(count)
    ]


def _one(client: _Counting, table: str, batch_id: str, count: int, limits: LimitsDoc) -> dict[str, Any]:
    client.calls.clear()
    client.transaction_items = 0
    guard = otp_guard.OtpGuard(DynamoDBOtpCounters(table, client_factory=lambda: client))
    refused = otp_guard.screen(
        guard, _records(batch_id, count), limits, batch_id=batch_id, owner=None, now=NOW, expires_at=0
    )
    requests = sum(client.calls.values())
    return {
        "recipients": count,
        "refused": len(refused),
        "requests": dict(client.calls),
        "requests_per_recipient": round(requests / count, 4),
        "transaction_items": client.transaction_items,
    }


def otp_guard_requests(many: int) -> dict[str, Any]:
    """The guard's requests for a one-recipient OTP request and for one of `many` distinct numbers."""
    with mock_aws():  # its own fake credentials
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_messages_like_table(dynamodb)
        client = _Counting(dynamodb)
        # The pumping floor raised so that every recipient of the large request is counted (the costliest case).
        limits = LimitsDoc.model_validate({"version": 1, "pumping": {"floor": many + 1}})
        return {
            "one_otp_recipient": _one(client, "messages", "one", 1, limits),
            "many_otp_recipients": _one(client, "messages", "many", many, limits),
            "note": "only OTP recipients are screened: the pipeline above (NOTIFY) makes none of these requests; "
            "a transaction item is 2 write units (items under 1 KB), the country update 1, the read 0.5 per item; "
            "n recipients to c countries: ceil((n + c) / 100) BatchGetItem + ceil(n / 99) TransactWriteItems + c "
            "UpdateItem (10,000 to one country: 101 + 102 + 1, measured here on fewer: moto is slow with 100-item "
            "transactions)",
        }
