"""Huawei Cloud Message & SMS (batchSendDiffSms): signed httpx client, error table, wire shapes."""

from __future__ import annotations

from collections.abc import Mapping

from globesms.providers.huawei.client import AuthMode, HuaweiClient, HuaweiSettings, settings_from_environment


def from_environment(env: Mapping[str, str]) -> HuaweiClient:
    """A client configured from GLOBESMS_HUAWEI_* (and GLOBESMS_HTTP_*_TIMEOUT) variables; raises ValueError
    naming the variable when one is missing or invalid (never showing a secret)."""
    return HuaweiClient(settings_from_environment(env))


__all__ = ["AuthMode", "HuaweiClient", "HuaweiSettings", "from_environment", "settings_from_environment"]
