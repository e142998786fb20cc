"""Differential test: our AK/SK ("SDK-HMAC-SHA256") signer against Huawei's official Python SDK
(`huaweicloudsdkcore` + `huaweicloudsdksmsapi`, pinned in requirements/sdk-huawei.txt), byte for byte.

Two levels, each over many generated inputs:
* signer: the SDK's signer for SDK-HMAC-SHA256 (picked the way the SDK's credentials pick it, from
  `Credentials._SIGNER_CASE`, its signer factory) against ours on the same request: any method, host with or
  without port, unicode paths and queries with `+ * ~ %` and spaces, extra headers, any body.
* client: our client's real request (batches up to 500) re-signed by the SDK, and the SDK's own
  `SMSApiClient.batch_send_diff_sms` for the same body, its clock frozen and its HTTP send intercepted, re-signed
  by us; the two JSON bodies must also say the same thing.

X-WSSE has no SDK (the SDK only speaks AK/SK); it is checked against the documented example in
test_huawei_signer.py. Content types other than JSON (the SDK's UNSIGNED-PAYLOAD branch) are never sent by us and
are not generated.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from globesms.models.outbound import OutboundSms
from globesms.providers.huawei import AuthMode, HuaweiClient, HuaweiSettings, signer

sdk_signer_module = importlib.import_module("huaweicloudsdkcore.signer.signer")
requests = importlib.import_module("requests")
from huaweicloudsdkcore.auth.credentials import Credentials  # noqa: E402
from huaweicloudsdkcore.http.http_config import HttpConfig  # noqa: E402
from huaweicloudsdkcore.sdk_request import SdkRequest  # noqa: E402
from huaweicloudsdkcore.signer.algorithm import SigningAlgorithm  # noqa: E402
from huaweicloudsdksmsapi.v1 import (  # noqa: E402
    BatchSendDiffSmsRequest,
    BatchSendDiffSmsRequestBody,
    SMSApiClient,
    SmsContent,
)
from huaweicloudsdksmsapi.v1.smsapi_credentials import SMSApiCredentials  # noqa: E402

pytestmark = pytest.mark.sdk

SDK_SIGNER = Credentials._SIGNER_CASE[SigningAlgorithm.HMAC_SHA256]
ENDPOINTS = [
    "https://smsapi.ap-southeast-1.myhuaweicloud.com:443",
    "https://smsapi.cn-north-4.myhuaweicloud.com",
    "http://127.0.0.1:9103",
]

# ------------------------------------------------------------------------------------------------ strategies

_chars = st.characters(exclude_categories=("Cs",))
_special = st.sampled_from(["+", "*", "~", "%", " ", "%20", "%2F", "%zz", "=", "&", "?", "#", "中文", "é", "😀"])
tricky = st.lists(st.one_of(_special, st.text(_chars, max_size=6)), max_size=5).map("".join)
tricky_nonempty = st.lists(st.one_of(_special, st.text(_chars, min_size=1, max_size=6)), min_size=1, max_size=5).map(
    "".join
)
_alphanumerics = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
credential = st.text(st.sampled_from(_alphanumerics), min_size=1, max_size=40)
secret = st.text(_chars, min_size=1, max_size=64)
moment = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2098, 12, 31)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC)
)
header_name = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,15}", fullmatch=True)
_RESERVED = {"host", "x-sdk-date", "content-type", "authorization", "x-sdk-content-sha256"}


@st.composite
def extra_headers(draw: st.DrawFn) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name in draw(st.lists(header_name, max_size=4)):
        if name.lower() not in _RESERVED and name.lower() not in {n.lower() for n in headers}:
            headers[name] = draw(tricky)
    return headers


# ---------------------------------------------------------------------------------------- signer-level check


@settings(max_examples=300, deadline=None)
@given(
    app_key=credential,
    app_secret=secret,
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    host=st.sampled_from(["smsapi.ap-southeast-1.myhuaweicloud.com:443", "service.region.example.com", "h:9"]),
    segments=st.lists(tricky, max_size=4),
    trailing_slash=st.booleans(),
    query=st.lists(st.tuples(tricky_nonempty, tricky), max_size=5),
    headers=extra_headers(),
    body=st.one_of(st.binary(max_size=300), tricky.map(lambda text: text.encode())),
    when=moment,
)
def test_signer_matches_the_sdk_signer(
    app_key: str,
    app_secret: str,
    method: str,
    host: str,
    segments: list[str],
    trailing_slash: bool,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    when: datetime,
) -> None:
    path = "/" + "/".join(segments) + ("/" if trailing_slash else "")
    sent_headers = {"Content-Type": "application/json", "Host": host, "X-Sdk-Date": signer.sdk_date(when), **headers}

    def sdk_request() -> Any:
        return SdkRequest(
            method=method,
            schema="https",
            host=host,
            resource_path=path,
            query_params=list(query),
            header_params=dict(sent_headers),
            body=body,
            signing_algorithm=SigningAlgorithm.HMAC_SHA256,
        )

    class Keys:
        ak, sk = app_key, app_secret

    sdk = SDK_SIGNER(Keys())
    probe = sdk_request()
    sdk_signed = sdk._process_signed_headers(probe)
    assert signer.canonical_query(query) == SDK_SIGNER.process_canonical_query_string(probe)
    header_block, signed = signer.canonical_headers(sent_headers)
    ours_canonical = signer.canonical_request(
        method,
        signer.canonical_uri(path),
        signer.canonical_query(query),
        header_block,
        signed,
        signer.payload_hash(body),
    )
    assert signed == ";".join(sdk_signed)
    assert ours_canonical == sdk._process_canonical_request(probe, sdk_signed)

    sdk_authorization = sdk.sign(sdk_request()).header_params["Authorization"]
    ours = signer.aksk_authorization(
        app_key=app_key,
        app_secret=app_secret.encode("utf-8"),
        method=method,
        path=path,
        query=query,
        headers=sent_headers,
        body=body,
    )
    assert ours == sdk_authorization


# ---------------------------------------------------------------------------------------- client-level check


@dataclass
class SdkHarness:
    """The official SMS client with its clock frozen and its HTTP send intercepted (nothing leaves)."""

    now: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    sent: list[Any] = field(default_factory=list)
    clients: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def client(self, endpoint: str, app_key: str, app_secret: str) -> Any:
        if endpoint not in self.clients:
            credentials = SMSApiCredentials("placeholder", "placeholder")
            sdk_client = (
                SMSApiClient.new_builder()
                .with_credentials(credentials)
                .with_endpoints([endpoint])
                .with_http_config(HttpConfig.get_default_config())
                .build()
            )
            self.clients[endpoint] = (sdk_client, credentials)
        sdk_client, credentials = self.clients[endpoint]
        credentials.ak, credentials.sk = app_key, app_secret
        return sdk_client


@pytest.fixture(scope="module")
def harness() -> Iterator[SdkHarness]:
    state = SdkHarness()
    real_datetime = sdk_signer_module.datetime

    class FrozenDatetime(real_datetime):  # type: ignore[misc,valid-type]
        @classmethod
        def utcnow(cls) -> Any:
            return cls(*state.now.timetuple()[:6])

    def intercepted_send(session: Any, prepared: Any, **kwargs: Any) -> Any:
        state.sent.append(prepared)
        response = requests.Response()
        response.status_code = 200
        response._content = b'{"code":"000000","description":"Success","result":[]}'
        response.headers["Content-Type"] = "application/json"
        response.request = prepared
        return response

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sdk_signer_module, "datetime", FrozenDatetime)
        patch.setattr(requests.Session, "send", intercepted_send)
        yield state
    for sdk_client, _ in state.clients.values():
        sdk_client.get_http_client().close()


@st.composite
def batches(draw: st.DrawFn) -> list[OutboundSms]:
    """Up to 500 recipients, built from small drawn pools so long batches stay cheap to generate."""
    size = draw(st.one_of(st.integers(1, 5), st.integers(1, 500)))
    templates = draw(st.lists(st.text("abcdef0123456789", min_size=1, max_size=32), min_size=1, max_size=3))
    param_sets = draw(st.lists(st.lists(tricky_nonempty, max_size=3).map(tuple), min_size=1, max_size=4))
    ids = draw(st.lists(st.from_regex(r"[A-Za-z0-9._:-]{1,40}", fullmatch=True), min_size=1, max_size=3))
    mainland_every = draw(st.sampled_from([0, 2, 7]))
    return [
        OutboundSms(
            message_id=f"{ids[i % len(ids)]}-{i}",
            to=f"+86138{i:08d}" if mainland_every and i % mainland_every == 0 else f"+65{9000000 + i}",
            template_id=templates[i % len(templates)],
            template_params=param_sets[i % len(param_sets)],
        )
        for i in range(size)
    ]


def sdk_body_from(ours: dict[str, Any]) -> Any:
    return BatchSendDiffSmsRequestBody(
        _from=ours["from"],
        status_callback=ours.get("statusCallback"),
        extend=ours.get("extend"),
        sms_content=[
            SmsContent(
                to=entry["to"],
                template_id=entry["templateId"],
                template_paras=entry.get("templateParas"),
                signature=entry.get("signature"),
            )
            for entry in ours["smsContent"]
        ],
    )


def signed_part(headers: Any, authorization: str) -> dict[str, str]:
    names = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    return {name: headers[name] for name in names}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    app_key=credential,
    app_secret=secret,
    endpoint=st.sampled_from(ENDPOINTS),
    callback=st.one_of(st.none(), st.just("https://hooks.example.com/huawei?x=1&y=%20")),
    signature_name=st.text(_chars, min_size=1, max_size=32),
    when=moment,
    messages=batches(),
)
def test_client_requests_match_the_sdk(
    harness: SdkHarness,
    app_key: str,
    app_secret: str,
    endpoint: str,
    callback: str | None,
    signature_name: str,
    when: datetime,
    messages: list[OutboundSms],
) -> None:
    captured: list[httpx.Request] = []

    def accept(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200, json={"code": "000000", "description": "Success", "result": []})

    client = HuaweiClient(
        HuaweiSettings(
            endpoint=endpoint,
            app_key=app_key,
            app_secret=SecretStr(app_secret),
            sender="isms100000001",
            mainland_sender="csms100000001",
            signature=signature_name,
            status_callback=callback,
            auth=AuthMode.AKSK,
        ),
        http=httpx.Client(transport=httpx.MockTransport(accept)),
        clock=lambda: when,
    )
    client.send(messages)
    assert captured
    event(f"recipients: {'1-5' if len(messages) <= 5 else '6-100' if len(messages) <= 100 else '101-500'}")
    event(f"calls: {len(captured)}")
    harness.now = when
    sdk_client = harness.client(endpoint, app_key, app_secret)

    for ours in captured:
        our_authorization = ours.headers["Authorization"]
        # 1. The SDK's signer on our exact request gives our exact Authorization.
        sdk_request = SdkRequest(
            method="POST",
            schema=ours.url.scheme,
            host=ours.headers["Host"],
            resource_path=ours.url.path,
            query_params=[],
            header_params=signed_part(ours.headers, our_authorization),
            body=ours.content,
            signing_algorithm=SigningAlgorithm.HMAC_SHA256,
        )
        assert (
            SDK_SIGNER(SMSApiCredentials(app_key, app_secret)).sign(sdk_request).header_params["Authorization"]
            == our_authorization
        )

        # 2. The SDK's own call for the same body: same content, same host and date, and we sign it identically.
        our_body = json.loads(ours.content)
        harness.sent.clear()
        sdk_client.batch_send_diff_sms(BatchSendDiffSmsRequest(body=sdk_body_from(our_body)))
        [sdk_sent] = harness.sent
        assert json.loads(sdk_sent.body) == our_body
        assert sdk_sent.path_url == ours.url.path
        assert sdk_sent.headers["Host"] == ours.headers["Host"]
        assert sdk_sent.headers["X-Sdk-Date"] == ours.headers["X-Sdk-Date"] == signer.sdk_date(when)
        sdk_authorization = sdk_sent.headers["Authorization"]
        sdk_signed_headers = {
            name: value.encode("iso-8859-1").decode("utf-8")  # the SDK sends UTF-8 bytes as latin-1 text
            for name, value in signed_part(sdk_sent.headers, sdk_authorization).items()
        }
        ours_for_sdk_request = signer.aksk_authorization(
            app_key=app_key,
            app_secret=app_secret.encode("utf-8"),
            method="POST",
            path=sdk_sent.path_url,
            query=(),
            headers=sdk_signed_headers,
            body=sdk_sent.body if isinstance(sdk_sent.body, bytes) else sdk_sent.body.encode(),
        )
        assert ours_for_sdk_request == sdk_authorization
