"""The local stack for end-to-end tests: `python -m local.run` on free ports, once per test module, always stopped.

Each module that asks for `local_stack` gets its own stack (module scope): its own moto, emulators, webhook
receiver, function hosts and API server, none of them on the default ports, so a `make run` in another shell is
never in the way. Every port is given as 0: the runner binds a free one itself and prints which (`PORTS_LINE`), so
no other process can take a port between its choice and its use.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
import httpx
import pytest

from local.aws import DYNAMODB_ENDPOINT_VARIABLES, moto_endpoints
from local.processes import is_listening, poll_until, stop_runner, wait_for_line
from local.run import PORTS_LINE, READY_LINE, ports_from_output
from local.settings import EMULATOR_PORTS
from local.stack import LocalStack
from local.template import REPO_ROOT

STARTUP_DEADLINE_SECONDS = 60
STOP_DEADLINE_SECONDS = 15
API_KEY = "e2e-api-key"
RETRY_VISIBILITY_SECONDS = "1"  # failed SQS records come back after 1 s: DLQ and webhook-retry cases are quick

T = TypeVar("T")


@dataclass
class RunningStack:
    api: httpx.Client  # base URL set, API key sent
    outputs: dict[str, str]  # the template's Outputs, resolved locally
    sqs: Any
    log_path: Path
    ports: dict[str, int]  # "api", "moto", "moto-dynamodb", "webhook-receiver" and each provider's emulator
    aws_endpoint: str  # moto for SQS and the other services
    region: str

    @property
    def dynamodb_endpoint(self) -> str:
        """moto for DynamoDB, a process of its own (local/aws.py)."""
        return moto_endpoints(self.ports)["AWS_ENDPOINT_URL_DYNAMODB"]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def webhook_receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['webhook-receiver']}"

    def emulator_url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.ports[provider]}"

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_for(
        self, what: str, probe: Callable[[], T | None], deadline_seconds: float = 60, interval: float = 0.3
    ) -> T:
        """Call `probe` until it returns something other than None; fail with the stack's log when time runs out."""
        result = poll_until(probe, deadline_seconds, interval)
        if result is None:
            pytest.fail(f"timed out waiting for {what}\n--- stack log ---\n{self.log_tail()}")
        return result


def _wait_until_ready(process: subprocess.Popen[bytes], log_path: Path) -> None:
    if not wait_for_line(process, log_path, READY_LINE, STARTUP_DEADLINE_SECONDS):
        pytest.fail(f"the local stack did not start\n{log_path.read_text(errors='replace')[-6000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    stop_runner(process, STOP_DEADLINE_SECONDS)


def stack_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Ours, with the e2e API key, quick SQS retries, `extra`, and none of the variables that would make the runner
    use another moto or other emulators."""
    env = {
        **os.environ,
        "GLOBESMS_API_KEY": API_KEY,
        "LOCAL_SQS_RETRY_VISIBILITY_SECONDS": RETRY_VISIBILITY_SECONDS,
        **(extra or {}),
    }
    for name in [
        "AWS_ENDPOINT_URL",
        *DYNAMODB_ENDPOINT_VARIABLES,
        *(f"GLOBESMS_{p.upper()}_ENDPOINT" for p in EMULATOR_PORTS),
    ]:
        env.pop(name, None)  # this stack starts its own moto and emulators
    return env


def start_runner(log_path: Path, env: dict[str, str], *extra_args: str) -> subprocess.Popen[bytes]:
    """`python -m local.run` with every port 0 (the runner picks free ones), in its own session, output to
    `log_path`. Stop it with `stop_runner`."""
    argv = [sys.executable, "-m", "local.run", "--api-port", "0", "--moto-port", "0", "--webhook-receiver-port", "0"]
    argv += [arg for p in EMULATOR_PORTS for arg in ("--emulator-port", f"{p}=0")]
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [*argv, *extra_args], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def runner_ports(process: subprocess.Popen[bytes], log_path: Path) -> dict[str, int]:
    """The ports the runner bound ("api", "moto", "moto-dynamodb", "webhook-receiver", each provider), printed
    before any listens."""
    ports = None
    if wait_for_line(process, log_path, PORTS_LINE, STARTUP_DEADLINE_SECONDS):
        ports = ports_from_output(log_path.read_text(errors="replace"))
    if ports is None:
        pytest.fail(f"the runner printed no ports\n{log_path.read_text(errors='replace')[-6000:]}")
    return ports


@pytest.fixture(scope="module")
def local_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The stack for the requesting module; a module's `LOCAL_STACK_ENV` (a dict) adds to the stack's environment."""
    env = stack_environment(getattr(request.module, "LOCAL_STACK_ENV", {}))
    log_path = tmp_path_factory.mktemp("local-stack") / "stack.log"
    process = start_runner(log_path, env)
    ports: dict[str, int] = {}
    try:
        ports = runner_ports(process, log_path)
        _wait_until_ready(process, log_path)
        endpoints = moto_endpoints(ports)
        aws_endpoint = endpoints["AWS_ENDPOINT_URL"]
        stack = LocalStack.deploy(environ={**env, **endpoints})  # finds what the runner made
        with httpx.Client(
            base_url=f"http://127.0.0.1:{ports['api']}", headers={"x-api-key": API_KEY}, timeout=30
        ) as api:
            yield RunningStack(
                api=api,
                outputs=stack.outputs(),
                sqs=boto3.client("sqs", endpoint_url=aws_endpoint, region_name=stack.context.region),
                log_path=log_path,
                ports=ports,
                aws_endpoint=aws_endpoint,
                region=stack.context.region,
            )
    finally:
        _stop(process)
    still_listening = [name for name, port in ports.items() if is_listening(port)]
    assert not still_listening, f"still listening after the stack stopped: {still_listening}"
