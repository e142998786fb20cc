"""One classification of httpx failures for every provider: the table, real sockets, and the three clients."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpcore
import httpx
import pytest
from pydantic import SecretStr

from globesms.errors import ErrorCategory, ProviderError
from globesms.models.outbound import OutboundSms
from globesms.ports import Provider
from globesms.providers.aliyun import AliyunClient, AliyunSettings
from globesms.providers.huawei import HuaweiClient, HuaweiSettings
from globesms.providers.tencent import TencentSettings, TencentSmsClient
from globesms.providers.transport import transport_error

R = ErrorCategory.RETRYABLE
U = ErrorCategory.UNKNOWN_OUTCOME
Q = ErrorCategory.REQUEST
C = ErrorCategory.CONFIG


def from_httpcore(kind: type[httpx.HTTPError], cause: Exception) -> httpx.HTTPError:
    """An httpx exception as httpx's transport raises it: httpcore's exception chained as the cause."""
    try:
        raise kind(str(cause)) from cause
    except httpx.HTTPError as exc:
        return exc


# (exception, category, code). Only what proves that no byte of the request left is retryable.
TABLE: list[tuple[httpx.HTTPError, ErrorCategory, str]] = [
    # nothing sent
    (httpx.ConnectError("refused"), R, "CONNECT_ERROR"),
    (httpx.ConnectTimeout("slow"), R, "CONNECT_TIMEOUT"),
    (httpx.PoolTimeout("busy"), R, "POOL_TIMEOUT"),
    (from_httpcore(httpx.ProxyError, httpcore.ProxyError("403 Forbidden")), R, "PROXY_ERROR"),
    (httpx.UnsupportedProtocol("ftp"), C, "UNSUPPORTED_PROTOCOL"),
    # our bug
    (httpx.LocalProtocolError("bad header"), Q, "LOCAL_PROTOCOL_ERROR"),
    # may have been sent
    (httpx.ProxyError("from some other transport"), U, "PROXY_ERROR"),
    (httpx.WriteTimeout("slow"), U, "WRITE_TIMEOUT"),
    (httpx.WriteError("broken pipe"), U, "WRITE_ERROR"),
    (httpx.ReadTimeout("late"), U, "READ_TIMEOUT"),
    (httpx.ReadError("reset"), U, "READ_ERROR"),
    (httpx.RemoteProtocolError("server disconnected"), U, "REMOTE_PROTOCOL_ERROR"),
    (httpx.DecodingError("bad gzip"), U, "DECODING_ERROR"),
    (httpx.CloseError("close"), U, "TRANSPORT_ERROR"),
    (httpx.NetworkError("?"), U, "TRANSPORT_ERROR"),
    (httpx.TimeoutException("?"), U, "TRANSPORT_ERROR"),
    (httpx.TransportError("?"), U, "TRANSPORT_ERROR"),
    (httpx.TooManyRedirects("loop"), U, "TRANSPORT_ERROR"),
]


@pytest.mark.parametrize(("exc", "category", "code"), TABLE, ids=[f"{type(e).__name__}-{c}" for e, _, c in TABLE])
def test_classification_table(exc: httpx.HTTPError, category: ErrorCategory, code: str) -> None:
    error = transport_error(exc)
    assert (error.category, error.code) == (category, code)
    assert type(exc).__name__ in error.message
    assert error.http_status is None


def _http_error_classes() -> list[type[httpx.HTTPError]]:
    seen: list[type[httpx.HTTPError]] = []
    pending: list[type[httpx.HTTPError]] = [httpx.HTTPError]
    while pending:
        kind = pending.pop()
        seen.append(kind)
        pending.extend(kind.__subclasses__())
    return [kind for kind in seen if kind.__module__.startswith("httpx")]


def test_only_failures_before_the_request_are_retryable() -> None:
    """Every httpx error class, raised without httpcore's proof: only connect and pool failures are safe to send
    again; a new httpx class would fall to unknown_outcome, never to retryable."""
    retryable = set()
    for kind in _http_error_classes():
        if kind is httpx.HTTPStatusError:
            continue  # only raise_for_status raises it; the clients never call it
        if transport_error(kind("x")).category is R:
            retryable.add(kind)
    assert retryable == {httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout}


def test_the_message_never_carries_the_exception_text() -> None:
    # httpx's text can hold the URL, and Alibaba's URL holds numbers and message texts.
    leaky = httpx.ReadTimeout("POST https://x/?To=85251230001&Message=your%20code%20is%201234")
    assert transport_error(leaky).message == "no answer within the read timeout (ReadTimeout)"


# --- real sockets -------------------------------------------------------------------------------------------------


def read_request(conn: socket.socket) -> bytes:
    """One HTTP request: its head, then as many body bytes as its Content-Length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")), 0
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


