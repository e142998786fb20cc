"""Child processes of the local stack: start them, hand them their ports, label their output, wait until they
listen, stop them all.

Each child runs in its own session (its own process group), so a Ctrl-C in the terminal reaches only the runner,
which then stops every group it started. Children are also started through this module's `__main__`, which asks
Linux to SIGTERM the child if the runner dies without cleaning up (SIGKILL, a crashed test): no orphans either way.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from local.parent_link import LISTEN_FD_OPTION, die_with_parent

if TYPE_CHECKING:
    from local.host_forks import HostForks

STOP_GRACE_SECONDS = 5.0


def configure_logging() -> None:
    """How every process of the stack logs (the functions' own Powertools JSON lines are separate)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("botocore", "boto3", "urllib3", "werkzeug"):  # credential and endpoint discovery, access logs
        logging.getLogger(chatty).setLevel(logging.WARNING)


def free_port() -> int:
    """A loopback port nobody listens on right now. Racy: another process may take it before the caller binds it;
    the runner does not use it (`reserve_port`, and `python -m local.run --api-port 0 ...` for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# How a server of the stack gets its port. The runner binds every port itself, first (`reserve_port`), and hands
# each bound socket to the server that will use it (`--listen-fd`); the server calls listen() on it only once it
# can serve (`listen_on`). Until then a connection to the port is refused, never accepted and left unanswered, and
# no other process can take the port meanwhile (no free_port() race). The runner keeps its copy of each socket
# until the stack stops, so a function host that is restarted gets the same socket: connections made while it is
# down wait in the socket's queue and are served by the new process (the option: local/parent_link.py).


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind host:port (0: any free port; see `.getsockname()`) without listening. SO_REUSEADDR is on for the
    bind, so a port whose last connections are still in TIME_WAIT (a stack stopped a moment ago) can be bound, and
    off afterwards: while it is on and the socket is not listening, Linux lets another SO_REUSEADDR socket bind the
    same port. Raises OSError (EADDRINUSE) when something else has the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
    except OSError:
        sock.close()
        raise
    return sock


def add_listen_fd_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        LISTEN_FD_OPTION,
        type=int,
        default=None,
        metavar="N",
        help="a socket local.run bound for this server: listen on it once ready, instead of binding --port",
    )


def adopt_socket(fd: int) -> socket.socket:
    """The socket the runner reserved for this process (`--listen-fd N`), not passed on to its own children."""
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(False)
    return sock


def listen_on(sock: socket.socket, backlog: int) -> None:
    """Start accepting connections on a reserved socket. SO_REUSEADDR goes back on first: listen() checks the
    port again, and connections of an earlier run in TIME_WAIT would make it fail without."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.listen(backlog)


def is_accepting(sock: socket.socket) -> bool:
    """Whether some process called listen() on this (shared) socket: no connection made to find out."""
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))


def poll_until[T](probe: Callable[[], T | None], deadline_seconds: float, interval: float = 0.3) -> T | None:
    """Call `probe` until it returns something other than None, and return that; None when time runs out (the
    caller says what it was waiting for, in its own kind of failure)."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        result = probe()
        if result is not None:
            return result
        time.sleep(interval)
    return None


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


def descendants(root: int) -> dict[int, int]:
    """Every process below `root` (Linux: read from /proc), as pid -> start time in clock ticks since boot: a pid
    with the same start time later is the same process, not a new one that got the number."""
    parents: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat_fields(int(entry.name))
            if stat is not None:
                parents.setdefault(int(stat[1]), []).append((int(entry.name), int(stat[19])))
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for pid, started in parents.get(todo.pop(), []):
            found[pid] = started
            todo.append(pid)
    return found


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far, None when it is gone."""
    stat = _stat_fields(pid)
    if stat is None:
        return None
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, in clock ticks


