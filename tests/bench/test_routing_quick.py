"""`make bench` figure "routing" in its quick form (an hour simulated, the degradation at 30 minutes): it runs the
real router, scoring and statistics, and every number is there; the goals are what `make bench` reports."""

from __future__ import annotations

import math

from bench import routing


def test_quick_routing_simulation_measures_the_move_and_the_delivery_rate() -> None:
    moved, delivery = routing.measure(quick=True)

    assert moved.id == "routing.minutes_to_move" and moved.unit == "simulated minutes"
    assert 0 < moved.value <= routing.QUICK_MINUTES - routing.QUICK_MINUTES // 2
    assert moved.ratio == moved.value / routing.GOAL_MINUTES
    detail = moved.detail
    assert detail["messages"] == routing.QUICK_MINUTES * routing.MESSAGES_PER_MINUTE
    # The statistics were really written and read: one update per provider push, one read per simulated minute.
    assert detail["stats_updates"] == detail["receipt_pushes"] and isinstance(detail["receipt_pushes"], int)
    assert detail["receipt_pushes"] > 0
    assert detail["stats_reads"] == routing.QUICK_MINUTES
    before, after = detail["traffic_share_before"], detail["traffic_share_last_10_minutes"]
    assert isinstance(before, dict) and isinstance(after, dict)
    assert before["aliyun"] > 0.5 > after.get("aliyun", 0.0)  # the traffic left the degraded provider

    assert delivery.id == "routing.delivery_vs_hindsight"
    assert delivery.reference is not None and 0 < delivery.value <= 1 and 0 < delivery.reference <= 1
    assert delivery.ratio is not None and math.isclose(
        delivery.ratio, delivery.value / delivery.reference, rel_tol=1e-3
    )
    assert isinstance(moved.goal_met, bool) and isinstance(delivery.goal_met, bool)
