"""Provider clients (one subpackage each) and how a function gets the one it needs.

Credentials: locally from the GLOBESMS_<PROVIDER>_* variables; in the deployed stack from one Secrets Manager
secret per provider (`GLOBESMS_<PROVIDER>_SECRET_NAME`), a JSON object whose keys are those same variable names,
read through Powertools Parameters (cached for 5 minutes, so a rotated secret is picked up without a deploy).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

# `config.settings`, not `settings`: the submodule `globesms.providers.settings` takes that name in this package.
from globesms import config
from globesms.config import ProviderSecretSettings, environment, load_settings
from globesms.models.outbound import ProviderName
from globesms.ports import Provider

SECRET_MAX_AGE_SECONDS = 300


def provider_environment(name: ProviderName, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables the provider's settings are read from (its client's model, `ReceiptAuthSettings`): the
    environment (or `env`) with its secret's keys over it, when `GLOBESMS_<PROVIDER>_SECRET_NAME` names one."""
    merged = dict(environment() if env is None else env)
    names = config.settings(ProviderSecretSettings) if env is None else load_settings(ProviderSecretSettings, env)
    secret_name = names.secret_name(name)
    if secret_name:
        from aws_lambda_powertools.utilities import parameters

        secret: Any = parameters.get_secret(secret_name, transform="json", max_age=SECRET_MAX_AGE_SECONDS)
        if not isinstance(secret, dict):
            raise ValueError(f"secret for {name} must be a JSON object of GLOBESMS_{name.upper()}_* values")
        merged.update({str(k): str(v) for k, v in secret.items()})
    return merged


def build_provider(name: ProviderName, env: Mapping[str, str] | None = None) -> Provider:
    module = importlib.import_module(f"globesms.providers.{name}")
    provider: Provider = module.from_environment(provider_environment(name, env))
    return provider
