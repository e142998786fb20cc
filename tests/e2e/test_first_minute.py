"""The first minute of `make run`, and its last: each test starts its own `python -m local.run` (every port 0).

- A request sent the moment a port of the stack accepts a connection gets that server's real answer, never a 5xx:
  a raw socket connects in a tight loop and sends at once (the API, moto, each emulator, the webhook receiver).
- With --restart-functions, a request to a function whose host was just killed waits for the new host; then Ctrl-C
  (SIGINT to the runner's process group, as a terminal sends it) stops every process the runner started, the new
  host among them.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.processes import command_line, descendants, is_alive, is_listening, stop_runner, wait_for_line
from local.run import READY_LINE
from local.settings import EMULATOR_PORTS
from tests.e2e.conftest import (
    API_KEY,
    STARTUP_DEADLINE_SECONDS,
    STOP_DEADLINE_SECONDS,
    runner_ports,
    stack_environment,
    start_runner,
)

pytestmark = pytest.mark.e2e

ANSWER_TIMEOUT_SECONDS = 30  # API Gateway's limit is 29 s: longer means no answer at all
GOOD_MESSAGE = {"to": ["+85251234567"], "text": "sent the moment the API opened"}
BAD_MESSAGE = {"to": [], "text": "hi", "type": "SPAM"}  # no recipient, no such type: the function refuses it
JSON_HEADERS = {"content-type": "application/json", "x-api-key": API_KEY}


@dataclass(frozen=True)
class RawRequest:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class FirstContact:
    refused_before: int  # connections refused before the port opened (0: it was open when the loop started)
    answers: list[Answer]


def connect_the_moment_it_opens(process: subprocess.Popen[bytes], port: int) -> tuple[socket.socket, int]:
    """Connect to 127.0.0.1:port in a tight loop (1 ms between tries) until it accepts; the socket and how many
    tries were refused first."""
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    refused = 0
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            sock.close()
            refused += 1
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"port {port} never accepted a connection") from None
            time.sleep(0.001)
            continue
        sock.settimeout(ANSWER_TIMEOUT_SECONDS)
        return sock, refused


def first_contact(process: subprocess.Popen[bytes], port: int, requests: list[RawRequest]) -> FirstContact:
    """The moment `port` accepts a connection, send every request, each on its own connection, and read the
    answers. The first connection is the loop's own; the others are made right after it."""
    first, refused = connect_the_moment_it_opens(process, port)
    sockets = [first, *(socket.create_connection(("127.0.0.1", port)) for _ in requests[1:])]
    connections = []
    for sock, request in zip(sockets, requests, strict=True):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=ANSWER_TIMEOUT_SECONDS)
        connection.sock = sock  # http.client uses an existing socket as it is
        connection.request(request.method, request.path, body=request.body, headers=request.headers)
        connections.append(connection)
    answers = []
    for connection in connections:
        response = connection.getresponse()
        answers.append(Answer(response.status, response.read()))
        connection.close()
    return FirstContact(refused, answers)


def request_json(method: str, path: str, body: Any, headers: dict[str, str]) -> RawRequest:
    return RawRequest(method, path, json.dumps(body).encode(), headers)


# What each server is asked the moment it opens.
API_REQUESTS = [
    request_json("POST", "/v1/messages", GOOD_MESSAGE, JSON_HEADERS),
    request_json("POST", "/v1/messages", BAD_MESSAGE, JSON_HEADERS),
]
MOTO_DYNAMODB_REQUESTS = [  # DynamoDB ListTables, as boto3 sends it (moto does not check the signature)
    RawRequest(
        "POST",
        "/",
        b"{}",
        {
            "content-type": "application/x-amz-json-1.0",
            "x-amz-target": "DynamoDB_20120810.ListTables",
            "authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=0",
        },
    )
]
MOTO_SQS_REQUESTS = [  # SQS ListQueues in SQS's JSON protocol, as boto3 sends it
    RawRequest(
        "POST",
        "/",
        b"{}",
        {
            "content-type": "application/x-amz-json-1.0",
            "x-amz-target": "AmazonSQS.ListQueues",
            "authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, "
            "SignedHeaders=host, Signature=0",
        },
    )
]
EMULATOR_REQUESTS = [RawRequest("GET", "/_emulator/stats?sent=false")]
RECEIVER_REQUESTS = [
    RawRequest("GET", "/_receiver/events"),
    request_json("POST", "/hooks", {"id": "evt", "type": "message.delivered"}, {"content-type": "application/json"}),
]


def log_of(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-6000:]


