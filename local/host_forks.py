"""Function hosts (and the provider emulators) forked from one interpreter that has already imported what they import.

A fresh `python -m local.lambda_host <LogicalId>` spends ~0.9 s of CPU before it serves: the interpreter, boto3,
pydantic and the layer's models, Powertools, httpx, phonenumbers. A stack has ten of them, and `make test` starts
about fifteen stacks, two at a time on two cores. So the runner starts this module once (`python -m
local.host_forks --control-fd N`), which imports those modules (`PRELOAD`: none of them reads the environment when
imported, a test holds it to that) and then forks one host per request; a forked host serves after ~0.25 s of
CPU. A host still behaves as one started on its own (`python -m local.lambda_host`, run by runpy in the child):
- its own session (the runner signals its process group), and SIGTERM if this process dies (PR_SET_PDEATHSIG;
  this process itself gets SIGTERM when the runner dies, as every child of the runner does);
- the environment, working directory and socket the runner gives it, its output on a pipe the runner copies;
- its command line in `ps` and /proc/<pid>/cmdline (setproctitle), which tools and tests find hosts by.

Why not multiprocessing's forkserver: it hands every child the server's keep-alive descriptor, so the server, and
every host, would outlive a runner killed with SIGKILL, and it runs the parent's `__main__` again in each child.

The protocol, on a SOCK_SEQPACKET socket pair (one message per datagram): the runner sends
`{"argv": [...], "env": {...}, "cwd": "..."}` with the host's output pipe and listening socket attached
(SCM_RIGHTS); this process answers `{"started": pid}`, and `{"exited": pid, "code": n}` when it reaps the host
(n < 0: killed by signal -n, as subprocess says it). Linux only (prctl, pidfd): elsewhere hosts are started as
processes of their own (local/processes.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import queue
import runpy
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from typing import IO, Any

import setproctitle  # the local stack's own dependency (pyproject's dev extra), never the layer's

from local.parent_link import LISTEN_FD_OPTION, die_with_parent
from local.template import REPO_ROOT


def _pidfds_work() -> bool:
    """Linux with pidfd_open (5.3 and later), which `ForkedProcess` learns a host's end from."""
    if not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # an older kernel (ENOSYS), or a sandbox that forbids it
        return False
    return True


SUPPORTED = _pidfds_work()
CONTROL_FD_OPTION = "--control-fd"
REQUEST_BYTES = 1 << 20  # a fork request: a host's environment fits many times over
REPORT_BYTES = 256  # a report: {"exited": pid, "code": n}
#: How long the runner waits, once a host has ended, for the server's report of how (it reaps, then writes).
REPORT_WAIT_SECONDS = 5
START_ANSWER_SECONDS = 30  # the server answers a fork request at once; only a server gone or stuck takes longer
#: What every function host imports that reads no environment variable when imported (the Powertools Logger,
#: Metrics and Tracer read theirs when created, in globesms.observability, which is not here: each host creates
#: them from its own environment).
PRELOAD = (
    "local.lambda_host",
    "boto3",
    "httpx",
    "phonenumbers",
    "pydantic",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.utilities.data_classes",
    "globesms.models.views",
    "globesms.models.limits",
    "globesms.models.records",
    "globesms.models.packs",
    "globesms.models.receipts",
    "globesms.models.webhooks",
    "local.emulators.common",  # the provider emulators are forked too: Flask, werkzeug
)
#: Where `PRELOAD`'s globesms modules come from: the layer's content, as the template's functions have it.
LAYER_DIR = str(REPO_ROOT / "layers" / "globesms")


# ---------------------------------------------------------------------------------------------------------------
# This process: preload, then fork a host per request and report each one's end


def preload(modules: Sequence[str] = PRELOAD) -> None:
    if LAYER_DIR not in sys.path:
        sys.path.insert(0, LAYER_DIR)
    for name in modules:
        importlib.import_module(name)


def serve(control: socket.socket) -> None:
    """Fork a host per request until the runner closes its end; report every host that ends."""
    wake_reader, wake_writer = socket.socketpair()
    wake_writer.setblocking(False)
    signal.set_wakeup_fd(wake_writer.fileno())
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup descriptor is written
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_reader, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is wake_reader:
                wake_reader.recv(4096)
                _report_ended(control)
                continue
            message, fds, _, _ = socket.recv_fds(control, REQUEST_BYTES, 2)
            if not message:
                return  # the runner is gone, or stopping: the hosts get SIGTERM as this process ends
            pid = _fork_host(json.loads(message), fds, closing=[selector, control, wake_reader, wake_writer])
            control.send(json.dumps({"started": pid}).encode())


