"""Building and signing a provider's requests for some messages, and nothing else: no HTTP client, no answer.

The reference of the dispatch-path figure (`bench.cpu`): what any sender of these messages must do at the least.
Each client exposes that step under its own name (Alibaba and Huawei also cut the messages into calls first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from globesms.models.outbound import OutboundSms
from globesms.providers.aliyun import AliyunClient
from globesms.providers.huawei import HuaweiClient
from globesms.providers.tencent import TencentSmsClient


def build_and_sign(client: Any, messages: Sequence[OutboundSms]) -> int:
    """The requests `client.send(messages)` would send, validated, serialised and signed; returns how many."""
    if isinstance(client, AliyunClient):
        return len(client.prepare(messages))  # validation, planning, query/body encoding, ACS3 signature
    if isinstance(client, TencentSmsClient):
        return len([client.build_request(messages)])  # one call of up to 200: body and TC3 signature
    if isinstance(client, HuaweiClient):
        return len([client.auth_headers(call.body) for call in client.prepare(messages)])  # bodies, then signatures
    raise TypeError(f"no build-and-sign step known for {type(client).__name__}")
