"""Differential test: our request vs. the one the official SDK (tencentcloud-sdk-python-sms) would send.

Both sides get the same frozen clock and the same generated batch. The SDK's request is caught at its
requests.Session.send (the last step before the socket), ours at httpx.MockTransport; the body bytes, the
Authorization and every signed or action header must be identical. Pins: requirements/sdk-tencent.txt.
"""

from __future__ import annotations

import importlib
import json
import types
from typing import Any
from unittest import mock

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from globesms.models.outbound import OutboundSms
from globesms.providers.tencent import TencentSettings, TencentSmsClient

pytestmark = pytest.mark.sdk

requests = importlib.import_module("requests")
abstract_client = importlib.import_module("tencentcloud.common.abstract_client")
credential = importlib.import_module("tencentcloud.common.credential")
client_profile = importlib.import_module("tencentcloud.common.profile.client_profile")
http_profile = importlib.import_module("tencentcloud.common.profile.http_profile")
sms_client = importlib.import_module("tencentcloud.sms.v20210111.sms_client")
sms_models = importlib.import_module("tencentcloud.sms.v20210111.models")

COMPARED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Host",
    "X-TC-Action",
    "X-TC-Version",
    "X-TC-Region",
    "X-TC-Timestamp",
)
EMPTY_ANSWER = {"Response": {"SendMultiStatusSet": [], "RequestId": "req"}}

# Text that stresses JSON escaping and the hash: all of unicode (surrogates cannot be UTF-8), plus the characters
# percent-encoding schemes trip over.
tricky_text = st.text(
    alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from(list('+*~% &=/?#"\\\n\t'))),
    max_size=40,
)
country_codes = st.sampled_from(["1", "44", "60", "65", "852", "886", "971", "234", "7"])
phone_numbers = st.builds(
    lambda cc, rest: f"+{cc}{rest}", country_codes, st.from_regex(r"[1-9][0-9]{7,10}", fullmatch=True)
)
sender_ids = st.one_of(
    st.none(),
    st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,10}", fullmatch=True),
    st.from_regex(r"[0-9]{1,15}", fullmatch=True),
)
message_ids = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=60)


@st.composite
def batches(draw: st.DrawFn) -> list[OutboundSms]:
    ids = draw(st.lists(message_ids, min_size=1, max_size=5, unique=True))
    return [
        OutboundSms(
            message_id=message_id,
            to=draw(phone_numbers),
            template_id=draw(st.from_regex(r"[0-9]{1,10}", fullmatch=True)),
            template_params=tuple(draw(st.lists(tricky_text, max_size=4))),
            sender_id=draw(sender_ids),
        )
        for message_id in ids
    ]


@st.composite
def long_batches(draw: st.DrawFn) -> list[OutboundSms]:
    """150-200 recipients cycled from a few generated ones (generating 200 independent ones trips Hypothesis'
    example-size limits); ids and numbers stay distinct per recipient."""
    prototypes = draw(batches())
    size = draw(st.integers(min_value=150, max_value=200))
    return [
        prototypes[i % len(prototypes)]._replace(
            message_id=f"{prototypes[i % len(prototypes)].message_id}#{i}",
            to=f"{prototypes[i % len(prototypes)].to[:-3]}{i:03d}",
        )
        for i in range(size)
    ]


hosts = st.sampled_from(
    ["sms.intl.tencentcloudapi.com", "sms.tencentcloudapi.com", "127.0.0.1:9102", "tencent.emulator:8443"]
)
secret_ids = st.from_regex(r"AKID[A-Za-z0-9]{4,32}", fullmatch=True)
# The SDK (like our settings) refuses keys with surrounding whitespace: a copy-paste slip, never a real key.
secret_keys = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40).filter(
    lambda key: key.strip() == key
)
timestamps = st.integers(min_value=0, max_value=4_102_444_800)  # up to 2100-01-01
regions = st.sampled_from(["ap-singapore", "eu-frankfurt"])
app_ids = st.from_regex(r"14[0-9]{8}", fullmatch=True)