def _report_ended(control: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        control.send(json.dumps({"exited": pid, "code": os.waitstatus_to_exitcode(status)}).encode())


def _fork_host(
    request: Mapping[str, Any], fds: list[int], *, closing: Sequence[socket.socket | selectors.BaseSelector]
) -> int:
    output, listen_fd = fds
    server_pid = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.close(output)
        os.close(listen_fd)
        return pid
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for held in closing:
            held.close()
        code = _run_host(request, output, listen_fd, server_pid)
    except BaseException:  # whatever happens, this process must not return into the server loop
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _run_host(request: Mapping[str, Any], output: int, listen_fd: int, server_pid: int) -> int:
    """In the forked child: become the host `request` describes, run it, return its exit code."""
    os.setsid()
    if not die_with_parent(server_pid):
        return 1
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    argv: list[str] = [*request["argv"], LISTEN_FD_OPTION, str(listen_fd)]
    _set_title(argv)
    if argv[1:2] != ["-m"]:
        raise ValueError(f"a forked host runs a module (python -m ...), not {argv}")
    sys.argv = [argv[2], *argv[3:]]
    # Run as `python -m` would: the module once, as __main__. Its copy preloaded here (for what it imports) would
    # make runpy warn at every host's start ("found in sys.modules ... unpredictable behaviour") and leave a second
    # copy of its globals beside __main__'s.
    sys.modules.pop(argv[2], None)
    try:
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    return 0


def _set_title(argv: Sequence[str]) -> None:
    setproctitle.setproctitle(" ".join(argv))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(CONTROL_FD_OPTION, type=int, required=True, help="the runner's SOCK_SEQPACKET socket")
    args = parser.parse_args(argv)
    control = socket.socket(fileno=args.control_fd)
    # setproctitle makes room for longer titles on its first call (it moves the environment away from the end of
    # the command line): here, while the environment is the one this process started with, not in a host that
    # has replaced it.
    _set_title([sys.executable, "-m", "local.host_forks", *sys.argv[1:]])
    preload()
    serve(control)


# ---------------------------------------------------------------------------------------------------------------
# The runner's side


class ForkedProcess:
    """What the runner uses of a `subprocess.Popen`, for a host this server forked: its pid, its output and its
    end (known from a pidfd; its exit code from the server's report)."""

    def __init__(self, forks: HostForks, pid: int, stdout: IO[str], argv: Sequence[str]) -> None:
        self.pid = pid
        self.stdout = stdout
        self.args = list(argv)
        self._forks = forks
        self._code: int | None = None
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # it ended (and was reaped) already
            self._pidfd = None

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def poll(self) -> int | None:
        return self._ended(timeout=0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._ended(timeout=timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return code

    def _ended(self, *, timeout: float | None) -> int | None:
        if self._code is None:
            self._code = self._forks.exit_code(self.pid, self._pidfd, timeout=timeout)
            if self._code is not None and self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
        return self._code


class HostForks:
    """The runner's handle on the server: fork hosts through it, learn when they end."""

    def __init__(self, control: socket.socket) -> None:
        self._control = control
        self._started: queue.Queue[int] = queue.Queue()
        self._codes: dict[int, int] = {}
        self._ended = threading.Condition()
        self._closed = False
        self._lock = threading.Lock()
        threading.Thread(target=self._read_reports, name="host-forks-reports", daemon=True).start()

    @staticmethod
    def control_pair() -> tuple[socket.socket, socket.socket]:
        """(the runner's end, the server's end to pass on with `CONTROL_FD_OPTION`)."""
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

    def fork(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: str, listen_socket: socket.socket
    ) -> ForkedProcess:
        reader, writer = os.pipe()
        request = json.dumps({"argv": list(argv), "env": dict(env), "cwd": cwd}).encode()
        try:
            with self._lock:
                socket.send_fds(self._control, [request], [writer, listen_socket.fileno()])
                pid = self._started.get(timeout=START_ANSWER_SECONDS)
        except queue.Empty:
            command = " ".join(argv[2:])
            raise RuntimeError(f"the host-forks server did not start {command} in {START_ANSWER_SECONDS} s") from None
        finally:
            os.close(writer)
        return ForkedProcess(self, pid, open(reader, encoding="utf-8", errors="replace"), argv)

    def exit_code(self, pid: int, pidfd: int | None, *, timeout: float | None) -> int | None:
        """The host's exit code once it has ended (-1 when it ended without a report: the server went first),
        None while it runs or until `timeout` seconds pass."""
        if pidfd is not None:
            ready = select.poll()
            ready.register(pidfd, select.POLLIN)  # a pidfd is readable once its process has ended
            if not ready.poll(None if timeout is None else timeout * 1000):
                return None
        with self._ended:
            self._ended.wait_for(lambda: pid in self._codes or self._closed, timeout=REPORT_WAIT_SECONDS)
            return self._codes.get(pid, -1)

    def _read_reports(self) -> None:
        while True:
            try:
                message = self._control.recv(REPORT_BYTES)
            except OSError:
                message = b""
            if not message:
                with self._ended:
                    self._closed = True
                    self._ended.notify_all()
                return
            report = json.loads(message)
            if "started" in report:
                self._started.put(int(report["started"]))
            else:
                with self._ended:
                    self._codes[int(report["exited"])] = int(report["code"])
                    self._ended.notify_all()

    def close(self) -> None:
        """Tell the server to end (it ends once its reports are sent); the hosts should be stopped first."""
        with contextlib.suppress(OSError):
            self._control.shutdown(socket.SHUT_WR)


if __name__ == "__main__":
    main()
