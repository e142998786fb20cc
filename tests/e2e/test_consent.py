"""End to end through `make run`'s stack: an opt-out by the API and one by a STOP reply the provider emulator pushes
in its own format both block the next MKT message to the number but not an OTP, and the reply reaches the local
webhook receiver as a signed `message.received` event."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e


def send(stack: RunningStack, to: str, kind: str) -> dict[str, Any]:
    answer = stack.api.post("/v1/messages", json={"to": to, "text": f"{kind} text", "type": kind})
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_an_api_opt_out_blocks_mkt_not_otp(local_stack: RunningStack) -> None:
    assert local_stack.api.put("/v1/opt-outs/+85251234567", json={"reason": "e2e"}).status_code == 201
    assert [e["code"] for e in send(local_stack, "+85251234567", "MKT")["errors"]] == ["OPTED_OUT"]
    assert send(local_stack, "+85251234567", "OTP")["accepted"] == 1
    assert local_stack.api.delete("/v1/opt-outs/+85251234567").status_code == 204
    assert send(local_stack, "+85251234567", "MKT")["accepted"] == 1


@pytest.mark.parametrize(
    ("provider", "number", "keyword"), [("aliyun", "+6591234567", "STOP"), ("tencent", "+447911123456", "TD")]
)
def test_a_pushed_stop_reply_blocks_mkt_not_otp_and_reaches_the_customer(
    local_stack: RunningStack, provider: str, number: str, keyword: str
) -> None:
    pushed = httpx.post(
        f"{local_stack.emulator_url(provider)}/_emulator/reply", json={"from": number, "text": keyword}, timeout=30
    )
    assert pushed.status_code == 200 and pushed.json()["status"] == 200, pushed.text
    entry = local_stack.api.get(f"/v1/opt-outs/{number}").json()
    assert (entry["source"], entry["provider"], entry["keyword"]) == ("reply", provider, keyword)
    assert [e["code"] for e in send(local_stack, number, "MKT")["errors"]] == ["OPTED_OUT"]
    assert send(local_stack, number, "OTP")["accepted"] == 1
    replies = local_stack.api.get("/v1/replies").json()["replies"]
    assert any(r["from"] == number and r["keyword"] == keyword for r in replies)

    def event_arrived() -> bool | None:
        events = httpx.get(f"{local_stack.webhook_receiver_url}/_receiver/events", timeout=10).json()["events"]
        found = [e for e in events if e.get("type") == "message.received" and e.get("acknowledged", True)]
        return True if found else None

    local_stack.wait_for("message.received at the webhook receiver", event_arrived, deadline_seconds=30)
