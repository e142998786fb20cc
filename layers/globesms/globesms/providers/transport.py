"""What an httpx failure means for a provider call, in one place for every provider client.

The question is always the same: could the provider have received the request? A failure that proves nothing of
the request left this process is `retryable` (sending it again cannot text anybody twice); anything after the
first byte may have been written is `unknown_outcome` (the record stays SENDING and the delivery receipt decides);
a request httpx refused to write because *we* built it wrong is `request` (sending it again fails the same way).

Where each exception comes from (httpx 0.28 / httpcore 1.0, the versions pinned for the layer):
- `ConnectError`, `ConnectTimeout`: opening the TCP connection or the TLS handshake (httpcore's `connect_tcp` and
  `start_tls`), before the request is written. Through a proxy the same holds for the connection to the proxy.
- `PoolTimeout`: waiting for a free connection of the pool (`ConnectionPool.handle_request`, before any
  connection is given the request).
- `ProxyError`: httpcore raises it in two places only, both before the request goes out: the proxy refused the
  `CONNECT` of an HTTPS tunnel (non-2xx answer), or the SOCKS5 handshake failed. A plain-HTTP forward proxy
  never raises it: its own failures come back as responses (502...). So it is retryable *when it comes from
  httpcore* (httpx chains httpcore's exception as `__cause__`); a `ProxyError` raised anywhere else (another
  transport) gives no such proof and is an unknown outcome.
- `UnsupportedProtocol`: the URL has a scheme httpx cannot send (nothing sent; our configuration).
- `LocalProtocolError`: h11 refused what we asked it to write (bad header, body not matching Content-Length).
  Our bug: resending it fails the same way. If it happens mid-body, the server got an incomplete request it
  cannot act on.
- `WriteTimeout`, `WriteError`: part of the request was written, perhaps all of it (a socket buffer accepts a
  whole small request at once).
- `ReadTimeout`, `ReadError`, `RemoteProtocolError`: the request was written; the answer is late, cut off or
  garbled ("server disconnected without sending a response" included: the server may have acted first).
- `DecodingError`: the answer came and could not be decoded. Any other or future `HTTPError` (`CloseError`, the
  `NetworkError`/`TimeoutException` bases, a transport of our own): no proof either way, so unknown.
"""

from __future__ import annotations

from typing import Final

import httpcore
import httpx

from globesms.errors import ErrorCategory, ProviderCallCode, ProviderError

_RETRYABLE = ErrorCategory.RETRYABLE
_UNKNOWN = ErrorCategory.UNKNOWN_OUTCOME
_CODE = ProviderCallCode

#: (exception type, category, our code: its meaning is the error's message). Checked in order: subclasses before
#: their bases.
TRANSPORT_FAILURES: Final[tuple[tuple[type[httpx.HTTPError], ErrorCategory, ProviderCallCode], ...]] = (
    (httpx.ConnectTimeout, _RETRYABLE, _CODE.CONNECT_TIMEOUT),
    (httpx.ConnectError, _RETRYABLE, _CODE.CONNECT_ERROR),
    (httpx.PoolTimeout, _RETRYABLE, _CODE.POOL_TIMEOUT),
    (httpx.UnsupportedProtocol, ErrorCategory.CONFIG, _CODE.UNSUPPORTED_PROTOCOL),
    (httpx.LocalProtocolError, ErrorCategory.REQUEST, _CODE.LOCAL_PROTOCOL_ERROR),
    (httpx.WriteTimeout, _UNKNOWN, _CODE.WRITE_TIMEOUT),
    (httpx.WriteError, _UNKNOWN, _CODE.WRITE_ERROR),
    (httpx.ReadTimeout, _UNKNOWN, _CODE.READ_TIMEOUT),
    (httpx.ReadError, _UNKNOWN, _CODE.READ_ERROR),
    (httpx.RemoteProtocolError, _UNKNOWN, _CODE.REMOTE_PROTOCOL_ERROR),
    (httpx.DecodingError, _UNKNOWN, _CODE.DECODING_ERROR),
)

_PROXY_REFUSED = ProviderError(
    _RETRYABLE, _CODE.PROXY_ERROR, "the proxy refused to connect us, before the request (ProxyError)"
)
_PROXY_UNPROVEN = ProviderError(_UNKNOWN, _CODE.PROXY_ERROR, "a proxy failure of unknown timing (ProxyError)")


def transport_error(exc: httpx.HTTPError) -> ProviderError:
    """The outcome of a provider call that `httpx.Client.send` ended with `exc`.

    The message names the exception class only: httpx's own text can carry the URL (numbers, message texts in
    Alibaba's query string) and is never needed to decide what to do next."""
    if isinstance(exc, httpx.ProxyError):
        return _PROXY_REFUSED if isinstance(exc.__cause__, httpcore.ProxyError) else _PROXY_UNPROVEN
    for kind, category, code in TRANSPORT_FAILURES:
        if isinstance(exc, kind):
            return ProviderError(category, code, f"{code.meaning} ({type(exc).__name__})")
    return ProviderError(_UNKNOWN, _CODE.TRANSPORT_ERROR, f"the exchange failed mid-way ({type(exc).__name__})")
