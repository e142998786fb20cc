"""Who may push replies: the per-provider token in the reply URL (`/v1/replies/{provider}/{token}`), as for receipts.

GLOBESMS_<PROVIDER>_REPLY_TOKEN: locally a variable; deployed, a second key of the provider's receipt token secret
(`{"GLOBESMS_<PROVIDER>_RECEIPT_TOKEN": "…", "GLOBESMS_<PROVIDER>_REPLY_TOKEN": "…"}`), which the receipts function
already reads. No token configured means no reply push is accepted. `new old` while rotating; each token at least
MIN_TOKEN_LENGTH characters; compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from globesms.config import ReceiptsSettings, RepliesSettings, environment, load_settings
from globesms.models.outbound import ProviderName
from globesms.receipts.auth import MIN_TOKEN_LENGTH
from globesms.secrets import read_secret


def token_variable(provider: ProviderName) -> str:
    return f"GLOBESMS_{provider.upper()}_REPLY_TOKEN"


def reply_environment(provider: ProviderName, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment, with the reply token from the provider's receipt token secret when one is named."""
    merged = dict(environment() if env is None else env)
    secret_name = load_settings(ReceiptsSettings, merged).receipt_secret_name(provider)
    if secret_name:
        secret = read_secret(secret_name)
        token = secret.get(token_variable(provider)) if isinstance(secret, dict) else None
        if isinstance(token, str):
            merged[token_variable(provider)] = token
    return merged


def reply_token_accepted(provider: ProviderName, given: str, env: Mapping[str, str]) -> bool:
    configured = load_settings(RepliesSettings, env).reply_token(provider).split()
    matched = False
    for expected in (t for t in configured if len(t) >= MIN_TOKEN_LENGTH):
        matched |= hmac.compare_digest(expected.encode(), given.encode())  # every token compared
    return matched
