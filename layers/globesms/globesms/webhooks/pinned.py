"""An httpx client for one webhook delivery: it connects only to the addresses that were vetted, and every network
operation gets at most what is left of the delivery's deadline.

httpx resolves the URL's host itself when it connects, which would be a second DNS lookup after the one whose
answer was vetted (a name can answer differently each time: DNS rebinding). httpcore lets a connection pool take
a network backend; this backend ignores the resolver and opens the TCP connection to the vetted addresses, in
order, the next one when one refuses the connection or does not take it within its connect timeout (nothing was
sent on a connection never opened, so trying the next cannot deliver twice), while the
URL keeps the host name, so the Host header, TLS SNI and the certificate check are those of the customer's host.
The same backend wraps each stream so that a read, a write, the TLS handshake and the connect each get
min(their own timeout, what is left of the deadline): past the deadline the delivery fails with DeadlineExceeded
and the client (its only connection) is closed.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Sequence
from typing import Any

import httpcore
import httpx

from globesms.cookieless import CookielessClient
from globesms.tls import verifying_context


class DeadlineExceeded(Exception):
    """The delivery's overall deadline passed (raised from inside httpcore; httpx passes it through unmapped)."""


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _left(self, timeout: float | None) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded
        return left if timeout is None else min(timeout, left)

    def _check(self, exc: Exception) -> None:
        if time.monotonic() >= self._deadline:
            raise DeadlineExceeded from None
        raise exc

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return self._inner.read(max_bytes, self._left(timeout))
        except httpcore.TimeoutException as exc:
            self._check(exc)
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            self._inner.write(buffer, self._left(timeout))
        except httpcore.TimeoutException as exc:
            self._check(exc)
            raise

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        try:
            inner = self._inner.start_tls(ssl_context, server_hostname, self._left(timeout))
        except httpcore.TimeoutException as exc:
            self._check(exc)
            raise
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """Connects `host` (the only origin of a delivery: redirects are not followed) to the first of `addresses` that
    takes the connection, whatever DNS says now."""

    def __init__(self, host: str, addresses: Sequence[str], deadline: float) -> None:
        if not addresses:
            raise ValueError("a delivery needs an address to connect to")
        self._host = host.strip("[]").lower()
        self._addresses = list(addresses)
        self._deadline = deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if host.strip("[]").lower() != self._host:
            raise httpcore.ConnectError("a delivery connects only to its callback's host")
        for address in self._addresses[:-1]:
            try:
                return self._connect(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue  # this address is down: the next one (no byte of the request went out)
        return self._connect(self._addresses[-1], port, timeout, local_address, socket_options)

    def _connect(
        self,
        address: str,
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[Any] | None,
    ) -> httpcore.NetworkStream:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded
        try:
            stream = self._inner.connect_tcp(
                address,
                port,
                timeout=left if timeout is None else min(timeout, left),
                local_address=local_address,
                socket_options=socket_options,
            )
        except httpcore.ConnectTimeout:
            if time.monotonic() >= self._deadline:
                raise DeadlineExceeded from None
            raise
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("a delivery never connects to a unix socket")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _PinnedTransport(httpx.HTTPTransport):
    def __init__(self, backend: PinnedBackend, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx 0.28 takes no network backend; its pool is replaced by httpcore's own with ours (one connection:
        # one delivery). `_pool` is what HTTPTransport sends through; httpx is pinned in pyproject.toml and
        # tests/integration/test_webhook_delivery.py sends through this transport over real sockets.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, max_connections=1, network_backend=backend, retries=0
        )


def pinned_client(
    host: str,
    addresses: Sequence[str],
    deadline: float,
    *,
    timeout: httpx.Timeout,
    headers: dict[str, str],
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.Client:
    """A client for one delivery to `host`, connected to one of `addresses` only (the first that takes the
    connection), within `deadline` (time.monotonic())."""
    transport = _PinnedTransport(PinnedBackend(host, addresses, deadline), ssl_context or verifying_context())
    return CookielessClient(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False, headers=headers
    )
