"""The httpx plumbing every provider client shares: the timeouts of a call, and releasing the client's
`httpx.Client` (`close()`, or a `with` block)."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

import httpx


def call_timeout(connect: float, read: float) -> httpx.Timeout:
    """Connecting and waiting for a pooled connection are bounded by `connect`; writing the request and reading the
    answer by `read`."""
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


class CallTimeouts(Protocol):
    """What every provider's settings model carries (providers/settings.py's shared variables)."""

    @property
    def connect_timeout(self) -> float: ...

    @property
    def read_timeout(self) -> float: ...


class HttpClientOwner[Settings: CallTimeouts]:
    """A provider client that sends through `self._http`. `close()` releases it, unless `self._owns_http` is False
    (a client handed in is closed by whoever made it)."""

    settings: Settings
    _http: httpx.Client
    _owns_http: bool = True

    @property
    def longest_call_seconds(self) -> float:
        """How long one call may take before its timeouts end it, as a rule: connecting, then waiting for the
        answer. Writing a request (at most ~100 KB) and the pool's wait (a dispatcher makes its calls one after
        another) take no time worth counting. Not a hard bound: httpcore gives the TLS handshake a connect timeout
        of its own, and each read of a slow answer the read timeout; the dispatcher's recording reserve absorbs
        the handshake's (`dispatch.rate_limits.RECORDING_RESERVE_SECONDS`)."""
        return self.settings.connect_timeout + self.settings.read_timeout

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
