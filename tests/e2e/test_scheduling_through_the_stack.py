"""End to end through `make run`'s stack: a message scheduled ahead is released by the stack itself (the release
queue's delay, SchedulerFunction) at its send_at, never before; a scheduled message canceled before its release
stays CANCELED and never reaches a provider emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e

AHEAD_SECONDS = 10  # any future send_at is allowed; a short one keeps the test short (time for 3 calls first)


def schedule(stack: RunningStack, to: str, send_at: datetime) -> dict[str, Any]:
    answer = stack.api.post("/v1/messages", json={"to": to, "text": "scheduled", "send_at": send_at.isoformat()})
    assert answer.status_code == 202, answer.text
    (message,) = answer.json()["messages"]
    assert message["status"] == "SCHEDULED"
    return dict(message)


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def emulator_keys(stack: RunningStack) -> list[str]:
    keys: list[str] = []
    for provider in ("aliyun", "tencent", "huawei"):
        stats = httpx.get(f"{stack.emulator_url(provider)}/_emulator/stats", timeout=10).json()
        keys += list(stats["sent"])
    return keys


def test_scheduled_is_released_at_send_at_and_canceled_is_never_sent(local_stack: RunningStack) -> None:
    send_at = datetime.now(UTC) + timedelta(seconds=AHEAD_SECONDS)
    kept = schedule(local_stack, "+6591230001", send_at)
    dropped = schedule(local_stack, "+6591230002", send_at)
    canceled = local_stack.api.delete(f"/v1/messages/{dropped['id']}")
    assert (canceled.status_code, canceled.json()["canceled"]) == (200, [dropped["id"]]), canceled.text

    def handed_on() -> dict[str, Any] | None:
        view: dict[str, Any] = local_stack.api.get(f"/v1/messages/{kept['id']}").json()
        return view if view["status"] in ("SUBMITTED", "DELIVERED", "UNDELIVERED", "FAILED") else None

    before = local_stack.api.get(f"/v1/messages/{kept['id']}").json()
    assert before["status"] in ("SCHEDULED", "QUEUED")
    view = local_stack.wait_for("the scheduled message sent", handed_on, deadline_seconds=AHEAD_SECONDS + 90)
    assert view["status"] in ("SUBMITTED", "DELIVERED"), view
    assert parse(view["submitted_at"]) >= send_at  # never before its send_at
    assert parse(view["send_at"]) == parse(kept["send_at"])

    # Its release came and went: the canceled one stayed CANCELED and no emulator ever saw it.
    gone = local_stack.api.get(f"/v1/messages/{dropped['id']}").json()
    assert gone["status"] == "CANCELED"
    keys = emulator_keys(local_stack)
    assert any(kept["id"] in k or "6591230001" in k for k in keys), keys
    assert not any(dropped["id"] in k or "6591230002" in k for k in keys), keys
    late = local_stack.api.delete(f"/v1/messages/{kept['id']}").json()
    assert late["canceled"] == [] and late["not_cancelable"][0]["status"] in ("SUBMITTED", "DELIVERED")
