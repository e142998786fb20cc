"""Who may push receipts: the per-provider token in the callback URL (`/v1/receipts/{provider}/{token}`).

Providers cannot send our API key, so the URL itself carries a secret. It lives in the provider's secret as
GLOBESMS_<PROVIDER>_RECEIPT_TOKEN (an environment variable locally). No token configured means no push is accepted.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from globesms.models.outbound import ProviderName

MIN_TOKEN_LENGTH = 16


def token_variable(provider: ProviderName) -> str:
    return f"GLOBESMS_{provider.upper()}_RECEIPT_TOKEN"


def token_accepted(provider: ProviderName, given: str, env: Mapping[str, str]) -> bool:
    expected = env.get(token_variable(provider), "")
    if len(expected) < MIN_TOKEN_LENGTH:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
