"""Outbound HTTP keeps no cookies: provider APIs sign each call and use none, and a customer's endpoint leaves no
state in the sender (globesms/cookieless.py)."""

from __future__ import annotations

import time

import httpx
import pytest
from pydantic import SecretStr

from globesms.cookieless import CookielessClient
from globesms.providers.aliyun import AliyunClient, AliyunSettings
from globesms.providers.huawei import HuaweiClient, HuaweiSettings
from globesms.providers.tencent import TencentSettings, TencentSmsClient
from globesms.webhooks.pinned import pinned_client
from globesms.webhooks.sender import new_http_client


def test_a_set_cookie_is_neither_kept_nor_sent_back() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"set-cookie": "session=abc; Path=/"}, json={})

    with CookielessClient(transport=httpx.MockTransport(answer)) as client:
        client.post("https://sms.example.com/send")
        client.post("https://sms.example.com/send")
        assert len(client.cookies) == 0
    assert [r.headers.get("cookie") for r in seen] == [None, None]


def test_cookies_cannot_be_given_to_it() -> None:
    with pytest.raises(ValueError, match="keeps no cookies"):
        CookielessClient(cookies={"session": "abc"})
    client = CookielessClient()
    with pytest.raises(ValueError, match="keeps no cookies"):
        client.cookies = {"session": "abc"}  # type: ignore[assignment]
    client.close()


def test_every_outbound_client_is_cookieless() -> None:
    clients = [
        AliyunClient(AliyunSettings(access_key_id="id", access_key_secret=SecretStr("secret"))),
        TencentSmsClient(TencentSettings(secret_id="id", secret_key=SecretStr("secret"), sdk_app_id="1400000000")),
        HuaweiClient(HuaweiSettings(app_key="key", app_secret=SecretStr("secret"), sender="isms100000001")),
    ]
    for client in clients:
        assert isinstance(client._http, CookielessClient), client
        client.close()
    deadline = time.monotonic() + 5
    pinned = pinned_client("hooks.example.com", ["93.184.216.34"], deadline, timeout=httpx.Timeout(1.0), headers={})
    for http in (pinned, new_http_client()):
        assert isinstance(http, CookielessClient)
        http.close()
