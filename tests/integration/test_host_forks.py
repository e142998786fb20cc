"""local/host_forks.py: function hosts forked from one prestarted interpreter behave as processes of their own
(environment, socket, session, command line, output, exit code) and never outlive the stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local import host_forks
from local.lambda_host import POWERTOOLS_LOCAL_DEFAULTS
from local.processes import ProcessGroup, command_line, is_accepting, poll_until, reserve_port
from local.settings import LOCAL_ENV_DEFAULTS
from local.template import REPO_ROOT, load_template

pytestmark = pytest.mark.skipif(not host_forks.SUPPORTED, reason="hosts are forked on Linux only")

ECHO = [sys.executable, "-m", "tests.integration.forked_echo"]


def test_a_forked_host_gets_its_own_environment_socket_session_and_command_line(
    capfd: pytest.CaptureFixture[str],
) -> None:
    group = ProcessGroup(cwd=REPO_ROOT)
    group.start_host_forks({**os.environ, "FORKED_ECHO_MARKER": "the server's"})
    sock = reserve_port("127.0.0.1", 0)
    try:
        child = group.start("echo", ECHO, {**os.environ, "FORKED_ECHO_MARKER": "the host's"}, sock, fork=True)
        assert child.forked
        assert poll_until(lambda: True if is_accepting(sock) else None, 30), capfd.readouterr()
        said = json.loads(poll_until(lambda: _echo_line(capfd), 10) or "{}")
        assert said["marker"] == "the host's"
        assert said["own_session"] and said["stdin_is_empty"] and said["cwd"] == str(REPO_ROOT)
        # As `python -m` has it: the module's file first, then its arguments (the socket's number added).
        assert said["argv"][0] == str(REPO_ROOT / "tests" / "integration" / "forked_echo.py")
        assert said["argv"][1] == "--listen-fd"
        assert command_line(child.process.pid)[:3] == [sys.executable, "-m", "tests.integration.forked_echo"]
        assert child.process.poll() is None
    finally:
        group.stop_all()
    assert child.process.returncode == -signal.SIGTERM  # the server's report: stop_all sent SIGTERM


def test_an_exit_code_is_reported_and_a_killed_host_is_started_again_on_the_same_socket() -> None:
    group = ProcessGroup(cwd=REPO_ROOT)
    group.start_host_forks(os.environ)
    sock = reserve_port("127.0.0.1", 0)
    try:
        child = group.start("echo", ECHO, dict(os.environ), sock, fork=True)
        first = child.process.pid
        assert poll_until(lambda: True if is_accepting(sock) else None, 30)
        os.kill(first, signal.SIGKILL)
        assert child.process.wait(timeout=10) == -signal.SIGKILL
        assert group.first_exited() is child
        group.restart(child)
        assert child.process.pid != first and child.restarts == 1
        assert child.process.poll() is None
        assert poll_until(lambda: True if is_accepting(sock) else None, 30)
    finally:
        group.stop_all()


def test_the_hosts_end_when_the_server_does(tmp_path: Path) -> None:
    """The runner killed outright: the server gets SIGTERM (it was started like every child), and its hosts get
    SIGTERM as it ends; killed here with SIGKILL, the hardest case."""
    group = ProcessGroup(cwd=REPO_ROOT)
    group.start_host_forks(os.environ)
    sock = reserve_port("127.0.0.1", 0)
    try:
        child = group.start("echo", ECHO, dict(os.environ), sock, fork=True)
        assert poll_until(lambda: True if is_accepting(sock) else None, 30)
        server = group._forks_server
        assert server is not None
        os.kill(server.process.pid, signal.SIGKILL)
        assert child.process.wait(timeout=10) == -1  # ended, and no server left to say how
        assert group.first_exited() is server  # what the runner sees first: it stops the stack
        with pytest.raises((OSError, RuntimeError)):
            group.restart(child)
    finally:
        group.stop_all()


def test_preloading_reads_no_variable_the_stack_sets() -> None:
    """The server imports `PRELOAD` once, with the runner's environment, for every host: an import that read a
    variable the template or the runner sets per function would carry the server's value into each host."""
    script = """
import json, os
reads = set()
class Recording(type(os.environ)):
    def __getitem__(self, key):
        reads.add(key)
        return super().__getitem__(key)
    def __contains__(self, key):
        reads.add(key)
        return super().__contains__(key)
    def get(self, key, default=None):
        reads.add(key)
        return super().get(key, default)
env = os.environ
os.environ = Recording(env._data, env.encodekey, env.decodekey, env.encodevalue, env.decodevalue)
from local import host_forks
reads.clear()
host_forks.preload()
import sys
print(json.dumps({"reads": sorted(reads), "modules": sorted(sys.modules)}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    found = json.loads(done.stdout.splitlines()[-1])
    set_by_the_stack = {*LOCAL_ENV_DEFAULTS, *POWERTOOLS_LOCAL_DEFAULTS}
    for function in load_template().functions.values():
        set_by_the_stack |= set(function.environment)
    assert found["reads"], "the recording saw nothing: it no longer measures"
    assert not set_by_the_stack & set(found["reads"]), sorted(set_by_the_stack & set(found["reads"]))
    assert "globesms.observability" not in found["modules"]  # Logger, Metrics, Tracer: made from a host's env
    assert "app" not in found["modules"]


def _echo_line(capfd: pytest.CaptureFixture[str]) -> str | None:
    out = capfd.readouterr().out
    for line in out.splitlines():
        if line.startswith("echo") and "|" in line:
            return line.split("|", 1)[1].strip()
    time.sleep(0.1)
    return None
