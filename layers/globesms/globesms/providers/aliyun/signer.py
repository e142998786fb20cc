"""ACS3-HMAC-SHA256, Alibaba Cloud's V3 request signature, as small pure steps (no clock, no randomness, no I/O).

    canonical request = METHOD \\n path \\n canonical query \\n canonical headers \\n signed names \\n hex sha256(body)
    string to sign    = "ACS3-HMAC-SHA256" \\n hex sha256(canonical request)
    signature         = hex HMAC-SHA256(AccessKeySecret, string to sign)
    Authorization     = ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<names>,Signature=<signature>

Checked byte for byte against the official SDK (alibabacloud-tea-openapi) in tests/unit/providers/
test_aliyun_sdk_signature.py. The caller supplies the date and nonce headers; `acs_date` formats a moment.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()

HeaderPairs = Mapping[str, str] | Iterable[tuple[str, str]]


def acs_date(moment: datetime) -> str:
    """`x-acs-date`: UTC, ISO 8601 to the second (`2024-01-02T03:04:05Z`)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
_BYTE = tuple(bytes((byte,)) for byte in range(256))
_ESCAPE = tuple(f"%{byte:02X}".encode() for byte in range(256))
_ASCII_RESERVED = tuple(byte for byte in range(128) if byte not in _UNRESERVED and byte != ord("%"))


def percent_encode(value: str) -> str:
    """RFC 3986 on the UTF-8 bytes: only A-Z a-z 0-9 - _ . ~ stay as they are (space is %20, `*` is %2A,
    `/` is %2F). Raises UnicodeEncodeError for text that is not valid Unicode (lone surrogates).

    The same result as `urllib.parse.quote(value, safe="~")`, which walks the text byte by byte in Python; a full
    batch is ~100 KB of JSON, so ASCII text (the batch JSON always is) takes one C-speed `bytes.replace` per
    reserved character actually present instead."""
    if not value.isascii():
        return quote(value, safe="~")
    data = value.encode()
    reserved = data.translate(None, _UNRESERVED)
    if not reserved:
        return value
    if b"%" in reserved:
        data = data.replace(b"%", b"%25")  # first: the other escapes add "%" of their own
    for byte in _ASCII_RESERVED:
        if byte in reserved:
            data = data.replace(_BYTE[byte], _ESCAPE[byte])
    return data.decode()


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_SHA256


def canonical_query(params: Mapping[str, str]) -> str:
    """Parameters sorted by name, each `name=value` percent-encoded, joined by `&`. The result is also a valid
    query string to send as it is, so the client builds it once for both purposes."""
    return join_encoded_query({percent_encode(name): percent_encode(value) for name, value in params.items()})


def join_encoded_query(encoded: Mapping[str, str]) -> str:
    """`canonical_query` for names and values that are percent-encoded already."""
    return "&".join(f"{name}={encoded[name]}" for name in sorted(encoded))


def canonical_headers(headers: HeaderPairs) -> tuple[str, str]:
    """(`name:value\\n` for every header, the names joined by `;`): names lower-cased and sorted, values trimmed;
    a name sent more than once gets its values sorted and joined by `,`."""
    if isinstance(headers, Mapping):
        lowered = {name.lower(): value.strip() for name, value in headers.items()}
        if len(lowered) == len(headers):  # no name twice: nothing to group (a client's own headers, every call)
            names = sorted(lowered)
            return "".join([f"{name}:{lowered[name]}\n" for name in names]), ";".join(names)
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name.lower(), []).append(value.strip())
    names = sorted(grouped)
    block = "".join(f"{name}:{','.join(sorted(grouped[name]))}\n" for name in names)
    return block, ";".join(names)


def canonical_request(
    method: str, path: str, query: str, headers_block: str, signed_headers: str, body_sha256: str
) -> str:
    return f"{method}\n{path}\n{query}\n{headers_block}\n{signed_headers}\n{body_sha256}"


def string_to_sign(canonical: str) -> str:
    return f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def signature(secret: bytes, to_sign: str) -> str:
    return hmac.digest(secret, to_sign.encode(), "sha256").hex()


def authorization_header(access_key_id: str, signed_headers: str, signature_hex: str) -> str:
    return f"{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature_hex}"


class Acs3Signer:
    """The steps above bound to one AccessKey pair. The secret is kept as bytes and never shown by repr."""

    __slots__ = ("_secret", "access_key_id")

    def __init__(self, access_key_id: str, access_key_secret: str) -> None:
        self.access_key_id = access_key_id
        self._secret = access_key_secret.encode()

    def __repr__(self) -> str:
        return f"Acs3Signer(access_key_id={self.access_key_id!r})"

    def authorization(
        self, method: str, path: str, query: str, headers: HeaderPairs, body_sha256: str = EMPTY_BODY_SHA256
    ) -> str:
        """The `Authorization` value for a request whose canonical query is `query` and whose headers to sign
        are `headers` (exactly those; every header in it is signed)."""
        headers_block, signed = canonical_headers(headers)
        canonical = canonical_request(method, path, query, headers_block, signed, body_sha256)
        return authorization_header(self.access_key_id, signed, signature(self._secret, string_to_sign(canonical)))
