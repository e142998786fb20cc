"""Tencent Cloud SMS (SendMultiGlobalSms): signed httpx client, TC3 signer and error map."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from globesms.providers.tencent.client import ENVIRONMENT_VARIABLES, TencentSettings, TencentSmsClient

__all__ = ["ENVIRONMENT_VARIABLES", "TencentSettings", "TencentSmsClient", "from_environment"]


def from_environment(env: Mapping[str, str]) -> TencentSmsClient:
    """A client from the GLOBESMS_TENCENT_* variables (and the shared GLOBESMS_HTTP_* timeouts)."""
    from globesms.providers.tencent.client import TencentSettings, TencentSmsClient

    return TencentSmsClient(TencentSettings.from_environment(env))


# The client (httpx) is loaded on first use of these names, not with the package: the receipt parser, the signer
# and the error table are imported by functions (receipts) that never send.


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("globesms.providers.tencent.client"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
