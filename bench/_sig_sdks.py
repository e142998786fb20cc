"""The official SDKs, sending the same requests as our clients with the network cut at their transport.

All three SDKs send through `requests`; `cut_transport` replaces the send of `requests.adapters.HTTPAdapter`,
requests' transport (every SDK's adapter is a subclass that keeps it), with a function that keeps the prepared
request and then either raises (`CutTransport.cut` set: the request was built and signed, and no answer comes) or
answers at once with the bytes the benchmark gives it. Either way the SDK goes through all of
`requests.Session.send` (hooks, cookies, redirects) down to the transport, as our client goes through all of
`httpx.Client.send` down to its own. With an answer, the SDK reads it as it would a real one, so a call is timed
from the caller's data to the parsed response, as our client's `send` is. Clocks and nonces are the SDKs' own:
both sides pay for theirs.

The SDKs are test-only dependencies (`requirements/sdk-*.txt`); this module imports them on first use.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

from globesms.models.outbound import OutboundSms

TENCENT_HOST = "sms.intl.tencentcloudapi.com"
ALIYUN_HOST = "dysmsapi.ap-southeast-1.aliyuncs.com"
HUAWEI_ENDPOINT = "https://smsapi.ap-southeast-1.myhuaweicloud.com:443"


def rpc_form_call(openapi_models: Any, action: str) -> Any:
    """The Alibaba SDK's description of an SMS API (2018-05-01) RPC call with its parameters in a form body: how
    the SDK signs an operation documented `in: formData` (the tests' signature proof builds the same call)."""
    return openapi_models.Params(
        action=action,
        version="2018-05-01",
        protocol="HTTPS",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )


@dataclass
class CutTransport:
    """What the SDKs' transport received (the last prepared request) and what it does with it: `cut(request)`
    if `cut` is set (it raises, ending the call at the transport), else answer `answer`."""

    answer: bytes = b"{}"
    cut: Callable[[Any], NoReturn] | None = None
    sent: list[Any] = field(default_factory=list)

    def last(self) -> Any:
        return self.sent[-1]


@contextmanager
def cut_transport() -> Iterator[CutTransport]:
    requests = importlib.import_module("requests")
    adapters = importlib.import_module("requests.adapters")
    state = CutTransport()
    original = adapters.HTTPAdapter.send

    def send(adapter: Any, prepared: Any, **_: Any) -> Any:
        if state.cut is not None:
            state.cut(prepared)  # raises
        state.sent[:] = [prepared]  # keeps only the last: a benchmark makes thousands of calls
        response = requests.Response()
        response.status_code = 200
        response.reason = "OK"
        response.headers["Content-Type"] = "application/json"
        response._content = state.answer
        response.request = prepared
        response.url = prepared.url
        response.encoding = "utf-8"
        response.connection = adapter
        return response

    adapters.HTTPAdapter.send = send
    try:
        yield state
    finally:
        adapters.HTTPAdapter.send = original


# ------------------------------------------------------------------------------------------------------ Tencent


def tencent_sender(secret_id: str, secret_key: str, region: str, app_id: str) -> Callable[[Sequence[OutboundSms]], Any]:
    """A function sending messages through `SmsClient.SendMultiGlobalSms`: the SDK's request model is built from
    the messages (the caller's part of using the SDK), then sent."""
    credential = importlib.import_module("tencentcloud.common.credential")
    client_profile = importlib.import_module("tencentcloud.common.profile.client_profile")
    http_profile = importlib.import_module("tencentcloud.common.profile.http_profile")
    sms_client = importlib.import_module("tencentcloud.sms.v20210111.sms_client")
    models = importlib.import_module("tencentcloud.sms.v20210111.models")
    profile = client_profile.ClientProfile(httpProfile=http_profile.HttpProfile(endpoint=TENCENT_HOST))
    client = sms_client.SmsClient(credential.Credential(secret_id, secret_key), region, profile)

    def send(messages: Sequence[OutboundSms]) -> Any:
        request = models.SendMultiGlobalSmsRequest()
        request.SmsSdkAppId = app_id
        items = []
        for message in messages:
            item = models.MultiSmsInfo()
            item.PhoneNumber = message.to
            item.TemplateId = message.template_id
            item.TemplateParamSet = list(message.template_params) or None
            item.SenderId = message.sender_id or None
            item.SessionContext = message.message_id
            items.append(item)
        request.MultiSmsInfoSet = items
        return client.SendMultiGlobalSms(request)

    return send


def tencent_statuses(response: Any) -> int:
    return len(response.SendMultiStatusSet)


# ------------------------------------------------------------------------------------------------------- Huawei


def huawei_sender(app_key: str, app_secret: str, sender: str) -> Callable[[Sequence[OutboundSms]], Any]:
    """A function sending messages through `SMSApiClient.batch_send_diff_sms`: recipients of the same template
    and parameters share one `smsContent` entry, as in our client's body (the caller's part of using the SDK)."""
    http_config = importlib.import_module("huaweicloudsdkcore.http.http_config")
    v1 = importlib.import_module("huaweicloudsdksmsapi.v1")
    credentials_module = importlib.import_module("huaweicloudsdksmsapi.v1.smsapi_credentials")
    client = (
        v1.SMSApiClient.new_builder()
        .with_credentials(credentials_module.SMSApiCredentials(app_key, app_secret))
        .with_endpoints([HUAWEI_ENDPOINT])
        .with_http_config(http_config.HttpConfig.get_default_config())
        .build()
    )

    def send(messages: Sequence[OutboundSms]) -> Any:
        groups: dict[tuple[str | None, tuple[str, ...]], list[str]] = {}
        for message in messages:
            groups.setdefault((message.template_id, message.template_params), []).append(message.to)
        body = v1.BatchSendDiffSmsRequestBody(
            _from=sender,
            extend=messages[0].message_id,
            sms_content=[
                v1.SmsContent(to=numbers, template_id=template_id, template_paras=list(params) or None)
                for (template_id, params), numbers in groups.items()
            ],
        )
        return client.batch_send_diff_sms(v1.BatchSendDiffSmsRequest(body=body))

    return send


def huawei_results(response: Any) -> int:
    return len(response.result)


# ------------------------------------------------------------------------------------------------------ Alibaba


@dataclass
class AliyunSdk:
    """`alibabacloud_dysmsapi20180501.Client`: its own operation methods (parameters in the query string), and its
    generic `call_api` with the parameters in a form body (the wire form our client uses for a long batch)."""

    access_key_id: str
    access_key_secret: str
    client: Any = None
    _models: Any = None
    _openapi_models: Any = None
    _runtime: Any = None

    def __post_init__(self) -> None:
        openapi_models = importlib.import_module("alibabacloud_tea_openapi.models")
        client_module = importlib.import_module("alibabacloud_dysmsapi20180501.client")
        self._models = importlib.import_module("alibabacloud_dysmsapi20180501.models")
        self._openapi_models = openapi_models
        self._runtime = importlib.import_module("darabonba.runtime")
        config = openapi_models.Config(
            access_key_id=self.access_key_id, access_key_secret=self.access_key_secret, endpoint=ALIYUN_HOST
        )
        self.client = client_module.Client(config)

    def send_one(self, message: OutboundSms) -> Any:
        request = self._models.SendMessageToGlobeRequest(
            to=message.to[1:],
            message=message.text,
            task_id=message.message_id,
            type=message.type.value,
            from_=message.sender_id,
            validity_period=message.validity_seconds,
        )
        return self.client.send_message_to_globe_with_options(request, self._runtime.RuntimeOptions())

    def send_batch(self, messages: Sequence[OutboundSms], task_id: str) -> Any:
        first = messages[0]
        request = self._models.BatchSendMessageToGlobeRequest(
            to=json.dumps([m.to[1:] for m in messages], separators=(",", ":")),
            message=json.dumps([m.text for m in messages], separators=(",", ":")),
            type=first.type.value,
            task_id=task_id,
            from_=first.sender_id,
            validity_period=first.validity_seconds,
        )
        return self.client.batch_send_message_to_globe_with_options(request, self._runtime.RuntimeOptions())

    def send_batch_in_body(self, messages: Sequence[OutboundSms], task_id: str) -> Any:
        first = messages[0]
        params: dict[str, str] = {
            "To": json.dumps([m.to[1:] for m in messages], separators=(",", ":")),
            "Message": json.dumps([m.text for m in messages], separators=(",", ":")),
            "Type": first.type.value,
            "TaskId": task_id,
        }
        if first.sender_id:
            params["From"] = first.sender_id
        if first.validity_seconds is not None:
            params["ValidityPeriod"] = str(first.validity_seconds)
        call = rpc_form_call(self._openapi_models, "BatchSendMessageToGlobe")
        answer = self.client.call_api(
            call, self._openapi_models.OpenApiRequest(body=params), self._runtime.RuntimeOptions()
        )
        # What the operation method does with the answer, so both variants end with the same parsed model.
        return self._models.BatchSendMessageToGlobeResponse().from_map(answer)


def aliyun_batch_ids(response: Any) -> int:
    return len(json.loads(response.body.message_id_list))


def aliyun_single_id(response: Any) -> int:
    return 1 if response.body.message_id else 0