def test_every_port_answers_a_request_sent_the_moment_it_opens(tmp_path: Path) -> None:
    log_path = tmp_path / "stack.log"
    process = start_runner(log_path, stack_environment())
    try:
        ports = runner_ports(process, log_path)
        asked = {
            "api": API_REQUESTS,
            "moto": MOTO_SQS_REQUESTS,
            "moto-dynamodb": MOTO_DYNAMODB_REQUESTS,
            "webhook-receiver": RECEIVER_REQUESTS,
            **{provider: EMULATOR_REQUESTS for provider in EMULATOR_PORTS},
        }
        with ThreadPoolExecutor(max_workers=len(asked)) as pool:
            pending = {name: pool.submit(first_contact, process, ports[name], asks) for name, asks in asked.items()}
            try:
                contacts = {name: future.result() for name, future in pending.items()}
            except AssertionError as exc:
                pytest.fail(f"{exc}\n--- stack log ---\n{log_of(log_path)}")
        assert wait_for_line(process, log_path, READY_LINE, STARTUP_DEADLINE_SECONDS), log_of(log_path)
    finally:
        stop_runner(process, STOP_DEADLINE_SECONDS)
    assert not [name for name, port in ports.items() if is_listening(port)], "still listening after the stop"

    for name, contact in contacts.items():
        assert all(answer.status < 500 for answer in contact.answers), (name, contact, log_of(log_path))
    # The API opens only after every function host listens (seconds after the ports are printed), so the loop was
    # refused first: these are the very first requests it could take.
    assert contacts["api"].refused_before > 0
    accepted, refused = contacts["api"].answers
    assert accepted.status == 202, accepted
    assert accepted.json()["accepted"] == 1 and accepted.json()["batch_id"]
    assert 400 <= refused.status < 500, refused
    assert refused.json()  # the function's own JSON refusal, naming the fields
    (queues,) = contacts["moto"].answers
    assert queues.status == 200 and isinstance(queues.json(), dict), queues  # no queue yet: provisioning follows
    (tables,) = contacts["moto-dynamodb"].answers
    assert tables.status == 200 and "TableNames" in tables.json()
    for provider in EMULATOR_PORTS:
        (stats,) = contacts[provider].answers
        assert stats.status == 200 and "calls_per_second" in stats.json(), (provider, stats)
    events, unsigned = contacts["webhook-receiver"].answers
    assert (events.status, events.json()) == (200, {"events": []})
    assert (unsigned.status, unsigned.json()) == (401, {"error": "invalid signature"})


def started_ready(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path, dict[str, int]]:
    log_path = tmp_path / "stack.log"
    process = start_runner(log_path, stack_environment(), *args)
    ports = runner_ports(process, log_path)
    if not wait_for_line(process, log_path, READY_LINE, STARTUP_DEADLINE_SECONDS):
        stop_runner(process, STOP_DEADLINE_SECONDS)
        pytest.fail(f"the local stack did not start\n{log_of(log_path)}")
    return process, log_path, ports


def test_a_killed_host_is_started_again_for_the_waiting_request_and_ctrl_c_then_stops_every_process(
    tmp_path: Path,
) -> None:
    """One stack for both (a stack start is the costliest step of `make test`): the Ctrl-C part then also covers a
    host the runner started again."""
    process, log_path, ports = started_ready(tmp_path, "--restart-functions")
    try:
        # With --restart-functions, a request to a function whose host was just killed waits for the new host.
        (host, started) = next(
            (pid, started)
            for pid, started in descendants(process.pid).items()
            if command_line(pid)[2:4] == ["local.lambda_host", "SendApiFunction"]
        )
        os.kill(host, signal.SIGKILL)
        while is_alive(host, started):  # SIGKILL is not instant: send only once the host is gone
            time.sleep(0.01)
        response = httpx.post(
            f"http://127.0.0.1:{ports['api']}/v1/messages",
            json=GOOD_MESSAGE,
            headers={"x-api-key": API_KEY},
            timeout=ANSWER_TIMEOUT_SECONDS,
        )
        assert response.status_code == 202, (response.text, log_of(log_path))
        assert "SendApiFunction exited with code -9: starting it again" in log_path.read_text(errors="replace")

        # Ctrl-C: SIGINT to the runner's process group, as a terminal sends it to `make run`'s.
        running = descendants(process.pid)
        send_api_hosts = [pid for pid in running if command_line(pid)[2:4] == ["local.lambda_host", "SendApiFunction"]]
        assert send_api_hosts and host not in send_api_hosts  # the new host is among what Ctrl-C must stop
        modules = {command_line(pid)[2] for pid in running if len(command_line(pid)) > 2}
        assert {"local.api_server", "local.lambda_host", "local.webhook_receiver"} <= modules, modules
        assert {f"local.emulators.{provider}" for provider in EMULATOR_PORTS} <= modules, modules
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=STOP_DEADLINE_SECONDS) == 0, log_of(log_path)
    finally:
        stop_runner(process, STOP_DEADLINE_SECONDS)  # only if it did not stop by itself
    assert not [pid for pid, since in running.items() if is_alive(pid, since)], log_of(log_path)
    assert not [name for name, port in ports.items() if is_listening(port)]
