"""The Huawei signing steps, against Huawei's documented worked examples.

AK/SK: the API Request Signing Guide (devg-apisign, "Constructing a Standard Request" / "Creating a To-Be-Signed
String" / "Calculating the Signature") walks one request through every step: GET
/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs?limit=2&marker=13551d6b-755d-4757-b956-536f674975c0 on
service.region.example.com at 20191115T033655Z, hashed canonical request b25362e6..., and with the SK
MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc the signature 7be66680....

X-WSSE: the seed's example request 1 shows a full X-WSSE header (its secret is not published), and Huawei's demo
app secret gives a known-answer vector computed outside Python:
    printf '%s' "$NONCE$CREATED$SECRET" | sha256sum | cut -d' ' -f1 | tr -d '\\n' | base64 -w0
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from globesms.providers.huawei import signer

# --------------------------------------------------------------------------------------- AK/SK documented example

DOC_SK = b"MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"
DOC_DATE = "20191115T033655Z"
DOC_HEADERS = {"Content-Type": "application/json", "Host": "service.region.example.com", "X-Sdk-Date": DOC_DATE}
DOC_QUERY = [("marker", "13551d6b-755d-4757-b956-536f674975c0"), ("limit", "2")]
DOC_CANONICAL_REQUEST = (
    "GET\n"
    "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs/\n"
    "limit=2&marker=13551d6b-755d-4757-b956-536f674975c0\n"
    "content-type:application/json\n"
    "host:service.region.example.com\n"
    "x-sdk-date:20191115T033655Z\n"
    "\n"
    "content-type;host;x-sdk-date\n"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)
DOC_CANONICAL_HASH = "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
DOC_SIGNATURE = "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"


def test_sdk_date_is_basic_utc_format() -> None:
    assert signer.sdk_date(datetime(2019, 11, 15, 3, 36, 55, tzinfo=UTC)) == DOC_DATE


def test_documented_canonical_request_step_by_step() -> None:
    block, signed = signer.canonical_headers(DOC_HEADERS)
    canonical = signer.canonical_request(
        "get",
        signer.canonical_uri("/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs"),
        signer.canonical_query(DOC_QUERY),
        block,
        signed,
        signer.payload_hash(b""),
    )
    assert canonical == DOC_CANONICAL_REQUEST
    assert hashlib.sha256(canonical.encode()).hexdigest() == DOC_CANONICAL_HASH


def test_documented_string_to_sign_and_signature() -> None:
    to_sign = signer.string_to_sign(DOC_DATE, DOC_CANONICAL_REQUEST)
    assert to_sign == f"SDK-HMAC-SHA256\n{DOC_DATE}\n{DOC_CANONICAL_HASH}"
    assert signer.signature(DOC_SK, to_sign) == DOC_SIGNATURE


def test_documented_authorization_header_composed() -> None:
    header = signer.aksk_authorization(
        app_key="AKEXAMPLE",
        app_secret=DOC_SK,
        method="GET",
        path="/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
        query=DOC_QUERY,
        headers=DOC_HEADERS,
        body=b"",
    )
    # No quotes, ", " separators: the seed's example request 2 and the SDK send it so.
    assert header == (
        f"SDK-HMAC-SHA256 Access=AKEXAMPLE, SignedHeaders=content-type;host;x-sdk-date, Signature={DOC_SIGNATURE}"
    )


def test_seed_example_authorization_has_the_same_shape() -> None:
    seed_header = (
        "SDK-HMAC-SHA256 Access=uxOF5yvM0H3C0t5G0xc272g7hA2I, SignedHeaders=content-type;host;x-sdk-date, "
        "Signature=082f05bcd561e291a7469939980c022f721a581967cc30eb3725c7aea4bd634d"
    )
    ours = signer.authorization("uxOF5yvM0H3C0t5G0xc272g7hA2I", "content-type;host;x-sdk-date", "0" * 64)
    shape = re.compile(r"SDK-HMAC-SHA256 Access=\S+, SignedHeaders=[a-z;-]+, Signature=[0-9a-f]{64}")
    assert shape.fullmatch(seed_header) and shape.fullmatch(ours)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/sms/batchSendDiffSms/v1", "/sms/batchSendDiffSms/v1/"),  # signed with the trailing "/", sent without
        ("/sms/batchSendDiffSms/v1/", "/sms/batchSendDiffSms/v1/"),
        ("", "/"),
        ("/a b/c~d*e+f", "/a%20b/c~d%2Ae%2Bf/"),
        ("/already%20encoded", "/already%20encoded/"),
    ],
)
def test_canonical_uri(path: str, expected: str) -> None:
    assert signer.canonical_uri(path) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([], ""),
        ([("b", "2"), ("a", "1")], "a=1&b=2"),
        ([("q", "a b+c*d~e%f")], "q=a%20b%2Bc%2Ad~e%25f"),  # RFC 3986: space %20, "+" and "*" encoded, "~" kept
        ([("k", "2"), ("k", "1")], "k=1&k=2"),
        ([("中", "文")], "%E4%B8%AD=%E6%96%87"),
        ([("empty", "")], "empty="),
    ],
)
def test_canonical_query(params: list[tuple[str, str]], expected: str) -> None:
    assert signer.canonical_query(params) == expected


def test_canonical_headers_lower_sort_trim_and_skip_underscores() -> None:
    block, signed = signer.canonical_headers({"X-Sdk-Date": " 20240101T000000Z ", "Host": "h:443", "X_Skip": "x"})
    assert block == "host:h:443\nx-sdk-date:20240101T000000Z\n"
    assert signed == "host;x-sdk-date"


def test_host_with_and_without_port_sign_differently() -> None:
    def sign(host: str) -> str:
        return signer.aksk_authorization(
            app_key="k",
            app_secret=b"s",
            method="POST",
            path="/sms/batchSendDiffSms/v1",
            query=(),
            headers={"Content-Type": "application/json", "Host": host, "X-Sdk-Date": DOC_DATE},
            body=b"{}",
        )

    assert sign("smsapi.example.com:443") != sign("smsapi.example.com")


def test_aksk_needs_the_date_header() -> None:
    with pytest.raises(ValueError, match="X-Sdk-Date"):
        signer.aksk_authorization(
            app_key="k", app_secret=b"s", method="POST", path="/", query=(), headers={"Host": "h"}, body=b""
        )


# ----------------------------------------------------------------------------------------------------- X-WSSE

SEED_USERNAME = "ZRBRz4bAXoFgEH7o4Ew308eXc1RA"
SEED_NONCE = "ac1c911c4792492687f8f6b2264a491e"
SEED_CREATED = "2018-05-26T00:35:30Z"
SEED_DIGEST = "NDA1MWIwNjI2ZTkyNWFlM2FhMTE5NDE1YTk5NjU1YWE4NjNlZTY1MmRhYzkxZGViNzczZjdjMjkzZWQ4ZjAwNA=="
SEED_X_WSSE = (
    f'UsernameToken Username="{SEED_USERNAME}",PasswordDigest="{SEED_DIGEST}",'
    f'Nonce="{SEED_NONCE}",Created="{SEED_CREATED}"'
)
DEMO_SECRET = "q4Ii87BhST9vcs8wvrzN80SfD7Al"  # the placeholder secret of Huawei's SMS demos
DEMO_DIGEST = "NTA0ZWE4Y2Q0ZGMyYWEwZDk0MWZmNjE4NGQxYjc1Y2YzNWYwNzgwZTdjMGU4ZDgzNmZmMGE3MWJlODA0MjBmZg=="


def test_seed_example_digest_is_base64_of_a_hex_string() -> None:
    # The evidence for the decision in signer.wsse_password_digest: the documented digest decodes to 64 hex
    # characters, which base64 of the raw 32 bytes could never produce.
    decoded = base64.b64decode(SEED_DIGEST)
    assert re.fullmatch(rb"[0-9a-f]{64}", decoded)


def test_password_digest_known_answer() -> None:
    assert signer.wsse_password_digest(SEED_NONCE, SEED_CREATED, DEMO_SECRET) == DEMO_DIGEST


def test_wsse_created_format() -> None:
    assert signer.wsse_created(datetime(2018, 5, 26, 0, 35, 30, tzinfo=UTC)) == SEED_CREATED


def test_wsse_token_matches_the_seed_example_byte_for_byte() -> None:
    assert signer.wsse_token(SEED_USERNAME, SEED_DIGEST, SEED_NONCE, SEED_CREATED) == SEED_X_WSSE


def test_wsse_authorization_is_the_seed_value() -> None:
    assert signer.WSSE_AUTHORIZATION == 'WSSE realm="SDP",profile="UsernameToken",type="Appkey"'


def test_wsse_headers() -> None:
    now = datetime(2018, 5, 26, 0, 35, 30, tzinfo=UTC)
    headers = signer.wsse_headers("appkey", DEMO_SECRET, now, SEED_NONCE)
    assert headers == {
        "Authorization": signer.WSSE_AUTHORIZATION,
        "X-WSSE": signer.wsse_token("appkey", DEMO_DIGEST, SEED_NONCE, SEED_CREATED),
    }


@pytest.mark.parametrize("nonce", ["", "has-dash", "a" * 129, "spa ce", "中文"])
def test_wsse_nonce_must_be_1_to_128_alphanumerics(nonce: str) -> None:
    with pytest.raises(ValueError, match="nonce"):
        signer.wsse_headers("k", "s", datetime(2024, 1, 1, tzinfo=UTC), nonce)


@given(
    nonce=st.text(alphabet="abcdefABCDEF0123456789", min_size=1, max_size=128),
    secret=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=64),
    moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
)
def test_digest_is_always_base64_of_the_lowercase_hex_sha256(nonce: str, secret: str, moment: datetime) -> None:
    created = signer.wsse_created(moment)
    material = (nonce + created + secret).encode("utf-8")
    digest = signer.wsse_password_digest(nonce, created, secret)
    assert len(digest) == 88
    assert base64.b64decode(digest).decode() == hashlib.sha256(material).hexdigest()