def sdk_request(
    host: str, secret_id: str, secret_key: str, region: str, app_id: str, timestamp: int, batch: list[OutboundSms]
) -> Any:
    """The PreparedRequest the SDK hands to requests' transport for this batch."""
    profile = client_profile.ClientProfile(httpProfile=http_profile.HttpProfile(endpoint=host))
    sdk = sms_client.SmsClient(credential.Credential(secret_id, secret_key), region, profile)
    request = sms_models.SendMultiGlobalSmsRequest()
    request.SmsSdkAppId = app_id
    request.MultiSmsInfoSet = [sdk_item(m) for m in batch]

    caught: list[Any] = []

    def send(prepared: Any, **_: Any) -> Any:
        caught.append(prepared)
        response = requests.Response()
        response.status_code = 200
        response.headers["Content-Type"] = "application/json"
        response._content = json.dumps(EMPTY_ANSWER).encode()
        return response

    frozen_time = types.SimpleNamespace(time=lambda: timestamp)
    with (
        mock.patch.object(abstract_client, "time", frozen_time),
        mock.patch.object(sdk.request.conn._session, "send", send),
    ):
        sdk.SendMultiGlobalSms(request)
    [prepared] = caught
    return prepared


def sdk_item(message: OutboundSms) -> Any:
    # Fields we leave out stay None in the SDK model, which its serialiser then leaves out too.
    item = sms_models.MultiSmsInfo()
    item.PhoneNumber = message.to
    item.TemplateId = message.template_id
    item.TemplateParamSet = list(message.template_params) or None
    item.SenderId = message.sender_id or None
    item.SessionContext = message.message_id
    return item


def our_request(
    host: str, secret_id: str, secret_key: str, region: str, app_id: str, timestamp: int, batch: list[OutboundSms]
) -> httpx.Request:
    caught: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        caught.append(request)
        return httpx.Response(200, json=EMPTY_ANSWER)

    scheme = "http" if host.startswith("127.") else "https"
    client_settings = TencentSettings(
        endpoint=f"{scheme}://{host}",
        secret_id=secret_id,
        secret_key=SecretStr(secret_key),
        sdk_app_id=app_id,
        region=region,
    )
    client = TencentSmsClient(
        client_settings, http=httpx.Client(transport=httpx.MockTransport(handler)), clock=lambda: timestamp + 0.999
    )
    client.send(batch)
    [request] = caught
    return request


def assert_identical(
    host: str, secret_id: str, secret_key: str, region: str, app_id: str, timestamp: int, batch: list[OutboundSms]
) -> None:
    theirs = sdk_request(host, secret_id, secret_key, region, app_id, timestamp, batch)
    ours = our_request(host, secret_id, secret_key, region, app_id, timestamp, batch)
    their_body = theirs.body.encode("utf-8") if isinstance(theirs.body, str) else theirs.body
    assert ours.content == their_body
    for name in COMPARED_HEADERS:
        assert ours.headers[name] == theirs.headers[name], name


common = {
    "host": hosts,
    "secret_id": secret_ids,
    "secret_key": secret_keys,
    "region": regions,
    "app_id": app_ids,
    "timestamp": timestamps,
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(), **common)
def test_small_batches_match_the_sdk_byte_for_byte(
    host: str, secret_id: str, secret_key: str, region: str, app_id: str, timestamp: int, batch: list[OutboundSms]
) -> None:
    assert_identical(host, secret_id, secret_key, region, app_id, timestamp, batch)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=long_batches(), **common)
def test_long_batches_match_the_sdk_byte_for_byte(
    host: str, secret_id: str, secret_key: str, region: str, app_id: str, timestamp: int, batch: list[OutboundSms]
) -> None:
    assert_identical(host, secret_id, secret_key, region, app_id, timestamp, batch)


def test_a_full_batch_of_200_matches_the_sdk() -> None:
    batch = [
        OutboundSms(
            f"01HZ{i:022d}",
            f"+6019{i:07d}",
            template_id="1800308",
            template_params=(f"{i}", "Zoë: 50% off * ~ + & more 🎉"),
            sender_id="Qsms" if i % 2 else None,
        )
        for i in range(200)
    ]
    assert_identical(
        "sms.intl.tencentcloudapi.com", "AKIDexample", "s3cr3t", "ap-singapore", "1400006666", 1776313405, batch
    )


def test_the_interception_would_see_a_different_signature() -> None:
    """Guards the test itself: a different secret on our side must show up as a mismatch."""
    batch = [OutboundSms("m", "+60198890000", template_id="1")]
    theirs = sdk_request(
        "sms.intl.tencentcloudapi.com", "AKIDx", "right", "ap-singapore", "1400006666", 1776313405, batch
    )
    ours = our_request(
        "sms.intl.tencentcloudapi.com", "AKIDx", "wrong", "ap-singapore", "1400006666", 1776313405, batch
    )
    assert ours.headers["Authorization"] != theirs.headers["Authorization"]
    assert ours.content == theirs.body.encode()


