"""The fall-back hooks (`globesms.hooks`): the names the AWS wiring installs are the names the logic reads, and a
hook answers what is installed under its name, None while nothing is."""

from __future__ import annotations

import pytest

from globesms import hooks
from globesms.aws import wiring
from globesms.consent import screen
from globesms.routing import route_scores, templates
from globesms.scheduling import hold


def test_the_wiring_installs_exactly_the_hooks_the_logic_reads() -> None:
    readers = {screen: hooks.OPT_OUT_CHECK, route_scores: hooks.SCORE_SOURCE, templates: hooks.TEMPLATE_STORE}
    readers[hold] = hooks.SCHEDULE_DEPS
    assert {module: module._deployed.name for module in readers} == readers  # each reads its own name
    assert hooks.declared == set(readers.values())
    assert {name: hooks.installed[name] for name in hooks.declared} == {
        hooks.TEMPLATE_STORE: wiring.template_store,
        hooks.SCORE_SOURCE: wiring.score_source,
        hooks.OPT_OUT_CHECK: wiring.opt_out_check,
        hooks.SCHEDULE_DEPS: wiring.schedule_deps,
    }


def test_a_hook_answers_its_installed_factory_and_none_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks, "declared", set(hooks.declared))  # the declared names stay the logic's
    hook: hooks.Hook[str] = hooks.Hook("test_only")
    assert hook() is None
    monkeypatch.setitem(hooks.installed, "test_only", lambda: "deployed")
    assert hook() == "deployed"
    assert hooks.install("test_only", lambda: None) is not None
    assert hook() is None
