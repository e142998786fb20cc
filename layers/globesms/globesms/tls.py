"""The one verifying TLS context every outbound HTTPS client of a process shares (provider APIs, customer webhooks).

Given no context, each `httpx.Client` builds its own, loading certifi's root certificates again (~25-50 ms of CPU
each here): a process that builds several clients paid it each time (reconcile builds one per provider: three
clients 162 -> 46.5 ms). An `ssl.SSLContext` is safe to share between clients and threads; built once, on first
use (not at import: a handler that makes no HTTPS call never pays for it).
"""

from __future__ import annotations

import ssl
from functools import cache

import httpx


@cache
def verifying_context() -> ssl.SSLContext:
    """httpx's default verifying context (certifi's roots; SSL_CERT_FILE and SSL_CERT_DIR honoured, as httpx's own
    clients do)."""
    return httpx.create_ssl_context()
