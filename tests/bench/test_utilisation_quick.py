"""`make bench` figure 5 (provider utilisation) in its quick form: the local stack, limits of 1 call/s, a few
seconds of queued load. A smoke test of the measurement, never of speed: the share of the ceiling is not asserted
(this machine is shared and noisy; `make bench` reports the goal). What is asserted holds at any speed: every
provider sent, nothing was throttled and no second went over a limit."""

from __future__ import annotations

import math

import pytest

from bench import utilisation

pytestmark = pytest.mark.e2e


def test_quick_utilisation_measures_every_provider_within_its_limits() -> None:
    figures = {f.id: f for f in utilisation.measure(quick=True)}

    assert set(figures) == {
        "utilisation.recipients_per_second",
        "utilisation.throttled",
        "utilisation.seconds_over_limit",
    }
    rate = figures["utilisation.recipients_per_second"]
    assert rate.reference == sum(utilisation.ceiling().values()) == 1_701
    assert math.isfinite(rate.value) and rate.value >= 0
    assert rate.ratio == pytest.approx(rate.value / rate.reference, abs=1e-3)
    detail = rate.detail
    assert detail["load_sustained"], detail["per_provider"]
    # Every provider sent (over the run: on a loaded machine a provider's dispatchers, resumed from a pause, may
    # reach their first call only after the short window, which the figure then honestly reports).
    for provider, measured in detail["per_provider"].items():
        assert measured["recipients_in_run"] > 0, provider
    assert figures["utilisation.throttled"].value == 0, figures["utilisation.throttled"].detail
    assert figures["utilisation.seconds_over_limit"].value == 0, figures["utilisation.seconds_over_limit"].detail
    assert figures["utilisation.throttled"].goal_met and figures["utilisation.seconds_over_limit"].goal_met
