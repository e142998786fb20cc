"""The webhook signature, as Stripe and Svix do it (standard library only: a receiver can copy this file).

    Globesms-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>[,v1=<…>]

One `v1=` per signing secret: while a secret is being rotated the sender signs with the new and the old one, and a
receiver that knows either accepts the event. The timestamp is inside the signed text, so a captured request cannot
be replayed later than the receiver's tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

SIGNATURE_HEADER = "Globesms-Signature"
EVENT_ID_HEADER = "Globesms-Event-Id"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
MAX_SIGNATURES = 8  # a header with more v1= values than this is refused (bounded work per request)

Secrets = str | Sequence[str]


def _secrets(secret: Secrets) -> list[str]:
    return [secret] if isinstance(secret, str) else list(secret)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """hex HMAC-SHA256 of `<timestamp>.<body>` under `secret` (its UTF-8 bytes)."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: Secrets, timestamp: int, body: bytes) -> str:
    """The value of the Globesms-Signature header: `t=<timestamp>,v1=<signature>`, one v1= per secret."""
    secrets = _secrets(secret)
    if not secrets or not all(secrets):
        raise ValueError("a webhook signing secret is required")
    return ",".join([f"t={timestamp}", *(f"{SCHEME}={signature(s, timestamp, body)}" for s in secrets)])


def verify(secret: Secrets, header: str, body: bytes, now: float, tolerance: int = DEFAULT_TOLERANCE_SECONDS) -> bool:
    """True when `header` carries a v1 signature of exactly `body` under `secret` (or any of several secrets) and
    its timestamp is within `tolerance` seconds of `now` (unix seconds), either way. Constant-time comparisons;
    other schemes (v0=, …) are ignored; a malformed header is simply not valid."""
    timestamp: int | None = None
    candidates: list[bytes] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if timestamp is not None or not (value.isascii() and value.isdigit() and len(value) <= 12):
                return False
            timestamp = int(value)
        elif key == SCHEME:
            candidates.append(value.encode())
    if timestamp is None or not candidates or len(candidates) > MAX_SIGNATURES:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    secrets = [s for s in _secrets(secret) if s]
    expected = [signature(s, timestamp, body).encode() for s in secrets]
    matched = False
    for wanted in expected:
        for candidate in candidates:
            matched |= hmac.compare_digest(wanted, candidate)  # every pair compared: timing says nothing
    return matched