@contextmanager
def one_shot_server(handle: Callable[[socket.socket], None]) -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server on 127.0.0.1 that runs `handle` on its first connection and records what it read."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(2)
            received.append(read_request(conn))
            handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        listener.close()
        thread.join(timeout=3)


def classify_request(url: str, **client_options: object) -> tuple[ProviderError, type[Exception]]:
    timeout = httpx.Timeout(1.0, read=0.3)
    with httpx.Client(timeout=timeout, **client_options) as http:  # type: ignore[arg-type]
        try:
            http.post(url, content=b'{"to":"+6591000001"}')
        except httpx.HTTPError as exc:
            return transport_error(exc), type(exc)
    raise AssertionError("the request was expected to fail")


def test_a_refused_connection_is_retryable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed on leaving: nothing listens there any more
    error, raised = classify_request(f"http://127.0.0.1:{port}/")
    assert raised is httpx.ConnectError
    assert (error.category, error.code) == (R, "CONNECT_ERROR")


def test_a_proxy_refusing_the_tunnel_saw_nothing_of_the_request_and_is_retryable() -> None:
    def refuse(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    with one_shot_server(refuse) as (port, received):
        error, raised = classify_request("https://sms.example.invalid/send", proxy=f"http://127.0.0.1:{port}")
    assert raised is httpx.ProxyError
    assert (error.category, error.code) == (R, "PROXY_ERROR")
    assert received[0].startswith(b"CONNECT sms.example.invalid:443 ")
    assert b"+6591000001" not in received[0]  # the request itself never left


def test_a_server_that_reads_the_request_and_hangs_up_is_an_unknown_outcome() -> None:
    with one_shot_server(lambda conn: None) as (port, received):
        error, raised = classify_request(f"http://127.0.0.1:{port}/")
    assert raised is httpx.RemoteProtocolError
    assert (error.category, error.code) == (U, "REMOTE_PROTOCOL_ERROR")
    assert b"+6591000001" in received[0]  # it did arrive: a resend could deliver twice


def test_a_server_that_never_answers_is_an_unknown_outcome() -> None:
    release = threading.Event()
    with one_shot_server(lambda conn: release.wait(2)) as (port, received):
        try:
            error, raised = classify_request(f"http://127.0.0.1:{port}/")
        finally:
            release.set()
    assert raised is httpx.ReadTimeout
    assert (error.category, error.code) == (U, "READ_TIMEOUT")
    assert b"+6591000001" in received[0]


# --- the three clients classify alike -----------------------------------------------------------------------------


def raising(exc: Exception) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.Client(transport=httpx.MockTransport(handler))


def aliyun(http: httpx.Client) -> tuple[Provider, OutboundSms]:
    client = AliyunClient(AliyunSettings(access_key_id="id", access_key_secret=SecretStr("secret")), http=http)
    return client, OutboundSms("m1", "+6591000001", text="hello")


def tencent(http: httpx.Client) -> tuple[Provider, OutboundSms]:
    settings = TencentSettings(secret_id="id", secret_key=SecretStr("secret"), sdk_app_id="1400000000")
    return TencentSmsClient(settings, http=http), OutboundSms("m1", "+6591000001", template_id="1800308")


def huawei(http: httpx.Client) -> tuple[Provider, OutboundSms]:
    settings = HuaweiSettings(app_key="key", app_secret=SecretStr("secret"), sender="isms100000001")
    client = HuaweiClient(settings, http=http, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    return client, OutboundSms("m1", "+6591000001", template_id="tplA", template_params=("1",))


@pytest.mark.parametrize("make", [aliyun, tencent, huawei], ids=["aliyun", "tencent", "huawei"])
@pytest.mark.parametrize(("exc", "category", "code"), TABLE, ids=[f"{type(e).__name__}-{c}" for e, _, c in TABLE])
def test_every_client_reports_a_failure_the_same_way(
    make: Callable[[httpx.Client], tuple[Provider, OutboundSms]],
    exc: httpx.HTTPError,
    category: ErrorCategory,
    code: str,
) -> None:
    client, message = make(raising(exc))
    [outcome] = client.send([message])
    assert outcome.error is not None
    assert (outcome.error.category, outcome.error.code) == (category, code)
    assert outcome.provider_message_id is None
