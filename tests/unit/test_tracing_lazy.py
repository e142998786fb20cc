"""globesms.tracing: Powertools' Tracer decorates only when tracing is on, and is not even built otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import _cold_env as cold_env
from globesms.tracing import DISABLED_ENV, LazyTracer, subsegments_on

ROOT = Path(__file__).resolve().parents[2]


def handler(event: dict[str, Any], context: object) -> str:
    return "answered"


@pytest.mark.parametrize(
    ("value", "on"), [(None, True), ("false", True), ("0", True), ("true", False), ("TRUE", False), ("1", False)]
)
def test_the_switch_reads_powertools_own_variable(monkeypatch: pytest.MonkeyPatch, value: str | None, on: bool) -> None:
    if value is None:
        monkeypatch.delenv(DISABLED_ENV, raising=False)
    else:
        monkeypatch.setenv(DISABLED_ENV, value)
    assert subsegments_on() is on


def test_disabled_hands_every_function_back_unchanged_and_builds_no_tracer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DISABLED_ENV, "true")
    tracer = LazyTracer(service="test")
    assert tracer.capture_lambda_handler(handler) is handler
    assert tracer.capture_method(capture_response=False)(handler) is handler
    assert tracer._tracer is None


def test_enabled_decorates_with_the_powertools_tracer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DISABLED_ENV, "false")
    tracer = LazyTracer(service="test")
    decorated = tracer.capture_method(capture_response=False)(handler)
    assert decorated is not handler and decorated.__wrapped__ is handler  # type: ignore[attr-defined]
    assert tracer._tracer is not None
    assert decorated({}, None) == "answered"  # outside Lambda the Tracer is disabled by Powertools itself


def test_a_handler_imported_with_the_template_default_loads_no_xray_sdk() -> None:
    probe = (
        "import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import app; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('aws_xray_sdk'))))"
    )
    dispatch = next(h for h in cold_env.HANDLERS if h.name == "dispatch_aliyun")
    env = {**cold_env.child_env(dispatch.env), DISABLED_ENV: "true"}  # the template's environment, deployed
    loaded = subprocess.run(
        [sys.executable, "-c", probe, str(ROOT / "layers" / "globesms"), str(ROOT / "functions" / "dispatch")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(loaded.stdout.splitlines()[-1]) == []
