"""Differential test: our ACS3-HMAC-SHA256 signatures against the official SDK (alibabacloud-tea-openapi +
alibabacloud-dysmsapi20180501, pinned in requirements/sdk-aliyun.txt), byte for byte, over generated inputs.

The SDK's clock and nonce are frozen (`Utils.get_timestamp`, `Utils.get_nonce`) and its transport
(`DaraCore.do_action`) is replaced by a function that keeps the finished request and stops. Then, for the same
messages:
  1. the SDK sends the same business parameters we do, and its canonical query equals ours;
  2. our signer, given the SDK's request, produces the SDK's Authorization exactly;
  3. the SDK's signer, given our request as it is on the wire, produces our Authorization exactly.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench._sig_sdks import rpc_form_call
from globesms.models.outbound import MessageType, OutboundSms
from globesms.models.receipts import StatusQueryFailed
from globesms.providers.aliyun import AliyunClient, AliyunSettings, batch_task_id
from globesms.providers.aliyun.signer import Acs3Signer, canonical_headers, canonical_query

sdk_client_module = importlib.import_module("alibabacloud_dysmsapi20180501.client")
sdk_models = importlib.import_module("alibabacloud_dysmsapi20180501.models")
openapi_client = importlib.import_module("alibabacloud_tea_openapi.client")
openapi_models = importlib.import_module("alibabacloud_tea_openapi.models")
openapi_utils = importlib.import_module("alibabacloud_tea_openapi.utils")
darabonba_runtime = importlib.import_module("darabonba.runtime")
darabonba_exceptions = importlib.import_module("darabonba.exceptions")

pytestmark = pytest.mark.sdk

HOST = "dysmsapi.ap-southeast-1.aliyuncs.com"
KEY_ID = "LTAI5tDifferentialKey"
SECRET = "differential-secret/+=~*"
FIXED_NOW = datetime(2024, 2, 29, 23, 59, 58, tzinfo=UTC)
FIXED_DATE = "2024-02-29T23:59:58Z"
FIXED_NONCE = "3156853299f313e23d1673dc12e1703d"
ALGORITHM = "ACS3-HMAC-SHA256"
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class _Captured(Exception):
    pass


class Sdk:
    """The official SDK, frozen and stopped just before the network."""

    def __init__(self) -> None:
        config = openapi_models.Config(access_key_id=KEY_ID, access_key_secret=SECRET, endpoint=HOST)
        self.client = sdk_client_module.Client(config)
        self.captured: list[Any] = []

    def request_of(self, call: Callable[[], object]) -> Any:
        self.captured.clear()
        with pytest.raises(darabonba_exceptions.UnretryableException):  # how the SDK wraps our stop
            call()
        [request] = self.captured
        return request

    def single(self, message: OutboundSms, channel_id: str | None) -> Any:
        model = sdk_models.SendMessageToGlobeRequest(
            to=message.to[1:],
            message=message.text,
            task_id=message.message_id,
            type=message.type.value,
            from_=message.sender_id,
            validity_period=message.validity_seconds,
            channel_id=channel_id,
        )
        runtime = darabonba_runtime.RuntimeOptions()
        return self.request_of(lambda: self.client.send_message_to_globe_with_options(model, runtime))

    def batch(self, params: dict[str, str]) -> Any:
        model = sdk_models.BatchSendMessageToGlobeRequest(
            to=params["To"],
            message=params["Message"],
            type=params["Type"],
            task_id=params["TaskId"],
            from_=params.get("From"),
            validity_period=int(params["ValidityPeriod"]) if "ValidityPeriod" in params else None,
            channel_id=params.get("ChannelId"),
        )
        runtime = darabonba_runtime.RuntimeOptions()
        return self.request_of(lambda: self.client.batch_send_message_to_globe_with_options(model, runtime))

    def form_body(self, action: str, params: dict[str, str]) -> Any:
        """The SDK's generic RPC call with the parameters in a form body (how it signs `in: formData`)."""
        call_params = rpc_form_call(openapi_models, action)
        runtime = darabonba_runtime.RuntimeOptions()
        request = openapi_models.OpenApiRequest(body=params)
        return self.request_of(lambda: self.client.call_api(call_params, request, runtime))


@pytest.fixture(scope="module")
def sdk() -> Iterator[Sdk]:
    frozen = Sdk()

    def keep_and_stop(request: Any, runtime: Any) -> None:
        frozen.captured.append(request)
        raise _Captured

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(openapi_utils.Utils, "get_timestamp", staticmethod(lambda: FIXED_DATE))
        patch.setattr(openapi_utils.Utils, "get_nonce", staticmethod(lambda: FIXED_NONCE))
        patch.setattr(openapi_client.DaraCore, "do_action", staticmethod(keep_and_stop))
        yield frozen


