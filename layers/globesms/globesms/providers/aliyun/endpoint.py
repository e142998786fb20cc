"""The `httpx.Request`s of one Alibaba endpoint, built without `httpx.Client.build_request`'s per-call work.

Why by hand: `build_request` parses and re-validates the whole URL character by character in Python (about a
third of a single send's CPU time), merges the client's headers, cookies and parameters into new objects and
normalises every header again, for every call. Here the endpoint is parsed once, and a call's query string (always
canonical: only RFC 3986 unreserved characters, `%XX`, `=` and `&`, which httpx's parser passes through unchanged)
is set on that parsed URL as it is; the client's own headers and cookies are still applied to every request, as
`build_request` would. `tests/unit/providers/test_aliyun_endpoint.py` checks that the result is the request
`build_request` makes.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx

_CONTENT_LENGTH = b"Content-Length"


class Endpoint:
    """POST requests to `url` (no query, no fragment) sent through `http`, with `timeout`."""

    __slots__ = ("_extensions", "_http", "_parsed", "url")

    def __init__(self, http: httpx.Client, url: str, timeout: httpx.Timeout) -> None:
        self._http = http
        self.url = httpx.URL(url)
        self._extensions = {"timeout": timeout.as_dict()}
        # httpx keeps a URL as its parsed parts (`_uri_reference`, a NamedTuple): with the query replaced it is the
        # URL httpx would parse from the whole string. Checked here, once, so that an httpx whose URL is made
        # differently gets its own parser for every request instead of a wrong URL.
        parsed = getattr(self.url, "_uri_reference", None)
        self._parsed = parsed if parsed is not None and self._fast_url_agrees(parsed) else None

    def post(self, query: str, headers: Iterable[tuple[str, str]], body: bytes) -> httpx.Request:
        """`POST url?query` (no `?` for an empty `query`) with `headers` (names and values ASCII, `Host` among them:
        the caller signs it) and `body`; `Content-Length` is added."""
        request = httpx.Request(
            "POST",
            self._url(query),
            headers=[
                *self._http.headers.raw,  # the client's own (User-Agent, Accept...), read per call as httpx does
                *[(name.encode(), value.encode()) for name, value in headers],
                (_CONTENT_LENGTH, str(len(body)).encode()),
            ],
            stream=httpx.ByteStream(body),
            extensions=self._extensions,
        )
        request.read()  # `request.content`, as `build_request` leaves it
        if self._http.cookies:
            self._http.cookies.set_cookie_header(request)
        return request

    def _url(self, query: str) -> httpx.URL:
        if self._parsed is None:
            return self.url.copy_with(query=query.encode() or None)
        url = httpx.URL.__new__(httpx.URL)
        url._uri_reference = self._parsed._replace(query=query or None)
        return url

    def _fast_url_agrees(self, parsed: object) -> bool:
        sample = "Action=Send&Message=a%20%2B%E4%BD%A0%7E"
        try:
            url = httpx.URL.__new__(httpx.URL)
            url._uri_reference = parsed._replace(query=sample)  # type: ignore[attr-defined]
            parsed_whole = httpx.URL(f"{self.url}?{sample}")
            return url == parsed_whole and url.raw_path == parsed_whole.raw_path
        except (AttributeError, TypeError, ValueError):
            return False
