"""`Endpoint.post` builds the request `httpx.Client.build_request` would build, without its per-call parsing."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from globesms.providers.aliyun.endpoint import Endpoint
from globesms.providers.aliyun.signer import canonical_query
from globesms.providers.http_client import call_timeout

TIMEOUT = call_timeout(2.0, 7.0)
HEADERS = [("host", "sms.example.com"), ("x-acs-action", "SendMessageToGlobe"), ("authorization", "ACS3 x")]


def built_by_httpx(http: httpx.Client, url: str, query: str, body: bytes) -> httpx.Request:
    full = f"{url}?{query}" if query else url
    return http.build_request("POST", full, headers=dict(HEADERS), content=body, timeout=TIMEOUT)


def assert_same(ours: httpx.Request, theirs: httpx.Request) -> None:
    assert ours.method == theirs.method
    assert ours.url == theirs.url
    assert (ours.url.raw_path, ours.url.query, str(ours.url)) == (
        theirs.url.raw_path,
        theirs.url.query,
        str(theirs.url),
    )
    # The same headers (order on the wire aside), names as sent.
    assert sorted(ours.headers.raw) == sorted(theirs.headers.raw)
    assert ours.content == theirs.content
    assert ours.extensions == theirs.extensions


@given(
    st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=30), max_size=6),
    st.booleans(),
)
def test_the_request_is_the_one_build_request_makes(params: dict[str, str], in_body: bool) -> None:
    query = canonical_query(params)
    body = query.encode() if in_body else b""
    query = "" if in_body else query
    with httpx.Client() as http:
        endpoint = Endpoint(http, "https://sms.example.com/", TIMEOUT)
        assert_same(endpoint.post(query, HEADERS, body), built_by_httpx(http, "https://sms.example.com/", query, body))


@pytest.mark.parametrize(
    "url", ["https://sms.example.com/", "http://127.0.0.1:8080/sms/", "https://sms.example.com:443/"]
)
def test_client_headers_cookies_and_paths_are_applied(url: str) -> None:
    with httpx.Client(headers={"User-Agent": "globesms-test", "X-Extra": "1"}, cookies={"acw_tc": "abc"}) as http:
        endpoint = Endpoint(http, url, TIMEOUT)
        ours = endpoint.post("A=1&B=%20", HEADERS, b"")
        assert_same(ours, built_by_httpx(http, url, "A=1&B=%20", b""))
        assert ours.headers["cookie"] == "acw_tc=abc"
        assert ours.headers["user-agent"] == "globesms-test"


def test_an_httpx_without_the_parsed_url_parses_every_url() -> None:
    with httpx.Client() as http:
        endpoint = Endpoint(http, "https://sms.example.com/", TIMEOUT)
        endpoint._parsed = None  # as when httpx's URL no longer keeps `_uri_reference`
        assert_same(endpoint.post("A=1", HEADERS, b""), built_by_httpx(http, "https://sms.example.com/", "A=1", b""))