def our_client(channel_id: str | None = None, max_query_length: int = 8192) -> tuple[AliyunClient, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def keep(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(503, json={"Code": "ServiceUnavailable"})

    client = AliyunClient(
        AliyunSettings(
            endpoint=f"https://{HOST}",
            access_key_id=KEY_ID,
            access_key_secret=SECRET,
            channel_id=channel_id,
            max_query_length=max_query_length,
        ),
        http=httpx.Client(transport=httpx.MockTransport(keep)),
        clock=lambda: FIXED_NOW,
        nonce=lambda: FIXED_NONCE,
    )
    return client, sent


def wire_params(request: httpx.Request) -> dict[str, str]:
    params = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
    params.update(parse_qsl(request.content.decode(), keep_blank_values=True))
    return params


def assert_same_signatures(ours: httpx.Request, theirs: Any) -> None:
    # 2. Our signer, on the SDK's request, gives the SDK's Authorization.
    their_headers = {name: value for name, value in theirs.headers.items() if name != "Authorization"}
    their_query = canonical_query(theirs.query)
    assert their_query == openapi_utils.get_canonical_query_string(theirs.query)
    assert canonical_headers(their_headers)[1] == openapi_utils.get_canonicalized_headers(their_headers)[1]
    mine_on_theirs = Acs3Signer(KEY_ID, SECRET).authorization(
        theirs.method, theirs.pathname, their_query, their_headers, theirs.headers["x-acs-content-sha256"]
    )
    assert mine_on_theirs == theirs.headers["Authorization"]

    # 3. The SDK's signer, on our request as sent, gives our Authorization.
    signed_names = ours.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    wire = SimpleNamespace(
        method=ours.method,
        pathname=ours.url.path,
        query=dict(parse_qsl(ours.url.query.decode(), keep_blank_values=True)),
        headers={name: ours.headers[name] for name in signed_names},
    )
    body_hash = hashlib.sha256(ours.content).hexdigest()
    assert ours.headers["x-acs-content-sha256"] == body_hash
    theirs_on_mine = openapi_utils.Utils.get_authorization(wire, ALGORITHM, body_hash, KEY_ID, SECRET)
    assert theirs_on_mine == ours.headers["authorization"]


# ---------------------------------------------------------------------------------------------------------------
# Generated inputs: unicode text, reserved characters and spaces, all sender id forms, long batches

_any_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=300)
_reserved_text = st.text(alphabet=" +*~%/&=?#'\"\\[],:;!$()@^`{|}<>\t\nAz09é你🎉", min_size=1, max_size=120)
texts = st.one_of(_any_text, _reserved_text)
message_ids = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=60)
numbers = st.builds(
    lambda code, rest: f"+{code}{rest}",
    st.sampled_from(["852", "853", "886", "65", "44", "1", "49", "971", "60", "234"]),
    st.from_regex(r"[0-9]{7,11}", fullmatch=True),
)
senders = st.one_of(
    st.none(),
    st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,10}", fullmatch=True),
    st.from_regex(r"[0-9]{1,15}", fullmatch=True),
)
validities = st.one_of(st.none(), st.integers(1, 7 * 24 * 3600))
channels = st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9]{1,12}", fullmatch=True))


@st.composite
def batches(draw: st.DrawFn, min_size: int = 2, max_size: int = 40) -> list[OutboundSms]:
    recipients = draw(st.lists(numbers, min_size=min_size, max_size=max_size, unique=True))
    kind = draw(st.sampled_from([MessageType.NOTIFY, MessageType.MKT]))
    sender = draw(senders)
    validity = draw(validities)
    prefix = draw(st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True))
    shared = draw(st.one_of(st.none(), texts))  # a pack often sends one text to everyone
    return [
        OutboundSms(
            message_id=f"{prefix}.{index:05d}",
            to=to,
            type=kind,
            text=shared if shared is not None else draw(texts),
            sender_id=sender,
            validity_seconds=validity,
        )
        for index, to in enumerate(recipients)
    ]