def command_line(pid: int) -> list[str]:
    """A process's command line, [] when it is gone. A forked function host (local/host_forks.py) shows its own
    as one title, "python -m local.lambda_host <LogicalId> ...": split into words like any other."""
    try:
        words = (Path("/proc") / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []
    while words and not words[-1]:
        words.pop()
    return words[0].split() if len(words) == 1 else words


def is_alive(pid: int, started: int) -> bool:
    """Whether the process `descendants` listed still exists (a zombie, already ended, does not count)."""
    stat = _stat_fields(pid)
    return stat is not None and int(stat[19]) == started and stat[0] != "Z"


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: state, ppid, ... (field 3 onwards); None when it is gone."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


class ChildProcess(Protocol):
    """What the runner uses of a child: a `subprocess.Popen`, or a host forked by local.host_forks."""

    pid: int
    stdout: IO[str] | None

    @property
    def returncode(self) -> int | None: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...


@dataclass
class Child:
    name: str
    process: ChildProcess
    listen_socket: socket.socket | None  # the port it serves, reserved by the runner; None when it serves none
    argv: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    restarts: int = 0
    forked: bool = False  # by local.host_forks (argv without the --listen-fd the server adds)
    stop_last: bool = False  # the others call it (moto, an emulator, the webhook receiver): `stop_all`

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    @property
    def port(self) -> int | None:
        return None if self.listen_socket is None else int(self.listen_socket.getsockname()[1])


@dataclass
class ProcessGroup:
    """The runner's children. Output of each is copied to ours, every line prefixed with the child's name.
    Function hosts can be forked from one prestarted interpreter instead (`start_host_forks`, local/host_forks.py)."""

    cwd: Path
    children: list[Child] = field(default_factory=list)
    _label_width: int = 24
    _forks: HostForks | None = None  # once started
    _forks_server: Child | None = None

    def start_host_forks(self, env: Mapping[str, str]) -> None:
        """Start the server function hosts are forked from (Linux), so its imports overlap the rest of the start."""
        try:
            from local import host_forks  # here: it needs setproctitle (below), the runner does not
        except ImportError:  # setproctitle missing: a virtualenv from before it was added; `make` installs it
            return
        if not host_forks.SUPPORTED or self._forks is not None:
            return
        ours, theirs = host_forks.HostForks.control_pair()
        argv = [sys.executable, "-m", "local.host_forks", host_forks.CONTROL_FD_OPTION, str(theirs.fileno())]
        try:
            self._forks_server = Child("host-forks", self._spawn(argv, env, [theirs.fileno()]), None, tuple(argv))
        finally:
            theirs.close()
        self._copy_output_of(self._forks_server)
        self._forks = host_forks.HostForks(ours)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        listen_socket: socket.socket | None = None,
        *,
        fork: bool = False,
        stop_last: bool = False,
    ) -> Child:
        """Start `argv`; with `listen_socket` (from `reserve_port`), it is passed on and `--listen-fd N` added.
        `fork`: a server of the stack run as `python -m <module> ...` with a socket (a function host, an emulator),
        forked when `start_host_forks` started the server, started as a process of its own otherwise. `stop_last`:
        see `stop_all`."""
        forked = fork and self._forks is not None and listen_socket is not None
        if listen_socket is not None and not forked:
            argv = [*argv, LISTEN_FD_OPTION, str(listen_socket.fileno())]
        child = Child(name, self._started(argv, env, listen_socket, forked), listen_socket, tuple(argv), dict(env))
        child.forked = forked
        child.stop_last = stop_last
        self.children.append(child)
        self._copy_output_of(child)
        return child

    def restart(self, child: Child) -> None:
        """Start an exited child again with its command line, environment and socket (a function host that was
        killed comes back as Lambda starts a new execution environment)."""
        child.process = self._started(child.argv, child.env, child.listen_socket, child.forked)
        child.restarts += 1
        self._copy_output_of(child)

    def _started(
        self, argv: Sequence[str], env: Mapping[str, str], listen_socket: socket.socket | None, forked: bool
    ) -> ChildProcess:
        if forked:
            # A forked host's argv lacks the --listen-fd the server adds: it cannot be started on its own instead.
            if self._forks is None or listen_socket is None:
                raise RuntimeError("the host-forks server is gone: a forked function host cannot be started again")
            return self._forks.fork(argv, {**env, "PYTHONUNBUFFERED": "1"}, str(self.cwd), listen_socket)
        return self._spawn(argv, env, [] if listen_socket is None else [listen_socket.fileno()])

    def _spawn(self, argv: Sequence[str], env: Mapping[str, str], pass_fds: Sequence[int]) -> subprocess.Popen[str]:
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
            pass_fds=tuple(pass_fds),
        )

    def _copy_output_of(self, child: Child) -> None:
        threading.Thread(target=self._copy_output, args=(child,), name=f"output-{child.name}", daemon=True).start()

    def _copy_output(self, child: Child) -> None:
        process = child.process  # this run of the child: a restart copies the next one's output in a new thread
        assert process.stdout is not None
        label = child.name.ljust(self._label_width)
        for line in process.stdout:
            sys.stdout.write(f"{label}| {line}")
            sys.stdout.flush()

    def wait_until_listening(self, timeout: float, children: Sequence[Child] | None = None) -> None:
        """Block until every child (of `children`, default all) with a port listens on it, which each does only
        once it can serve; raise if one exits or time runs out."""
        deadline = time.monotonic() + timeout
        pending = [c for c in (self.children if children is None else children) if c.listen_socket is not None]
        while pending:
            for child in list(pending):
                if not child.running:
                    raise RuntimeError(f"{child.name} exited with code {child.process.returncode} while starting")
                if child.listen_socket is not None and is_accepting(child.listen_socket):
                    pending.remove(child)
            if pending and time.monotonic() > deadline:
                names = ", ".join(f"{c.name} (port {c.port})" for c in pending)
                raise TimeoutError(f"not listening after {timeout:.0f} s: {names}")
            time.sleep(0.05)

    def first_exited(self) -> Child | None:
        """A child that exited; the host-forks server counts too (no host could be started again without it)."""
        servers = [] if self._forks_server is None else [self._forks_server]  # first: its hosts end with it
        return next((c for c in [*servers, *self.children] if not c.running), None)

    def stop_all(self) -> None:
        """SIGTERM every child's process group, then SIGKILL what is still there after a grace period: first the
        children the others do not call (the API server, the function hosts), so that what they hold (a batch
        settling, a request) finishes against moto and the emulators, then those (`stop_last`). Stopped all at
        once, a host settling a batch met refused connections, and botocore's retries of them, until the grace
        period ran out. Then the host-forks server (after the hosts: it reports how they ended); then close the
        reserved sockets, which frees the ports."""
        _stop([child for child in self.children if not child.stop_last])
        _stop([child for child in self.children if child.stop_last])
        if self._forks_server is not None and self._forks is not None:
            self._forks.close()  # it ends once it has read that
            _stop([self._forks_server], signal_first=False)
            self._forks = self._forks_server = None
        for child in self.children:
            if child.listen_socket is not None:
                child.listen_socket.close()
        self.children.clear()


def _stop(children: Sequence[Child], *, signal_first: bool = True) -> None:
    if signal_first:
        for child in children:
            _signal_group(child.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        try:
            child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            _signal_group(child.process.pid, signal.SIGKILL)
            child.process.wait()


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)  # start_new_session=True made the child its group's leader


def _exec_dying_with_parent(parent_pid: int, argv: list[str]) -> None:
    """Become `argv`, arranged to receive SIGTERM when the runner dies (Linux; elsewhere just exec)."""
    if not die_with_parent(parent_pid):
        sys.exit(1)
    os.execv(argv[0], argv)  # noqa: S606 - argv is the runner's own command line, no shell involved


if __name__ == "__main__":
    _exec_dying_with_parent(int(sys.argv[1]), sys.argv[2:])
