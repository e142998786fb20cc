"""The local API server when the function host behind it fails: API Gateway's 502 JSON, never a dropped
connection (local/api_server.py)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.api_server import Request, build_gateway, wait_until_accepting
from local.processes import reserve_port

API_KEY = "local-dev-key"  # the gateway's default key


def post_messages() -> Request:
    return Request("POST", "/v1/messages", "", [("x-api-key", API_KEY)], b'{"to": "+85251234567"}', "127.0.0.1")


def serve_hanging_up(server: socket.socket) -> None:
    while True:
        try:
            connection, _ = server.accept()
        except OSError:  # closed: the test is over
            return
        with connection:
            connection.recv(65536)  # the invocation arrives; the host dies before answering


@pytest.fixture
def host_dying_mid_invocation() -> Iterator[str]:
    """An Invoke API that takes the request and closes the connection without an answer, as a function host
    killed during an invocation."""
    server = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=serve_hanging_up, args=(server,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


@pytest.fixture
def host_not_listening() -> Iterator[str]:
    reserved = reserve_port("127.0.0.1", 0)  # bound, never listening: connections are refused
    try:
        yield f"http://127.0.0.1:{reserved.getsockname()[1]}"
    finally:
        reserved.close()


@pytest.mark.parametrize("host", ["host_dying_mid_invocation", "host_not_listening"])
def test_a_failed_invocation_is_api_gateways_502(host: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(host)
    gateway = build_gateway({"SendApiFunction": [url], "ReceiptsFunction": [url]}, environ={})
    response = gateway.handle(post_messages())
    assert (response.status, json.loads(response.body)) == (502, {"message": "Internal server error"})
    assert response.headers["x-amzn-ErrorType"] == ["InternalServerErrorException"]


def test_the_api_waits_for_every_host_it_is_told_to_and_gives_up_naming_the_silent_ones() -> None:
    """local.run starts the API beside the function hosts with --wait-for each: it listens only once all accept."""
    listening = reserve_port("127.0.0.1", 0)
    listening.listen()
    silent = reserve_port("127.0.0.1", 0)  # bound, never listening: connections are refused
    try:
        wait_until_accepting([f"http://127.0.0.1:{listening.getsockname()[1]}"], timeout=5)
        silent_port = silent.getsockname()[1]
        with pytest.raises(SystemExit, match=f"127.0.0.1:{silent_port}"):
            wait_until_accepting(
                [f"http://127.0.0.1:{listening.getsockname()[1]}", f"http://127.0.0.1:{silent_port}"], timeout=0.2
            )
    finally:
        listening.close()
        silent.close()


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/nothing-here"), ("PATCH", "/v1/messages"), ("GET", "/v1/messages/a/b")]
)
def test_a_path_or_method_the_api_does_not_define_is_api_gateways_403_as_the_docs_say(
    host_not_listening: str, method: str, path: str
) -> None:
    """The template has no catch-all route: API Gateway answers itself, in its shape, and no function is invoked
    (the host would be a 502). docs/api.md and docs/errors.md said 404 NOT_FOUND in the refusal shape."""
    gateway = build_gateway({"SendApiFunction": [host_not_listening], "ReceiptsFunction": [host_not_listening]}, {})
    response = gateway.handle(Request(method, path, "", [("x-api-key", API_KEY)], b"", "127.0.0.1"))
    answer = (response.status, json.loads(response.body))
    assert answer == (403, {"message": "Missing Authentication Token"})
    docs = Path(__file__).resolve().parents[2] / "docs"
    for page in ("api.md", "errors.md"):
        text = " ".join((docs / page).read_text().split())
        assert '403 {"message": "Missing Authentication Token"}' in text, page
        assert "no route for the method and path" not in text and "a method and path no route answers too" not in text