# ---------------------------------------------------------------------------------------------------------------
# The status pulls of the reconcile run, signed like the send

EMPTY_PULL = {"Response": {"PullSmsSendStatusSet": [], "RequestId": "req"}}


def sdk_pull_request(host: str, secret_id: str, secret_key: str, region: str, timestamp: int, fill: Any) -> Any:
    """The SDK's request for a pull: `fill(sdk_client)` makes the call."""
    profile = client_profile.ClientProfile(httpProfile=http_profile.HttpProfile(endpoint=host))
    sdk = sms_client.SmsClient(credential.Credential(secret_id, secret_key), region, profile)
    caught: list[Any] = []

    def send(prepared: Any, **_: Any) -> Any:
        caught.append(prepared)
        response = requests.Response()
        response.status_code = 200
        response.headers["Content-Type"] = "application/json"
        response._content = json.dumps(EMPTY_PULL).encode()
        return response

    frozen_time = types.SimpleNamespace(time=lambda: timestamp)
    with (
        mock.patch.object(abstract_client, "time", frozen_time),
        mock.patch.object(sdk.request.conn._session, "send", send),
    ):
        fill(sdk)
    [prepared] = caught
    return prepared


def our_pull_client(
    host: str, secret_id: str, secret_key: str, region: str, app_id: str, timestamp: int
) -> tuple[TencentSmsClient, list[httpx.Request]]:
    caught: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        caught.append(request)
        return httpx.Response(200, json=EMPTY_PULL)

    scheme = "http" if host.startswith("127.") else "https"
    client_settings = TencentSettings(
        endpoint=f"{scheme}://{host}", secret_id=secret_id, secret_key=SecretStr(secret_key), sdk_app_id=app_id,
        region=region,
    )  # fmt: skip
    client = TencentSmsClient(
        client_settings, http=httpx.Client(transport=httpx.MockTransport(handler)), clock=lambda: timestamp + 0.999
    )
    return client, caught


def assert_same_request(ours: httpx.Request, theirs: Any, action: str) -> None:
    their_body = theirs.body.encode("utf-8") if isinstance(theirs.body, str) else theirs.body
    assert ours.content == their_body
    assert ours.headers["X-TC-Action"] == action
    for name in COMPARED_HEADERS:
        assert ours.headers[name] == theirs.headers[name], name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    number=phone_numbers,
    begin=st.integers(min_value=0, max_value=2_000_000_000),
    span=st.integers(min_value=0, max_value=7 * 86_400),
    offset=st.integers(min_value=0, max_value=1000),
    limit=st.integers(min_value=1, max_value=100),
    **common,
)
def test_pull_by_phone_number_matches_the_sdk_byte_for_byte(
    number: str, begin: int, span: int, offset: int, limit: int, host: str, secret_id: str, secret_key: str,
    region: str, app_id: str, timestamp: int,
) -> None:  # fmt: skip
    def fill(sdk: Any) -> None:
        request = sms_models.PullSmsSendStatusByPhoneNumberRequest()
        request.BeginTime, request.Offset, request.Limit = begin, offset, limit
        request.PhoneNumber, request.SmsSdkAppId, request.EndTime = number, app_id, begin + span
        sdk.PullSmsSendStatusByPhoneNumber(request)

    theirs = sdk_pull_request(host, secret_id, secret_key, region, timestamp, fill)
    client, caught = our_pull_client(host, secret_id, secret_key, region, app_id, timestamp)
    assert client.pull_status_by_phone_number(number, begin, begin + span, offset=offset, limit=limit) == []
    assert_same_request(caught[0], theirs, "PullSmsSendStatusByPhoneNumber")


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limit=st.integers(min_value=1, max_value=100), **common)
def test_pull_status_matches_the_sdk_byte_for_byte(
    limit: int, host: str, secret_id: str, secret_key: str, region: str, app_id: str, timestamp: int
) -> None:
    def fill(sdk: Any) -> None:
        request = sms_models.PullSmsSendStatusRequest()
        request.Limit, request.SmsSdkAppId = limit, app_id
        sdk.PullSmsSendStatus(request)

    theirs = sdk_pull_request(host, secret_id, secret_key, region, timestamp, fill)
    client, caught = our_pull_client(host, secret_id, secret_key, region, app_id, timestamp)
    assert client.pull_status(limit) == []
    assert_same_request(caught[0], theirs, "PullSmsSendStatus")
