"""Alibaba Cloud SMS (dysmsapi 2018-05-01, global API): signed httpx client, error table, receipts."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from globesms.providers.aliyun.client import (
        AliyunClient,
        AliyunSettings,
        PlannedCall,
        PreparedCall,
        batch_task_id,
        from_environment,
        plan_calls,
        settings_from_environment,
    )

__all__ = [
    "AliyunClient",
    "AliyunSettings",
    "PlannedCall",
    "PreparedCall",
    "batch_task_id",
    "from_environment",
    "plan_calls",
    "settings_from_environment",
]

# The client (httpx) is loaded on first use of these names, not with the package: the receipt parser, the signer
# and the error table are imported by functions (receipts) that never send.


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("globesms.providers.aliyun.client"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
