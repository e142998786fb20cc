"""The httpx plumbing every provider client shares: the timeouts of a call, and releasing the client's
`httpx.Client` (`close()`, or a `with` block)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx


def call_timeout(connect: float, read: float) -> httpx.Timeout:
    """Connecting and waiting for a pooled connection are bounded by `connect`; writing the request and reading the
    answer by `read`."""
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


class HttpClientOwner:
    """A provider client that sends through `self._http`. `close()` releases it, unless `self._owns_http` is False
    (a client handed in is closed by whoever made it)."""

    _http: httpx.Client
    _owns_http: bool = True

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
