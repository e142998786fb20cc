"""TC3-HMAC-SHA256 steps, checked against the worked example of Tencent's "Signature v3" document."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from globesms.providers.tencent import signer

# The document's example: CVM DescribeInstances, 2019-02-25T16:44:25Z, body with "未命名" ASCII-escaped by json.dumps.
DOC_TIMESTAMP = 1551113065
DOC_HOST = "cvm.tencentcloudapi.com"
DOC_CONTENT_TYPE = "application/json; charset=utf-8"
DOC_BODY = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
DOC_PAYLOAD_HASH = "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
DOC_CANONICAL_REQUEST = (
    "POST\n/\n\n"
    "content-type:application/json; charset=utf-8\n"
    "host:cvm.tencentcloudapi.com\n\n"
    "content-type;host\n" + DOC_PAYLOAD_HASH
)
DOC_STRING_TO_SIGN = (
    "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
    "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
)
# Two editions of the document: the current one masks the key with "*", an older one ends it with "EXAMPLE".
DOC_SIGNATURES = {
    "Gu5t9xGARNpq86cd98joQYCN3*******": "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c",
    "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE": "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
}
DOC_AUTHORIZATION = (
    "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, "
    "SignedHeaders=content-type;host, "
    "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
)


def doc_canonical_request() -> str:
    return signer.canonical_request(
        method="POST",
        uri="/",
        query="",
        content_type=DOC_CONTENT_TYPE,
        host=DOC_HOST,
        payload_hash=signer.hashed_payload(DOC_BODY),
    )


def test_payload_hash_matches_the_document() -> None:
    assert signer.hashed_payload(DOC_BODY) == DOC_PAYLOAD_HASH


def test_canonical_request_matches_the_document() -> None:
    assert doc_canonical_request() == DOC_CANONICAL_REQUEST


def test_string_to_sign_matches_the_document() -> None:
    scope = signer.credential_scope(signer.utc_date(DOC_TIMESTAMP), "cvm")
    assert scope == "2019-02-25/cvm/tc3_request"
    assert signer.string_to_sign(DOC_TIMESTAMP, scope, DOC_CANONICAL_REQUEST) == DOC_STRING_TO_SIGN


def test_signature_matches_both_editions_of_the_document() -> None:
    for secret_key, expected in DOC_SIGNATURES.items():
        key = signer.signing_key(secret_key, "2019-02-25", "cvm")
        assert signer.signature(key, DOC_STRING_TO_SIGN) == expected


def test_authorization_header_matches_the_document() -> None:
    signature = DOC_SIGNATURES["Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"]
    header = signer.authorization("AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "2019-02-25/cvm/tc3_request", signature)
    assert header == DOC_AUTHORIZATION


def test_scope_date_is_the_utc_day_of_the_timestamp() -> None:
    assert signer.utc_date(1551052799) == "2019-02-24"  # 23:59:59 UTC (07:59:59 next day in Beijing)
    assert signer.utc_date(1551052800) == "2019-02-25"


def test_signing_key_is_the_documented_hmac_chain() -> None:
    import hmac

    def h(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    expected = h(h(h(b"TC3secret", "2019-02-25"), "sms"), "tc3_request")
    assert signer.signing_key("secret", "2019-02-25", "sms") == expected


def test_signer_object_composes_the_steps() -> None:
    tc3 = signer.Tc3Signer(
        secret_id="AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        secret_key=SecretStr("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"),
        service="cvm",
        host=DOC_HOST,
    )
    # The signer always signs application/json (what the SDK sends), so rebuild the document's steps with it.
    canonical = signer.canonical_request(
        method="POST", uri="/", query="", content_type="application/json", host=DOC_HOST, payload_hash=DOC_PAYLOAD_HASH
    )
    scope = "2019-02-25/cvm/tc3_request"
    key = signer.signing_key("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", "2019-02-25", "cvm")
    expected = signer.authorization(
        "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        scope,
        signer.signature(key, signer.string_to_sign(DOC_TIMESTAMP, scope, canonical)),
    )
    assert tc3.authorization(DOC_BODY, DOC_TIMESTAMP) == expected


def test_cached_day_key_is_renewed_at_utc_midnight() -> None:
    def fresh() -> signer.Tc3Signer:
        return signer.Tc3Signer(secret_id="id", secret_key=SecretStr("key"), service="sms", host="h")

    reused = fresh()
    for timestamp in (1551052799, 1551052800, 1551052799):
        assert reused.authorization(b"{}", timestamp) == fresh().authorization(b"{}", timestamp)


def test_signer_repr_hides_the_secret_and_the_derived_key() -> None:
    tc3 = signer.Tc3Signer(secret_id="id", secret_key=SecretStr("top-secret-key"), service="sms", host="h")
    tc3.authorization(b"{}", DOC_TIMESTAMP)  # derives and caches the day's key
    day_key = tc3._day_key
    assert day_key is not None
    derived = signer.signing_key("top-secret-key", signer.utc_date(DOC_TIMESTAMP), "sms")
    assert day_key.key == derived
    for text in (repr(tc3), str(tc3), repr(day_key), str(day_key)):
        assert "top-secret-key" not in text
        # The day's key signs any request of that day: as good as the secret until midnight UTC.
        assert repr(derived) not in text and derived.hex() not in text
    assert "2019-02-25" in repr(day_key)  # the date is no secret


@given(body=st.binary(min_size=1, max_size=200), flip=st.integers(min_value=0, max_value=199))
def test_any_changed_body_byte_changes_the_signature(body: bytes, flip: int) -> None:
    tc3 = signer.Tc3Signer(secret_id="id", secret_key=SecretStr("key"), service="sms", host="h")
    index = flip % len(body)
    tampered = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
    assert tc3.authorization(body, DOC_TIMESTAMP) != tc3.authorization(tampered, DOC_TIMESTAMP)


@given(host=st.sampled_from(["sms.intl.tencentcloudapi.com", "127.0.0.1:9102"]), timestamp=st.integers(0, 2**32))
def test_host_and_timestamp_are_signed(host: str, timestamp: int) -> None:
    def sign(h: str, t: int) -> str:
        return signer.Tc3Signer(secret_id="id", secret_key=SecretStr("k"), service="sms", host=h).authorization(
            b"{}", t
        )

    assert sign(host, timestamp) != sign(host + "x", timestamp)
    assert sign(host, timestamp) != sign(host, timestamp + 1)
