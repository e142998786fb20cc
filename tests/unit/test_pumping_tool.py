"""tools/pumping.py's view of a country, against counts given as the OTP counters read them (no table)."""

from __future__ import annotations

from typing import Any

import pytest

from globesms import config
from globesms.guardrails import pumping as rule
from globesms.guardrails.documents import DocumentUnavailable
from globesms.guardrails.limits import LimitsDoc, current_limits
from globesms.guardrails.ports import CountryCounts
from tools import pumping

NOW = 1_800_000_000


class Counters:
    """What `status` reads of DynamoDBOtpCounters: the counts of the countries asked for."""

    def __init__(self, counts: CountryCounts) -> None:
        self.counts = counts

    def read(self, numbers: list[str], countries: list[str]) -> tuple[dict[str, Any], dict[str, CountryCounts]]:
        return {}, {country: self.counts for country in countries}


@pytest.mark.parametrize(("recent", "held"), [(19, False), (20, True), (21, True)])
def test_held_is_the_guard_s_verdict(recent: int, held: bool) -> None:
    """No baseline: the floor, 20, is the threshold, and the guard lets through at most 20 in the window. At 20 it
    refuses the next OTP (FRAUD_SUSPECTED) while `status` said "held": false (a reviewer's finding)."""
    counts = CountryCounts(minutes={rule.minute_of(NOW): recent})
    assert (rule.verdict("HK", counts, current_limits().pumping, NOW).allowance == 0) is held
    shown = pumping.status(Counters(counts), "HK", NOW)  # type: ignore[arg-type]
    assert shown["recent"] == recent and shown["threshold"] == "20" and shown["held"] is held


def test_a_released_country_is_not_held() -> None:
    counts = CountryCounts(minutes={rule.minute_of(NOW): 500}, released_until=NOW + 60)
    assert pumping.status(Counters(counts), "HK", NOW)["held"] is False  # type: ignore[arg-type]


def test_a_prefix_the_limits_do_not_list_is_refused_before_anything_is_written(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A number under a prefix pumping.prefixes does not list counts in its country: `release +852` wrote a release
    of a unit nobody counts and reported success while HK stayed held (a reviewer's finding)."""
    watched = LimitsDoc.model_validate({"version": 1, "pumping": {"prefixes": ["+4470"]}})
    monkeypatch.setattr(pumping, "current_limits", lambda: watched)
    monkeypatch.setattr(pumping, "_run", lambda arguments: pytest.fail("reached the table"))
    monkeypatch.setenv("GLOBESMS_GUARDRAILS_PARAMETERS", "/globesms/guardrails")  # the deployed limits
    config.settings.cache_clear()
    for action in ("release", "status"):
        with pytest.raises(SystemExit) as exited:
            pumping.main([action, "+852", "--table", "T"])
        assert exited.value.code == 2
        assert "+852 is not in the limits' pumping.prefixes (+4470; read from" in capsys.readouterr().err
    assert pumping.unlisted_prefix("+4470") is None and pumping.unlisted_prefix("HK") is None
    monkeypatch.undo()  # the shipped limits list no prefix
    config.settings.cache_clear()
    shipped = str(pumping.unlisted_prefix("+852"))  # and how to read the deployed ones instead
    assert "pumping.prefixes (none; read from the shipped limits.json; GLOBESMS_GUARDRAILS_PARAMETERS=" in shipped


def test_without_the_deployed_limits_an_unlisted_prefix_is_only_warned_about(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped file need not be what the stack runs with: an emergency release is not blocked by it."""
    monkeypatch.delenv("GLOBESMS_GUARDRAILS_PARAMETERS", raising=False)
    config.settings.cache_clear()
    ran: list[str] = []
    monkeypatch.setattr(pumping, "_run", lambda arguments: ran.append(arguments.country) or {"country": "+852"})
    assert pumping.main(["release", "+852", "--table", "T"]) == 0
    assert ran == ["+852"]
    assert "pumping: warning: country: +852 is not in the limits' pumping.prefixes" in capsys.readouterr().err


def test_a_prefix_is_not_checked_when_the_limits_cannot_be_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable() -> LimitsDoc:
        raise DocumentUnavailable("limits.json")

    monkeypatch.setattr(pumping, "current_limits", unreadable)
    assert pumping.unlisted_prefix("+852") is None  # a release in an emergency need not wait for SSM
