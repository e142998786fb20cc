"""Huawei Cloud Message & SMS (batchSendDiffSms): signed httpx client, error table, wire shapes."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from globesms.providers.huawei.client import AuthMode, HuaweiClient, HuaweiSettings, settings_from_environment


def from_environment(env: Mapping[str, str]) -> HuaweiClient:
    """A client configured from GLOBESMS_HUAWEI_* (and GLOBESMS_HTTP_*_TIMEOUT) variables; raises ValueError
    naming the variable when one is missing or invalid (never showing a secret)."""
    from globesms.providers.huawei.client import HuaweiClient, settings_from_environment

    return HuaweiClient(settings_from_environment(env))


__all__ = ["AuthMode", "HuaweiClient", "HuaweiSettings", "from_environment", "settings_from_environment"]

# The client (httpx) is loaded on first use of these names, not with the package: the receipt parser, the signer
# and the error table are imported by functions (receipts) that never send.


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("globesms.providers.huawei.client"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
