"""`make bench` figure 7 (OTP latency) in its quick form: the local stack, a few seconds of one-recipient OTP
requests at a low rate beside the floor script. A smoke test of the measurement, never of speed: no latency, ratio
or goal is asserted (this machine is shared and noisy; `make bench` reports the goal). What is asserted holds at
any speed: every request of both kinds reached the emulator and was timed there, and the poller trace covered
every pipeline sample, so each stage of the breakdown has numbers."""

from __future__ import annotations

import math

import pytest

from bench import latency

pytestmark = pytest.mark.e2e


def test_quick_latency_times_every_request_to_the_emulator_beside_the_floor() -> None:
    figures = {f.id: f for f in latency.measure(quick=True)}

    assert set(figures) == {"latency.otp_p50", "latency.otp_p99"}
    expected = latency.QUICK["rate"] * (latency.QUICK["window"] // latency.QUICK["block"]) * latency.QUICK["block"]
    for figure in figures.values():
        assert figure.unit == "ms"
        assert math.isfinite(figure.value) and figure.value > 0
        assert figure.reference is not None and math.isfinite(figure.reference) and figure.reference > 0
        assert figure.ratio == pytest.approx(figure.value / figure.reference)
        assert figure.goal_op == "<=" and figure.goal_value == latency.GOAL_RATIO
        assert isinstance(figure.goal_met, bool)
    detail = figures["latency.otp_p99"].detail
    assert detail["samples"] == {"pipeline": expected, "floor": expected}
    assert detail["traced_samples"] == expected
    assert detail["function_hosts_per_function"] == latency.QUICK["hosts"]
    assert detail["warm_up"]["dispatch_hosts"] == latency.QUICK["hosts"]
    assert 1 <= detail["warm_up"]["rounds"] <= latency.WARMUP_ROUNDS
    assert figures["latency.otp_p50"].value <= figures["latency.otp_p99"].value
    stages = detail["pipeline_stages_ms"]
    assert set(stages) == {"accept", "queue_wait", "hand_off", "dispatch", "invocation", "answer"}
    assert set(detail["floor_steps_ms"]) == {"put_item", "send_message", "receive_message", "provider_call"}
    for timings in [*stages.values(), *detail["floor_steps_ms"].values()]:
        assert timings["p50"] <= timings["p99"]
    # The machine's load beside its cores: the stack's CPU per request at the figure's rate.
    cpu_per_request = sum(detail["cpu_ms_per_pipeline_request"].values())
    assert cpu_per_request > 0
    assert detail["machine_cores"] >= 1
    assert detail["stack_cores_busy_at_rate"] == pytest.approx(cpu_per_request * latency.QUICK["rate"] / 1000, abs=0.05)
