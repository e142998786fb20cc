"""The receipt and reply tokens where deployed: the provider's receipt token secret
(GLOBESMS_<PROVIDER>_RECEIPT_SECRET_NAME), `{"GLOBESMS_<PROVIDER>_RECEIPT_TOKEN": "…",
"GLOBESMS_<PROVIDER>_REPLY_TOKEN": "…"}` (the reply token optional), read for the receipts route
(`providers.receipt_environment`) and the replies route (`replies.auth`); locally the variables themselves.
"""

from __future__ import annotations

import logging

from globesms.models.outbound import ProviderName
from globesms.secrets import SecretRefused, SecretUnavailable, last_good_secret

# A child of the Powertools logger "globesms" (globesms.observability), whose handler writes these lines too.
logger = logging.getLogger(__name__)

#: A configured token shorter than this is ignored (receipts.auth, replies.auth).
MIN_TOKEN_LENGTH = 16
#: After a failed read of a token secret, how long pushes are answered from what is known (the last good token, or
#: none: 403) before Secrets Manager is asked again. The endpoints have no API key: without it every push of a
#: flood would be a Secrets Manager call and an error line.
FAILED_READ_RETRY_SECONDS = 10.0


def token_variable(provider: ProviderName) -> str:
    return f"GLOBESMS_{provider.upper()}_RECEIPT_TOKEN"


def reply_token_variable(provider: ProviderName) -> str:
    return f"GLOBESMS_{provider.upper()}_REPLY_TOKEN"


def stored_tokens(provider: ProviderName, secret_name: str) -> dict[str, str] | None:
    """The receipt token and, when there is one, the reply token in the provider's receipt token secret
    (GLOBESMS_<PROVIDER>_RECEIPT_SECRET_NAME), by variable name. One that cannot be read or was edited wrong leaves
    the last good one in force (`secrets.last_good_secret`); None when this process has read no good one yet (a
    secret not created, access denied, throttled): no token is configured then, every push is refused (403), and
    the error is logged, by its class, never the secret's text. The endpoints have no API key, so a failure costs
    a caller no more than a refused push: never a crash (502) they could provoke at will, and at most one read a
    `FAILED_READ_RETRY_SECONDS` after a failed one."""
    try:
        stored = last_good_secret(
            secret_name, lambda value: _valid_tokens(provider, value), retry_after=FAILED_READ_RETRY_SECONDS
        )
    except SecretUnavailable as exc:
        logger.error(
            "receipt token secret unavailable; pushes refused", extra={"secret_name": secret_name, "reason": str(exc)}
        )
        return None
    return stored


def _variables(provider: ProviderName) -> tuple[str, str]:
    return token_variable(provider), reply_token_variable(provider)


def _valid_tokens(provider: ProviderName, stored: object) -> dict[str, str]:
    receipt, reply = _variables(provider)
    if not isinstance(stored, dict) or not isinstance(stored.get(receipt), str):
        raise SecretRefused(f"must be a JSON object with {receipt}")
    if not any(len(token) >= MIN_TOKEN_LENGTH for token in stored[receipt].split()):
        raise SecretRefused(f"has no {receipt} of at least {MIN_TOKEN_LENGTH} characters")
    if not isinstance(stored.get(reply, ""), str):
        raise SecretRefused(f"has a {reply} that is not a string")
    return {name: stored[name] for name in (receipt, reply) if name in stored}
