"""GET /v1/openapi.json and GET /v1/docs through the local API Gateway (the routes, and whether they need a key, as
template.yaml declares them), and the docs page rendered by a real headless Chromium with no internet access."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from globesms.api.resolver import openapi_document
from globesms.config import settings
from tests.integration.gateway import InProcessApi

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def docs_gateway(api: ModuleType, context: Any, *, parameter: str | None = None) -> InProcessApi:
    environ = {} if parameter is None else {"LOCAL_PARAMETERS": json.dumps({"DocsRequireApiKey": parameter})}
    return InProcessApi(api.lambda_handler, context, environ)


def test_the_document_is_served_without_a_key_by_default(load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    gateway = docs_gateway(api, lambda_context)
    answer = gateway.call("GET", "/v1/openapi.json", key=None)
    assert answer.status == 200, answer.body
    assert answer.header("content-type") == "application/json"
    document = answer.json()
    assert document == json.loads(openapi_document())
    assert document["info"]["title"] == "globesms"
    assert {"/v1/messages", "/v1/messages/{message_id}", "/v1/batches/{batch_id}"} <= set(document["paths"])
    assert document["components"]["securitySchemes"]["api_key"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "the API key of the usage plan",
    }
    # The docs routes document the API, not themselves.
    assert not {"/v1/docs", "/v1/openapi.json"} & set(document["paths"])
    # Every route needs the key, and says what API Gateway answers without it.
    for operations in document["paths"].values():
        for operation in operations.values():
            assert operation["responses"]["403"]["description"].startswith("Forbidden"), operation
    page = gateway.call("GET", "/v1/docs", key=None)
    assert page.status == 200 and page.header("content-type") == "text/html; charset=utf-8"
    assert_self_contained(page.body.decode())
    # The page shows (and links, as ?format=json) the document /v1/openapi.json serves.
    assert gateway.call("GET", "/v1/docs", query="format=json", key=None).json() == document
    assert "<title>globesms API</title>" in page.body.decode()


def test_with_docs_require_api_key_the_gateway_and_the_function_both_ask_for_the_key(  # type: ignore[no-untyped-def]
    load_handler, lambda_context, monkeypatch
) -> None:
    api = load_handler("send_api")
    monkeypatch.setenv("GLOBESMS_DOCS_REQUIRE_API_KEY", "true")  # what the template sets from the same parameter
    settings.cache_clear()
    gateway = docs_gateway(api, lambda_context, parameter="true")
    for path in ("/v1/docs", "/v1/openapi.json"):
        refused = gateway.call("GET", path, key=None)
        assert (refused.status, refused.json()) == (403, {"message": "Forbidden"}), path  # API Gateway's own 403
        assert gateway.call("GET", path).status == 200, path
    # A gateway that lets the request through without a key (a stage not redeployed after the parameter changed):
    # the function refuses it as well.
    open_gateway = docs_gateway(api, lambda_context, parameter="false")
    refused = open_gateway.call("GET", "/v1/openapi.json", key=None)
    assert refused.status == 403
    assert refused.json()["error"]["code"] == "API_KEY_REQUIRED"


def assert_self_contained(html: str) -> None:
    """Every script and style is inline: nothing is fetched from a CDN (or from anywhere)."""
    assert "SwaggerUIBundle" in html
    assert not re.findall(r"<script[^>]*\bsrc=", html)
    assert not re.findall(r"<link[^>]*\bhref=", html)


# ---- the page in a real browser ----


def browser() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


@pytest.fixture
def served_docs(load_handler, lambda_context) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The API on an HTTP port of 127.0.0.1, as a browser reaches it."""
    gateway = docs_gateway(load_handler("send_api"), lambda_context)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            answer = gateway.call("GET", path, query=query, key=None)
            self.send_response(answer.status)
            for name, values in answer.headers.items():
                for value in values:
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def run_browser(executable: str, profile: Path, *arguments: str) -> subprocess.CompletedProcess[bytes]:
    command = [
        executable,
        "--headless",
        "--no-sandbox",  # tests may run as root (CI containers), where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        # No internet: every request that is not to 127.0.0.1 goes to a proxy that does not exist (loopback is
        # never proxied), so a page that needed a CDN would render nothing.
        "--proxy-server=http://127.0.0.1:9",
        # Runs the page's scripts to completion (virtual time) before dumping or capturing it.
        "--virtual-time-budget=20000",
        *arguments,
    ]
    return subprocess.run(command, capture_output=True, timeout=180, check=True)


def test_the_docs_page_renders_the_api_in_a_headless_browser(
    served_docs: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    executable = browser()
    if executable is None:
        pytest.skip(
            "no Chromium on this machine, so /v1/docs was not rendered: install it (Debian: apt-get install chromium; "
            "make test does so in CI when run as root)"
        )
    url = f"{served_docs}/v1/docs"
    dom = run_browser(executable, tmp_path / "profile", "--dump-dom", url).stdout.decode()
    # Swagger UI replaced "Loading..." with the document: its title and every route.
    assert re.search(r'class="title"[^>]*>globesms\b', dom), dom[:2000]
    rendered_paths = set(re.findall(r'data-path="([^"]+)"', dom))
    document_paths = set(json.loads(fetch_document(served_docs))["paths"])
    assert rendered_paths == document_paths
    screenshot = tmp_path / "docs.png"
    run_browser(executable, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1280,1400", url)
    image = screenshot.read_bytes()
    assert image[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")
    assert (width, height) == (1280, 1400)
    # A blank page compresses to a few kilobytes; the rendered route list does not.
    assert len(image) > 50_000, f"{screenshot}: {len(image)} bytes, a blank page?"


def fetch_document(base: str) -> str:
    with urllib.request.urlopen(f"{base}/v1/openapi.json", timeout=30) as answer:  # noqa: S310 - 127.0.0.1 only
        text: str = answer.read().decode()
    return text
