"""TC3-HMAC-SHA256, the request signature of Tencent Cloud API 3.0, as small pure steps.

canonical request -> string to sign -> signature -> Authorization header, each a function of its inputs only
(the timestamp is passed in; TC3 has no nonce: replay protection is the provider's 5-minute timestamp window).
`Tc3Signer` strings the steps together for one host and caches the derived signing key per UTC day, so the hot
path of a call is one SHA-256 over the body, one over the canonical request and a single HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field

from pydantic import SecretStr

ALGORITHM = "TC3-HMAC-SHA256"
TERMINATOR = "tc3_request"
#: The SDK signs exactly these two headers; the provider requires at least them.
SIGNED_HEADERS = "content-type;host"
JSON_CONTENT_TYPE = "application/json"


def hashed_payload(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def canonical_request(*, method: str, uri: str, query: str, content_type: str, host: str, payload_hash: str) -> str:
    # Tencent's document lower-cases header values as well as names; `host` comes lower-cased from httpx and the
    # content type is a constant, so lower-casing here only matters for hand-built inputs (and keeps us exact).
    canonical_headers = f"content-type:{content_type.strip().lower()}\nhost:{host.strip().lower()}\n"
    return f"{method}\n{uri}\n{query}\n{canonical_headers}\n{SIGNED_HEADERS}\n{payload_hash}"


def utc_date(timestamp: int) -> str:
    """The scope date: the UTC calendar day of the X-TC-Timestamp (not the local day)."""
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def credential_scope(date: str, service: str) -> str:
    return f"{date}/{service}/{TERMINATOR}"


def string_to_sign(timestamp: int, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def signing_key(secret_key: str, date: str, service: str) -> bytes:
    key = hmac.digest(("TC3" + secret_key).encode("utf-8"), date.encode("utf-8"), "sha256")
    key = hmac.digest(key, service.encode("utf-8"), "sha256")
    return hmac.digest(key, TERMINATOR.encode("utf-8"), "sha256")


def signature(key: bytes, to_sign: str) -> str:
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(secret_id: str, scope: str, signature_hex: str) -> str:
    # ", " between the parts, exactly as the SDK and the docs write it.
    return f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={SIGNED_HEADERS}, Signature={signature_hex}"


@dataclass(frozen=True, slots=True)
class _DayKey:
    date: str
    key: bytes = field(repr=False)  # derived from the secret key: it signs any request of that day


class Tc3Signer:
    """Signs `POST /` JSON requests to one host of one service with one key pair."""

    __slots__ = ("_day_key", "_host", "_secret_id", "_secret_key", "_service")

    def __init__(self, *, secret_id: str, secret_key: SecretStr, service: str, host: str) -> None:
        self._secret_id = secret_id
        self._secret_key = secret_key
        self._service = service
        self._host = host
        self._day_key: _DayKey | None = None

    def __repr__(self) -> str:
        return f"Tc3Signer(secret_id={self._secret_id!r}, service={self._service!r}, host={self._host!r})"

    def _key_for(self, date: str) -> bytes:
        cached = self._day_key
        if cached is None or cached.date != date:
            cached = _DayKey(date, signing_key(self._secret_key.get_secret_value(), date, self._service))
            self._day_key = cached  # a race here only derives the same key twice
        return cached.key

    def authorization(self, body: bytes, timestamp: int) -> str:
        """The Authorization header for a JSON POST of `body` sent with `X-TC-Timestamp: timestamp`."""
        date = utc_date(timestamp)
        scope = credential_scope(date, self._service)
        canonical = canonical_request(
            method="POST",
            uri="/",
            query="",
            content_type=JSON_CONTENT_TYPE,
            host=self._host,
            payload_hash=hashed_payload(body),
        )
        return authorization(
            self._secret_id, scope, signature(self._key_for(date), string_to_sign(timestamp, scope, canonical))
        )
