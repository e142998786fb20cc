"""Child processes of the local stack: start them, label their output, wait until they listen, stop them all.

Each child runs in its own session (its own process group), so a Ctrl-C in the terminal reaches only the runner,
which then stops every group it started. Children are also started through this module's `__main__`, which asks
Linux to SIGTERM the child if the runner dies without cleaning up (SIGKILL, a crashed test): no orphans either way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
STOP_GRACE_SECONDS = 5.0


def configure_logging() -> None:
    """How every process of the stack logs (the functions' own Powertools JSON lines are separate)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("botocore", "boto3", "urllib3", "werkzeug"):  # credential and endpoint discovery, access logs
        logging.getLogger(chatty).setLevel(logging.WARNING)


def free_port() -> int:
    """A loopback port nobody listens on right now (the OS picks it; tiny race until the caller binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_line(process: subprocess.Popen[bytes], log_path: Path, line: str, deadline_seconds: float) -> bool:
    """Wait until a started process writes `line` to its log; False when it exits first or time runs out."""
    deadline = time.monotonic() + deadline_seconds
    while line not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def stop_runner(process: subprocess.Popen[bytes], grace_seconds: float) -> None:
    """SIGTERM a runner started in its own session (it stops every process it started), SIGKILL its group after
    `grace_seconds` (its children die with it: PR_SET_PDEATHSIG)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def is_listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[str]
    port: int | None  # what it listens on once ready; None when it has no port
    argv: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    restarts: int = 0

    @property
    def running(self) -> bool:
        return self.process.poll() is None


@dataclass
class ProcessGroup:
    """The runner's children. Output of each is copied to ours, every line prefixed with the child's name."""

    cwd: Path
    children: list[Child] = field(default_factory=list)
    _label_width: int = 24

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str], port: int | None = None) -> Child:
        child = Child(name, self._spawn(argv, env), port, tuple(argv), dict(env))
        self.children.append(child)
        threading.Thread(target=self._copy_output, args=(child,), name=f"output-{name}", daemon=True).start()
        return child

    def restart(self, child: Child) -> None:
        """Start an exited child again with its command line, environment and port (a function host that was
        killed comes back as Lambda starts a new execution environment)."""
        child.process = self._spawn(child.argv, child.env)
        child.restarts += 1
        threading.Thread(target=self._copy_output, args=(child,), name=f"output-{child.name}", daemon=True).start()

    def _spawn(self, argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
        guarded = [sys.executable, "-m", "local.processes", str(os.getpid()), *argv]
        return subprocess.Popen(
            guarded,
            cwd=self.cwd,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )

    def _copy_output(self, child: Child) -> None:
        process = child.process  # this run of the child: a restart copies the next one's output in a new thread
        assert process.stdout is not None
        label = child.name.ljust(self._label_width)
        for line in process.stdout:
            sys.stdout.write(f"{label}| {line}")
            sys.stdout.flush()

    def wait_until_listening(self, timeout: float) -> None:
        """Block until every child with a port accepts connections; raise if one exits or time runs out."""
        deadline = time.monotonic() + timeout
        pending = [c for c in self.children if c.port is not None]
        while pending:
            for child in list(pending):
                if not child.running:
                    raise RuntimeError(f"{child.name} exited with code {child.process.returncode} while starting")
                if child.port is not None and is_listening(child.port):
                    pending.remove(child)
            if pending and time.monotonic() > deadline:
                names = ", ".join(f"{c.name} (port {c.port})" for c in pending)
                raise TimeoutError(f"not listening after {timeout:.0f} s: {names}")
            time.sleep(0.1)

    def first_exited(self) -> Child | None:
        return next((c for c in self.children if not c.running), None)

    def stop_all(self) -> None:
        """SIGTERM every child's process group, then SIGKILL what is still there after a grace period."""
        for child in self.children:
            _signal_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in self.children:
            try:
                child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                _signal_group(child.process.pid, signal.SIGKILL)
                child.process.wait()
        self.children.clear()


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)  # start_new_session=True made the child its group's leader


def _exec_dying_with_parent(parent_pid: int, argv: list[str]) -> None:
    """Become `argv`, arranged to receive SIGTERM when the runner dies (Linux; elsewhere just exec)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the runner died before prctl took effect
            sys.exit(1)
    os.execv(argv[0], argv)  # noqa: S606 - argv is the runner's own command line, no shell involved


if __name__ == "__main__":
    _exec_dying_with_parent(int(sys.argv[1]), sys.argv[2:])
