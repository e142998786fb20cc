"""The `globesms` command line against the local stack: a real process (`python -m tools.cli`, as the console
script runs it) sending through the API, then following the message and the batch to their final statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from globesms.domain.status import FINAL_STATUSES
from local.processes import free_port
from local.template import REPO_ROOT
from tests.e2e.conftest import API_KEY, RunningStack
from tools.cli.common import ExitCode

pytestmark = pytest.mark.e2e

MOBILES = ["+85251234567", "+6591234567"]
# A deadline for a command that should have ended long before (a hung watch fails the test instead of the run).
COMMAND_DEADLINE_SECONDS = 180


def globesms(stack: RunningStack, *args: str, api_key: str = API_KEY) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GLOBESMS_API_URL": stack.api_url,
        "GLOBESMS_API_KEY": api_key,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "layers" / "globesms"), str(REPO_ROOT)]),
    }
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_DEADLINE_SECONDS,
        check=False,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == ExitCode.OK, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def test_send_then_status_then_watch_the_batch_to_final_statuses(local_stack: RunningStack) -> None:
    sent = as_json(globesms(local_stack, "send", *MOBILES, "--text", "hello from the command line", "--json"))
    assert (sent["accepted"], sent["rejected"], sent["error"]) == (2, 0, None)
    [batch] = sent["batches"]
    first = batch["messages"][0]["id"]

    status = as_json(globesms(local_stack, "status", first, "--json"))
    assert (status["id"], status["batch_id"], status["to"]) == (first, batch["batch_id"], MOBILES[0])

    watched = as_json(globesms(local_stack, "batch", batch["batch_id"], "--watch", "--interval", "0.5", "--json"))
    assert watched["final"] is True
    assert sum(watched["counts"].values()) == 2
    assert all(status in FINAL_STATUSES for status in watched["counts"])

    after = as_json(globesms(local_stack, "status", first, "--json"))
    assert after["status"] in FINAL_STATUSES
    listed = as_json(globesms(local_stack, "batch", batch["batch_id"], "--messages", "--page-size", "1", "--json"))
    assert sorted(m["to"] for m in listed["messages"]) == sorted(MOBILES)  # two pages through `next`

    text = globesms(local_stack, "batch", batch["batch_id"], "--watch")  # the live table ends as well
    assert text.returncode == ExitCode.OK and "final 2/2" in text.stdout


def test_a_csv_send_run_twice_is_sent_once(local_stack: RunningStack, tmp_path: Path) -> None:
    recipients = tmp_path / "recipients.csv"
    recipients.write_text("to,code\n+85251234567,111111\n+6591234567,222222\n+447911123456,333333\n")
    args = ["send", "--file", str(recipients), "--template", "example-otp", "--param", "minutes=5", "--json"]
    first = as_json(globesms(local_stack, *args))
    again = as_json(globesms(local_stack, *args))
    assert (first["accepted"], first["rejected"]) == (3, 0)
    assert [b["replayed"] for b in first["batches"]] == [False]
    assert [b["replayed"] for b in again["batches"]] == [True]
    assert again["batches"][0]["batch_id"] == first["batches"][0]["batch_id"]
    assert [m["line"] for m in first["batches"][0]["messages"]] == [2, 3, 4]


def test_exit_codes_for_a_refusal_and_for_no_api(local_stack: RunningStack) -> None:
    refused = globesms(local_stack, "send", MOBILES[0], "--text", "hi", "--json", api_key="not-the-key")
    assert refused.returncode == ExitCode.REFUSED
    assert json.loads(refused.stdout)["error"]["status"] == 403
    missing = globesms(local_stack, "status", "no-such-batch.00000", "--json")
    assert missing.returncode == ExitCode.REFUSED
    nobody = globesms(local_stack, "batch", "x", "--api-url", f"http://127.0.0.1:{free_port()}", "--json")
    assert nobody.returncode == ExitCode.UNAVAILABLE
    assert json.loads(nobody.stdout)["error"]["kind"] == "unavailable"
