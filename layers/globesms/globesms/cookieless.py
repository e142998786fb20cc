"""The `httpx.Client` every outbound call goes through (provider APIs, customers' webhook endpoints): one that keeps
no cookies.

None of the providers' APIs uses cookies (each call is signed on its own), and a customer's endpoint has no business
leaving state in the sender. httpx keeps cookies with no way to turn it off: after every answer its client hands
the request and the answer to `http.cookiejar` through urllib-shaped copies of both, Set-Cookie or not, ~38 µs of
CPU a call here (of ~60 µs for httpx's whole send of a small request; a single OTP's whole call with our Alibaba
client 117 -> 80 µs). This client's jar is empty and stays empty: nothing is extracted, nothing is sent back.
"""

from __future__ import annotations

from typing import Any

import httpx


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


class CookielessClient(httpx.Client):
    """An `httpx.Client` whose cookie jar is always empty (`cookies=` is not taken)."""

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.get("cookies"):
            raise ValueError("CookielessClient keeps no cookies")
        self._no_cookies = _NoCookies()
        super().__init__(**kwargs)

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        if cookies:
            raise ValueError("CookielessClient keeps no cookies")
