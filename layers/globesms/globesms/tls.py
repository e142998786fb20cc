"""The one verifying TLS context every outbound HTTPS client of a process shares (provider APIs, customer webhooks).

Given no context, each `httpx.Client` builds its own, loading certifi's root certificates again (~25-50 ms of CPU
each here): a process that builds several clients paid it each time (reconcile builds one per provider: three
clients 162 -> 46.5 ms). An `ssl.SSLContext` is safe to share between clients and threads; built once, on first
use (not at import: a handler that makes no HTTPS call never pays for it).

The roots are certifi's, as httpx's own default. In the layer they are read from the hashed directory its build
writes (`globesms.tls_roots`): one root when a handshake needs it, instead of all ~120 when the context is built
(35-65 ms of CPU in each cold start that calls out). SSL_CERT_FILE or SSL_CERT_DIR, when set, are honoured as httpx
honours them; without the directory (a source tree), the bundle is read whole, as before.
"""

from __future__ import annotations

import ssl
from functools import cache
from pathlib import Path

import certifi
import httpx

from globesms.config import environment
from globesms.tls_roots import hashed_roots


@cache
def verifying_context() -> ssl.SSLContext:
    """httpx's default verifying context, with certifi's roots looked up in their hashed directory when the layer
    has one for the installed certifi."""
    env = environment()
    if env.get("SSL_CERT_FILE") or env.get("SSL_CERT_DIR"):
        return httpx.create_ssl_context()
    folder = hashed_roots(Path(certifi.where()))
    if folder is None:
        return httpx.create_ssl_context()
    return ssl.create_default_context(capath=str(folder))
