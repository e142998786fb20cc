"""End to end: a message's receipt, pushed by the Alibaba emulator, is counted in the route statistics and shown by
GET /v1/stats/routes (docs/routing-scores.md). Its own local stack (module scope)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import RunningStack
from tests.e2e.test_receipts_and_webhooks import default_knobs, final, receipt_urls, send

pytestmark = pytest.mark.e2e
__all__ = ["default_knobs", "receipt_urls"]  # the receipts module's fixtures: emulators push receipts to this stack


def route_stats(stack: RunningStack, **query: str) -> Any:
    response = stack.api.get("/v1/stats/routes", params=query)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_delivered_receipt_shows_in_the_route_statistics(local_stack: RunningStack) -> None:
    before = route_stats(local_stack, country="HK", window="15m")
    assert before["providers"] == []
    view = final(local_stack, send(local_stack, "aliyun"))

    def counted() -> Any | None:
        # The receipts function writes the statistics just after the record's final status, so a poll that saw the
        # status may come before them.
        shown = route_stats(local_stack, country="HK", window="15m", type="NOTIFY")
        return shown if shown["providers"] else None

    shown = local_stack.wait_for("the route statistics to count the final status", counted, deadline_seconds=30)
    (aliyun,) = shown["providers"]
    assert (aliyun["provider"], aliyun["sent"]) == ("aliyun", 1)
    assert aliyun["delivered"] == (1 if view["status"] == "DELIVERED" else 0)
    assert aliyun["median_receipt_seconds"] is not None
    refused = local_stack.api.get("/v1/stats/routes", params={"country": "HK", "window": "3d"})
    assert refused.status_code == 422 and "window" in refused.text
