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
from globesms.receipts.tokens import MIN_TOKEN_LENGTH, reply_token_variable, stored_tokens


def reply_environment(provider: ProviderName, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment, with the reply token from the provider's receipt token secret when one is named (without
    one there, the variable's own value). While no good secret has been read (`stored_tokens`: not created,
    unreadable) no reply token is configured: every reply push is refused."""
    merged = dict(environment() if env is None else env)
    secret_name = load_settings(ReceiptsSettings, merged).receipt_secret_name(provider)
    if secret_name:
        stored = stored_tokens(provider, secret_name)
        variable = reply_token_variable(provider)
        if stored is None or variable in stored:
            merged[variable] = "" if stored is None else stored[variable]
    return merged


def reply_token_accepted(provider: ProviderName, given: str, env: Mapping[str, str]) -> bool:
    configured = load_settings(RepliesSettings, env).reply_token(provider).split()
    matched = False
    for expected in (t for t in configured if len(t) >= MIN_TOKEN_LENGTH):
        matched |= hmac.compare_digest(expected.encode(), given.encode())  # every token compared
    return matched
