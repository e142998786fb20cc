"""The local stack for `make bench` (utilisation) and `make soak`: `python -m local.run` on free ports, its output in
a log file, and what the measurements read from it — the API, the queues, the table, and each provider emulator's
knobs and ledger (`/_emulator/knobs|stats|reset`).

It starts the stack exactly as `tests/e2e/conftest.py` does (the runner on free ports, its own moto and emulators,
ready when the runner prints its banner) and always stops it, so a `make run` in another shell is never in the way.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx

from local.aws import DYNAMODB_ENDPOINT_VARIABLES, apply_local_credentials, aws_endpoint, moto_endpoints
from local.processes import command_line, cpu_seconds, descendants, poll_until, stop_runner, wait_for_line
from local.run import READY_LINE, ports_from_output
from local.settings import EMULATOR_PORTS
from local.stack import LocalStack
from local.template import REPO_ROOT

PROVIDERS = tuple(EMULATOR_PORTS)  # ("aliyun", "tencent", "huawei")
STARTUP_DEADLINE_SECONDS = 90  # a busy 2-core machine imports slowly
STOP_DEADLINE_SECONDS = 20
API_KEY = "bench-api-key"
#: Provider queue of each provider (logical ids in template.yaml), its DLQ, and its dispatch function.
PROVIDER_QUEUES = {p: f"{p.capitalize()}Queue" for p in PROVIDERS}
PROVIDER_DLQS = {p: f"{p.capitalize()}DeadLetterQueue" for p in PROVIDERS}
DISPATCH_FUNCTIONS = {p: f"{p.capitalize()}DispatchFunction" for p in PROVIDERS}


class StackFailed(RuntimeError):
    """The stack did not start, or a part of it went away."""


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    log_path: Path
    ports: dict[str, int]
    aws_endpoint: str  # SQS and the other services
    dynamodb_endpoint: str
    region: str
    refs: dict[str, str]  # logical id -> physical name (tables) or URL (queues)
    outputs: dict[str, str]
    api: httpx.Client  # base URL and API key set
    _emulators: dict[str, httpx.Client] = field(default_factory=dict)

    def __post_init__(self) -> None:
        session = boto3.session.Session(region_name=self.region)
        self.sqs: Any = session.client("sqs", endpoint_url=self.aws_endpoint)
        self.dynamodb: Any = session.client("dynamodb", endpoint_url=self.dynamodb_endpoint)
        self._emulators = {p: httpx.Client(base_url=f"http://127.0.0.1:{self.ports[p]}", timeout=30) for p in PROVIDERS}

    @property
    def table_name(self) -> str:
        return self.refs["MessagesTable"]

    def queue_url(self, logical_id: str) -> str:
        return self.refs[logical_id]

    # --- emulators ------------------------------------------------------------------------------------------

    def set_knobs(self, provider: str, **changes: Any) -> dict[str, Any]:
        answer = self._emulators[provider].post("/_emulator/knobs", json=changes)
        answer.raise_for_status()
        knobs: dict[str, Any] = answer.json()
        return knobs

    def stats(self, provider: str, *, per_recipient: bool = True, received: bool = False) -> dict[str, Any]:
        """The emulator's ledger; without `per_recipient`, leaves out the per-recipient send counts; with
        `received`, adds when each recipient's request arrived (`received_at`)."""
        params = {"sent": str(per_recipient).lower(), "received": str(received).lower()}
        answer = self._emulators[provider].get("/_emulator/stats", params=params)
        answer.raise_for_status()
        stats: dict[str, Any] = answer.json()
        return stats

    def reset_ledgers(self) -> None:
        for provider in PROVIDERS:
            self._emulators[provider].post("/_emulator/reset").raise_for_status()

    # --- queues ---------------------------------------------------------------------------------------------

    def queue_depth(self, logical_id: str) -> tuple[int, int, int]:
        """(visible, in flight, delayed) messages of a queue, as SQS counts them."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.refs[logical_id],
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
            int(attributes["ApproximateNumberOfMessagesDelayed"]),
        )

    def pending(self, logical_ids: Sequence[str]) -> dict[str, int]:
        """Messages not yet consumed (visible, in flight or delayed) per queue, only the non-empty ones."""
        depths = {logical_id: sum(self.queue_depth(logical_id)) for logical_id in logical_ids}
        return {name: n for name, n in depths.items() if n}

    def drain(self, logical_id: str) -> list[dict[str, Any]]:
        """Every message of a queue (DLQs: nobody consumes them), received and kept invisible, not deleted."""
        messages: list[dict[str, Any]] = []
        while True:
            answer = self.sqs.receive_message(
                QueueUrl=self.refs[logical_id],
                MaxNumberOfMessages=10,
                VisibilityTimeout=3600,
                AttributeNames=["All"],
            )
            batch = answer.get("Messages", [])
            if not batch:
                return messages
            messages += batch

    # --- processes ------------------------------------------------------------------------------------------

    def function_pids(self, logical_id: str) -> list[int]:
        """The pids of the function hosts running `logical_id` under this stack's runner (their invoke ports are
        not known outside the runner, so hosts are found by their command lines among the runner's descendants)."""
        return sorted(
            pid for pid in descendants(self.process.pid) if command_line(pid)[2:4] == ["local.lambda_host", logical_id]
        )

    def signal_functions(self, logical_ids: Sequence[str], signum: int) -> list[int]:
        """Send `signum` to every host of these functions; returns the pids signalled."""
        pids = [pid for logical_id in logical_ids for pid in self.function_pids(logical_id)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        return pids

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by the runner (which serves moto) and each process it started,
        by what it runs (`runner`, `moto`, `moto-dynamodb`, `AliyunDispatchFunction`, `aliyun-emulator`, ...;
        hosts of one function summed)."""
        used: dict[str, float] = {}
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            seconds = cpu_seconds(pid)
            if seconds is not None:
                label = _label(command_line(pid), is_runner=pid == self.process.pid)
                used[label] = round(used.get(label, 0.0) + seconds, 2)
        return used

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_count(self, pattern: str) -> int:
        """How many lines of the stack's output match `pattern` (a regular expression)."""
        compiled = re.compile(pattern)
        with self.log_path.open(errors="replace") as log:
            return sum(1 for line in log if compiled.search(line))

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise StackFailed(f"the local stack stopped (exit {self.process.returncode})\n{self.log_tail()}")


def _label(argv: list[str], *, is_runner: bool) -> str:
    if is_runner:
        return "runner"
    module = argv[2] if len(argv) > 2 and argv[1] == "-m" else " ".join(argv[:2])
    if module == "local.moto_server":
        return "moto-dynamodb" if "dynamodb" in argv[argv.index("--serves") + 1] else "moto"
    if module == "local.lambda_host" and len(argv) > 3:
        return argv[3]
    if module.startswith("local.emulators."):
        return f"{module.rsplit('.', 1)[1]}-emulator"
    return module.removeprefix("local.")


@contextlib.contextmanager
def running_stack(
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    runner_args: Sequence[str] = (),
    startup_deadline: float = STARTUP_DEADLINE_SECONDS,
) -> Iterator[Stack]:
    """`python -m local.run` on free ports with `env` added to ours; yields once its banner is printed, stops it
    (and every process it started) on the way out. Every port is given as 0: the runner binds free ones itself and
    prints which, so no other process (a test running beside this one) can take one between its choice and its use."""
    apply_local_credentials(os.environ)  # this process's boto3 clients talk to the stack's moto too
    environ = {**os.environ, "GLOBESMS_API_KEY": API_KEY}
    for name in [
        "AWS_ENDPOINT_URL",
        *DYNAMODB_ENDPOINT_VARIABLES,
        "AWS_PROFILE",
        *(f"GLOBESMS_{p.upper()}_ENDPOINT" for p in PROVIDERS),
    ]:
        environ.pop(name, None)  # this stack starts its own moto and emulators, unless `env` says otherwise
    environ.update(env or {})
    argv = [sys.executable, "-m", "local.run", "--api-port", "0", "--moto-port", "0", "--moto-dynamodb-port", "0"]
    argv += [arg for p in PROVIDERS for arg in ("--emulator-port", f"{p}=0")]
    argv += ["--webhook-receiver-port", "0", *runner_args]
    # Through local.processes: the runner is sent SIGTERM if this process dies before stopping it (a bench killed
    # mid-figure left its stack running, dispatchers paused, beside the next run); it stops what it started.
    argv = [sys.executable, "-m", "local.processes", str(os.getpid()), *argv]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and runner
            argv, cwd=REPO_ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_until_ready(process, log_path, startup_deadline)
        ports = ports_from_output(log_path.read_text(errors="replace")) or {}
        endpoints = moto_endpoints(ports) if "AWS_ENDPOINT_URL" not in environ else {}  # `env` may name another
        deployed_env = {**environ, **endpoints}
        deployed = LocalStack.deploy(environ=deployed_env)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{ports['api']}", headers={"x-api-key": API_KEY}, timeout=60
        ) as api:
            yield Stack(
                process=process,
                log_path=log_path,
                ports=ports,
                aws_endpoint=aws_endpoint(deployed_env, "sqs") or "",
                dynamodb_endpoint=aws_endpoint(deployed_env, "dynamodb") or "",
                region=deployed.context.region,
                refs=dict(deployed.context.refs),
                outputs=deployed.outputs(),
                api=api,
            )
    finally:
        _stop(process)


def _wait_until_ready(process: subprocess.Popen[bytes], log_path: Path, deadline_seconds: float) -> None:
    if not wait_for_line(process, log_path, READY_LINE, deadline_seconds):
        _stop(process)
        raise StackFailed(f"the local stack did not start\n{log_path.read_text(errors='replace')[-6000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    stop_runner(process, STOP_DEADLINE_SECONDS)


def wait_until(what: str, probe: Any, deadline_seconds: float, interval: float = 0.5) -> Any:
    """Call `probe` until it returns something other than None; raise StackFailed when time runs out."""
    result = poll_until(probe, deadline_seconds, interval)
    if result is None:
        raise StackFailed(f"timed out after {deadline_seconds:.0f} s waiting for {what}")
    return result
