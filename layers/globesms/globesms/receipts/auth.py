"""Who may push receipts: the per-provider token in the callback URL (`/v1/receipts/{provider}/{token}`).

Providers cannot send our API key, so the URL itself carries a secret. It lives in a secret of its own per provider
as GLOBESMS_<PROVIDER>_RECEIPT_TOKEN (an environment variable locally), with the reply token beside it
(`receipts.tokens`). No token configured means no push is accepted. While a provider's URL is being changed the value
may hold the new and the old token, separated by a space: either is accepted (each at least MIN_TOKEN_LENGTH
characters; shorter ones are ignored).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from datetime import datetime

from globesms.config import ReceiptAuthSettings, load_settings
from globesms.models.outbound import ProviderName
from globesms.receipts.tokens import MIN_TOKEN_LENGTH

# A child of the Powertools logger "globesms" (globesms.observability), whose handler writes these lines too.
logger = logging.getLogger(__name__)


def token_accepted(provider: ProviderName, given: str, env: Mapping[str, str]) -> bool:
    tokens = [
        t for t in load_settings(ReceiptAuthSettings, env).receipt_token(provider).split() if len(t) >= MIN_TOKEN_LENGTH
    ]
    matched = False
    for expected in tokens:
        matched |= hmac.compare_digest(expected.encode(), given.encode())  # every token compared
    return matched


def push_signature_accepted(
    provider: ProviderName,
    env: Mapping[str, str],
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
) -> bool:
    """Huawei can sign its pushes with the application's AK/SK (SDK-HMAC-SHA256); with
    GLOBESMS_HUAWEI_RECEIPT_AUTH=aksk an unsigned or wrongly signed push is refused. The other providers do not
    sign pushes: the token alone authenticates them."""
    if provider is not ProviderName.HUAWEI:
        return True
    auth = load_settings(ReceiptAuthSettings, env)
    if auth.huawei_receipt_auth != "aksk":
        return True
    secret = "" if auth.huawei_app_secret is None else auth.huawei_app_secret.get_secret_value()
    if not auth.huawei_app_key or not secret:
        # Fail closed: an HMAC under an empty secret is one anyone can make (the key travels in every push's
        # Authorization header), so without both nothing is accepted, and the log says why.
        logger.error("HuaweiReceiptAuth=aksk without the application key and secret: every Huawei push refused")
        return False
    from globesms.providers.huawei.receipts import verify_push_signature

    return verify_push_signature(method, path, query, headers, body, auth.huawei_app_key, secret, now)
