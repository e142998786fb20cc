"""How the local stack's runner hands ports to its servers (local/processes.py): bound first, refused until the
server listens, never taken by another process meanwhile, and kept across a restart of the server, so a request
made while it is down waits for the new process instead of failing."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator

import httpx
import pytest

from local.processes import ProcessGroup, is_accepting, listen_on, reserve_port
from local.template import REPO_ROOT

DEADLINE_SECONDS = 30


def refused(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def children() -> Iterator[ProcessGroup]:
    group = ProcessGroup(cwd=REPO_ROOT)
    try:
        yield group
    finally:
        group.stop_all()


def test_a_reserved_port_refuses_connections_and_other_binds_until_its_server_listens() -> None:
    reserved = reserve_port("127.0.0.1", 0)
    port = reserved.getsockname()[1]
    try:
        assert refused(port) and not is_accepting(reserved)
        intruder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server and werkzeug bind
        with intruder, pytest.raises(OSError):
            intruder.bind(("127.0.0.1", port))
        listen_on(reserved, 5)
        assert is_accepting(reserved) and not refused(port)
    finally:
        reserved.close()
    assert refused(port)


def test_a_port_in_use_cannot_be_reserved() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken, pytest.raises(OSError):
        reserve_port("127.0.0.1", taken.getsockname()[1])


def test_a_request_made_while_a_server_restarts_is_served_by_the_new_process(children: ProcessGroup) -> None:
    reserved = reserve_port("127.0.0.1", 0)
    port = reserved.getsockname()[1]
    argv = [sys.executable, "-m", "local.webhook_receiver"]
    receiver = children.start("webhook-receiver", argv, os.environ, reserved)
    children.wait_until_listening(DEADLINE_SECONDS)
    events_url = f"http://127.0.0.1:{port}/_receiver/events"
    assert httpx.get(events_url, timeout=DEADLINE_SECONDS).status_code == 200

    receiver.process.send_signal(signal.SIGKILL)
    receiver.process.wait()
    # Nothing serves the port now: the connection is made and the request sent all the same (the runner's copy
    # of the socket keeps listening), and they wait in its queue until the new process takes them.
    held = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE_SECONDS)
    held.request("GET", "/_receiver/events")
    children.restart(receiver)
    answer = held.getresponse()
    assert (answer.status, json.loads(answer.read())) == (200, {"events": []})
    held.close()

    children.stop_all()
    assert refused(port)


def test_a_receiver_started_on_a_port_in_use_says_so_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/webhooks.md had a second receiver started on 9200 beside `make run`, whose own receiver holds it: the
    answer was an `Address already in use` traceback."""
    from local import webhook_receiver

    with socket.create_server(("127.0.0.1", 0)) as taken, pytest.raises(SystemExit) as exited:
        port = taken.getsockname()[1]
        webhook_receiver.main(["--port", str(port)])
    assert exited.value.code == 1
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and f"port {port} is in use (make run's receiver uses 9200)" in said, said