@SETTINGS
@given(
    message_id=message_ids,
    to=numbers,
    text=texts,
    kind=st.sampled_from(list(MessageType)),
    sender=senders,
    validity=validities,
    channel=channels,
)
def test_single_send_signs_like_the_sdk(
    sdk: Sdk,
    message_id: str,
    to: str,
    text: str,
    kind: MessageType,
    sender: str | None,
    validity: int | None,
    channel: str | None,
) -> None:
    message = OutboundSms(message_id, to, kind, text=text, sender_id=sender, validity_seconds=validity)
    client, sent = our_client(channel)
    client.send([message], min_batch_size=2)
    [ours] = sent
    theirs = sdk.single(message, channel)

    # 1. Same parameters, same canonical query, both in the query string.
    assert ours.headers["x-acs-action"] == theirs.headers["x-acs-action"] == "SendMessageToGlobe"
    assert wire_params(ours) == theirs.query
    assert ours.url.query.decode() == openapi_utils.get_canonical_query_string(theirs.query)
    assert_same_signatures(ours, theirs)


@SETTINGS
@given(messages=batches(), channel=channels)
def test_batch_send_signs_like_the_sdk(sdk: Sdk, messages: list[OutboundSms], channel: str | None) -> None:
    client, sent = our_client(channel, max_query_length=10**9 // 2)
    client.send(messages)
    [ours] = sent
    params = wire_params(ours)
    assert params["TaskId"] == batch_task_id(messages[0].message_id, len(messages))
    assert json.loads(params["To"]) == [m.to[1:] for m in messages]
    assert json.loads(params["Message"]) == [m.text for m in messages]
    theirs = sdk.batch(params)

    assert ours.headers["x-acs-action"] == theirs.headers["x-acs-action"] == "BatchSendMessageToGlobe"
    assert params == theirs.query
    assert ours.url.query.decode() == openapi_utils.get_canonical_query_string(theirs.query)
    assert_same_signatures(ours, theirs)


@st.composite
def full_batches(draw: st.DrawFn) -> list[OutboundSms]:
    """1,000 recipients: distinct numbers from a drawn base, texts cycled from a small drawn pool (generating
    1,000 independent texts would make hypothesis give up on size)."""
    base = draw(st.integers(10_000_000, 89_999_000))
    pool = draw(st.lists(texts, min_size=1, max_size=7))
    kind = draw(st.sampled_from([MessageType.NOTIFY, MessageType.MKT]))
    return [OutboundSms(f"full.{i:05d}", f"+852{base + i}", kind, text=pool[i % len(pool)]) for i in range(1000)]


@settings(deadline=None, max_examples=8, suppress_health_check=list(HealthCheck))
@given(messages=full_batches())
def test_a_full_batch_in_a_form_body_signs_like_the_sdk(sdk: Sdk, messages: list[OutboundSms]) -> None:
    client, sent = our_client()
    client.send(messages)
    [ours] = sent
    assert ours.url.query == b"" and ours.headers["content-type"] == "application/x-www-form-urlencoded"
    params = wire_params(ours)
    assert len(json.loads(params["To"])) == 1000
    theirs = sdk.form_body("BatchSendMessageToGlobe", params)

    assert theirs.query == {} and theirs.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(theirs.body, keep_blank_values=True)) == params
    assert_same_signatures(ours, theirs)


@SETTINGS
@given(messages=batches(min_size=2, max_size=10), channel=channels)
def test_form_bodies_sign_like_the_sdk(sdk: Sdk, messages: list[OutboundSms], channel: str | None) -> None:
    client, sent = our_client(channel, max_query_length=0)
    client.send(messages)
    [ours] = sent
    theirs = sdk.form_body("BatchSendMessageToGlobe", wire_params(ours))
    assert dict(parse_qsl(theirs.body, keep_blank_values=True)) == wire_params(ours)
    assert_same_signatures(ours, theirs)


# ---------------------------------------------------------------------------------------------------------------
# The status query of the reconcile run: QueryMessage, signed like the sends

provider_ids = st.one_of(
    st.from_regex(r"[0-9]{10,24}", fullmatch=True),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=60),
)


@SETTINGS
@given(message_id=provider_ids)
def test_query_message_signs_like_the_sdk(sdk: Sdk, message_id: str) -> None:
    client, sent = our_client()
    with pytest.raises(StatusQueryFailed):  # the stand-in transport answers 503: the request is what counts
        client.query_message(message_id)
    [ours] = sent
    model = sdk_models.QueryMessageRequest(message_id=message_id)
    theirs = sdk.request_of(lambda: sdk.client.query_message_with_options(model, darabonba_runtime.RuntimeOptions()))
    assert theirs.headers["x-acs-action"] == ours.headers["x-acs-action"] == "QueryMessage"
    assert dict(theirs.query) == wire_params(ours) == {"MessageId": message_id}
    assert_same_signatures(ours, theirs)
