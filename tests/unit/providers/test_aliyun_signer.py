"""ACS3-HMAC-SHA256 steps: Alibaba's documented worked example, the SDK maintainers' vectors, and properties."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from globesms.providers.aliyun.signer import (
    EMPTY_BODY_SHA256,
    Acs3Signer,
    acs_date,
    canonical_headers,
    canonical_query,
    canonical_request,
    join_encoded_query,
    payload_hash,
    percent_encode,
    signature,
    string_to_sign,
)

# "Request syntax and signature method V3", section "Signature examples / Fixed parameter values".
DOC_HEADERS = {
    "host": "ecs.cn-shanghai.aliyuncs.com",
    "x-acs-action": "RunInstances",
    "x-acs-content-sha256": EMPTY_BODY_SHA256,
    "x-acs-date": "2023-10-26T10:22:32Z",
    "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
    "x-acs-version": "2014-05-26",
}
DOC_PARAMS = {"ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd", "RegionId": "cn-shanghai"}
DOC_CANONICAL_REQUEST = (
    "POST\n"
    "/\n"
    "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n"
    "host:ecs.cn-shanghai.aliyuncs.com\n"
    "x-acs-action:RunInstances\n"
    "x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
    "x-acs-date:2023-10-26T10:22:32Z\n"
    "x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n"
    "x-acs-version:2014-05-26\n"
    "\n"
    "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)
DOC_STRING_TO_SIGN = "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
DOC_SIGNATURE = "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"


def test_documented_canonical_request() -> None:
    block, signed = canonical_headers(DOC_HEADERS)
    query = canonical_query(DOC_PARAMS)
    assert query == "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai"
    assert canonical_request("POST", "/", query, block, signed, EMPTY_BODY_SHA256) == DOC_CANONICAL_REQUEST


def test_documented_string_to_sign_and_signature() -> None:
    assert string_to_sign(DOC_CANONICAL_REQUEST) == DOC_STRING_TO_SIGN
    assert signature(b"YourAccessKeySecret", DOC_STRING_TO_SIGN) == DOC_SIGNATURE


def test_documented_authorization_header() -> None:
    signer = Acs3Signer("YourAccessKeyId", "YourAccessKeySecret")
    assert signer.authorization("POST", "/", canonical_query(DOC_PARAMS), DOC_HEADERS) == (
        "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,"
        "SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
        f"Signature={DOC_SIGNATURE}"
    )


def test_empty_body_hash_is_the_documented_value() -> None:
    assert EMPTY_BODY_SHA256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert payload_hash(b"") == EMPTY_BODY_SHA256
    assert payload_hash(b"To=1") == hashlib.sha256(b"To=1").hexdigest()


def test_sdk_maintainers_canonical_query_vector() -> None:
    # darabonba-openapi-util, python/tests/test_client.py::test_get_canonical_query_string
    assert canonical_query({"test": " ~/*-+"}) == "test=%20~%2F%2A-%2B"


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (" ", "%20"),
        ("*", "%2A"),
        ("~", "~"),
        ("+", "%2B"),
        ("%", "%25"),
        ("%20", "%2520"),
        ("/", "%2F"),
        ("-_.", "-_."),
        ('["85212345678"]', "%5B%2285212345678%22%5D"),
        ("é", "%C3%A9"),
        ("你好", "%E4%BD%A0%E5%A5%BD"),
        ("🎉", "%F0%9F%8E%89"),
        ("", ""),
    ],
)
def test_percent_encoding_is_rfc3986(raw: str, encoded: str) -> None:
    assert percent_encode(raw) == encoded


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"])))
def test_percent_encoding_matches_the_standard_library(value: str) -> None:
    assert percent_encode(value) == quote(value, safe="~")


@given(st.text(alphabet=st.characters(codec="ascii")))
def test_ascii_fast_path_matches_the_standard_library(value: str) -> None:
    assert percent_encode(value) == quote(value, safe="~")


def test_lone_surrogates_cannot_be_encoded() -> None:
    with pytest.raises(UnicodeEncodeError):
        percent_encode("bad \ud800 text")


def test_canonical_query_sorts_by_name_and_keeps_empty_values() -> None:
    assert canonical_query({"To": "1", "Message": "a b", "From": ""}) == "From=&Message=a%20b&To=1"
    assert canonical_query({}) == ""


@given(st.dictionaries(st.sampled_from(["To", "Message", "TaskId", "Type", "From"]), st.text()))
def test_joining_encoded_values_is_the_canonical_query(params: dict[str, str]) -> None:
    try:
        encoded = {name: percent_encode(value) for name, value in params.items()}
    except UnicodeEncodeError:
        return
    assert join_encoded_query(encoded) == canonical_query(params)


def test_canonical_headers_lower_case_sort_trim_and_merge() -> None:
    block, signed = canonical_headers([("X-Acs-Date", " 2024-01-01T00:00:00Z "), ("Host", "h"), ("x-acs-b", "2")])
    assert block == "host:h\nx-acs-b:2\nx-acs-date:2024-01-01T00:00:00Z\n"
    assert signed == "host;x-acs-b;x-acs-date"
    block, signed = canonical_headers([("x-acs-test", "https"), ("X-ACS-TEST", "http")])
    assert (block, signed) == ("x-acs-test:http,https\n", "x-acs-test")


def test_acs_date_is_utc_to_the_second() -> None:
    moment = datetime(2024, 1, 2, 11, 4, 5, 999_999, tzinfo=timezone(timedelta(hours=8)))
    assert acs_date(moment) == "2024-01-02T03:04:05Z"
    assert acs_date(datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)) == "2024-12-31T23:59:59Z"


def test_every_input_changes_the_signature() -> None:
    signer = Acs3Signer("id", "secret")
    base = signer.authorization("POST", "/", "To=1", DOC_HEADERS)
    assert Acs3Signer("id", "other").authorization("POST", "/", "To=1", DOC_HEADERS) != base
    assert signer.authorization("GET", "/", "To=1", DOC_HEADERS) != base
    assert signer.authorization("POST", "/x", "To=1", DOC_HEADERS) != base
    assert signer.authorization("POST", "/", "To=2", DOC_HEADERS) != base
    assert signer.authorization("POST", "/", "To=1", {**DOC_HEADERS, "x-acs-date": "2023-10-26T10:22:33Z"}) != base
    assert signer.authorization("POST", "/", "To=1", DOC_HEADERS, payload_hash(b"x")) != base


def test_signer_repr_hides_the_secret() -> None:
    signer = Acs3Signer("LTAIexample", "very-secret-value")
    assert "very-secret-value" not in repr(signer)
    assert "LTAIexample" in repr(signer)
