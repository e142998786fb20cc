"""Provider clients (one subpackage each) and how a function gets the one it needs.

Credentials: locally from the GLOBESMS_<PROVIDER>_* variables; in the deployed stack from one Secrets Manager
secret per provider (`GLOBESMS_<PROVIDER>_SECRET_NAME`), a JSON object whose keys are those same variable names,
read through Powertools Parameters (cached for 5 minutes, so a rotated secret is picked up without a deploy).
Receipt tokens have secrets of their own (`receipt_environment`): the receipts function never reads credentials
it does not need.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from globesms.models.outbound import ProviderName
from globesms.ports import Provider

SECRET_MAX_AGE_SECONDS = 300


def _read_secret(secret_name: str, *, force: bool = False) -> Any:
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_secret(secret_name, transform="json", max_age=SECRET_MAX_AGE_SECONDS, force_fetch=force)


def provider_environment(
    name: ProviderName, env: Mapping[str, str] | None = None, *, force: bool = False
) -> dict[str, str]:
    """The provider's GLOBESMS_* settings: the environment, with its credentials secret over it when one is named.
    `force` reads the secret again now instead of from the 5-minute cache (after an authentication error)."""
    merged = dict(os.environ if env is None else env)
    secret_name = merged.get(f"GLOBESMS_{name.upper()}_SECRET_NAME")
    if secret_name:
        secret = _read_secret(secret_name, force=force)
        if not isinstance(secret, dict):
            raise ValueError(f"secret for {name} must be a JSON object of GLOBESMS_{name.upper()}_* values")
        merged.update({str(k): str(v) for k, v in secret.items()})
    return merged


def receipt_environment(name: ProviderName, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the receipts function needs for one provider: its receipt token, from the secret named by
    GLOBESMS_<PROVIDER>_RECEIPT_SECRET_NAME (JSON `{"GLOBESMS_<PROVIDER>_RECEIPT_TOKEN": "<token>"}`; only that
    key is read) or, locally, the variable itself; and for Huawei with GLOBESMS_HUAWEI_RECEIPT_AUTH=aksk the
    application's AK/SK from its credentials secret, to check signed pushes. Never a provider's other credentials."""
    merged = dict(os.environ if env is None else env)
    if name is ProviderName.HUAWEI and merged.get("GLOBESMS_HUAWEI_RECEIPT_AUTH", "").strip().lower() == "aksk":
        merged = provider_environment(name, merged)
    token_variable = f"GLOBESMS_{name.upper()}_RECEIPT_TOKEN"
    secret_name = merged.get(f"GLOBESMS_{name.upper()}_RECEIPT_SECRET_NAME")
    if secret_name:
        secret = _read_secret(secret_name)
        if not isinstance(secret, dict) or not isinstance(secret.get(token_variable), str):
            raise ValueError(f"receipt secret for {name} must be a JSON object with {token_variable}")
        merged[token_variable] = secret[token_variable]
    return merged


def build_provider(name: ProviderName, env: Mapping[str, str] | None = None) -> Provider:
    module = importlib.import_module(f"globesms.providers.{name}")
    provider: Provider = module.from_environment(provider_environment(name, env))
    return provider
