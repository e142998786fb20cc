"""Tencent Cloud SMS (SendMultiGlobalSms): signed httpx client, TC3 signer and error map."""

from __future__ import annotations

from collections.abc import Mapping

from globesms.providers.tencent.client import ENVIRONMENT_VARIABLES, TencentSettings, TencentSmsClient

__all__ = ["ENVIRONMENT_VARIABLES", "TencentSettings", "TencentSmsClient", "from_environment"]


def from_environment(env: Mapping[str, str]) -> TencentSmsClient:
    """A client from the GLOBESMS_TENCENT_* variables (and the shared GLOBESMS_HTTP_* timeouts)."""
    return TencentSmsClient(TencentSettings.from_environment(env))
