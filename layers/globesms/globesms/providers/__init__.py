"""Provider clients (one subpackage each) and how a function gets the one it needs.

Credentials: locally from the GLOBESMS_<PROVIDER>_* variables; in the deployed stack from one Secrets Manager
secret per provider (`GLOBESMS_<PROVIDER>_SECRET_NAME`), a JSON object whose keys are those same variable names,
read through Powertools Parameters (cached for 5 minutes, so a rotated secret is picked up without a deploy).
Receipt tokens have secrets of their own (`receipt_environment`): the receipts function never reads credentials
it does not need.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Final

# `config.settings`, not `settings`: the submodule `globesms.providers.settings` takes that name in this package.
from globesms import config
from globesms.config import ProviderSecretSettings, ReceiptAuthSettings, ReceiptsSettings, environment, load_settings
from globesms.errors import DispatchCode, ErrorCategory, InvalidProviderRequest, ProviderError
from globesms.models.outbound import OutboundSms, ProviderName, SendOutcome
from globesms.ports import PlannedCall, Provider
from globesms.receipts.tokens import FAILED_READ_RETRY_SECONDS, stored_tokens, token_variable
from globesms.secrets import SecretRefused, SecretUnavailable, error_classes, last_good_secret, read_secret

# A child of the Powertools logger "globesms" (globesms.observability), whose handler writes these lines too.
logger = logging.getLogger(__name__)


def provider_environment(
    name: ProviderName,
    env: Mapping[str, str] | None = None,
    *,
    force: bool = False,
    read: Callable[[str], object] | None = None,
) -> dict[str, str]:
    """The provider's GLOBESMS_* settings: the environment, with its credentials secret over it when one is named.
    `force` reads the secret again now instead of from the 5-minute cache (after an authentication error); `read`
    reads it another way."""
    merged = dict(environment() if env is None else env)
    names = config.settings(ProviderSecretSettings) if env is None else load_settings(ProviderSecretSettings, env)
    secret_name = names.secret_name(name)
    if secret_name:
        secret = read_secret(secret_name, force=force) if read is None else read(secret_name)
        merged.update(_credentials(secret))
    return merged


def _credentials(secret: object) -> dict[str, str]:
    """A credentials secret's values, as text; raises SecretRefused (naming the key, never a value) for one that is
    not a JSON object of strings and numbers (an SdkAppId is often stored as a number). A `null` was taken as the
    text "None" (a review): Huawei's push check then accepted pushes signed with key and secret "None", and
    dispatchers signed with it; `true`, a list or an object would have been read as their Python spelling."""
    if not isinstance(secret, dict):
        raise SecretRefused("must be a JSON object of GLOBESMS_<PROVIDER>_* values")
    values = {}
    for key, value in secret.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise SecretRefused(f"{key} must be a string or a number")
        values[str(key)] = str(value)
    return values


def receipt_environment(name: ProviderName, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the receipts function needs for one provider: its receipt token, from the secret named by
    GLOBESMS_<PROVIDER>_RECEIPT_SECRET_NAME (JSON `{"GLOBESMS_<PROVIDER>_RECEIPT_TOKEN": "<token>"}`; only that
    key is read, `receipts.tokens`: none while no good secret has been read) or, locally, the variable
    itself; and for Huawei with GLOBESMS_HUAWEI_RECEIPT_AUTH=aksk the application's AK/SK from its credentials
    secret, to check signed pushes. Never a provider's other credentials."""
    merged = dict(environment() if env is None else env)
    auth = load_settings(ReceiptAuthSettings, merged)
    if name is ProviderName.HUAWEI and auth.huawei_receipt_auth == "aksk":
        merged = _with_push_key(name, merged)
    receipts = config.settings(ReceiptsSettings) if env is None else load_settings(ReceiptsSettings, merged)
    secret_name = receipts.receipt_secret_name(name)
    if secret_name:  # the secret's token, or none at all (every push refused) while no good one has been read
        stored = stored_tokens(name, secret_name) or {}
        merged[token_variable(name)] = stored.get(token_variable(name), "")
    return merged


#: What a signed push is checked with (receipts/auth.py), the only values taken from Huawei's credentials secret.
PUSH_KEY_VARIABLES = ("GLOBESMS_HUAWEI_APP_KEY", "GLOBESMS_HUAWEI_APP_SECRET")


def _with_push_key(name: ProviderName, merged: dict[str, str]) -> dict[str, str]:
    """`merged` with the application's AK/SK from the provider's credentials secret, the last good one when it
    cannot be read (read again `FAILED_READ_RETRY_SECONDS` later, as the tokens are); without any while none has
    been read: the push is then refused (`receipts.auth`, fail closed) and the provider sends it again, where an
    error here was a 502 anyone could provoke (the endpoint has no API key). The reason is logged, never the
    secret."""

    def read(secret_name: str) -> object:
        return last_good_secret(secret_name, _credentials, retry_after=FAILED_READ_RETRY_SECONDS)

    try:
        with_secret = provider_environment(name, merged, read=read)
    except SecretUnavailable as exc:
        logger.error(
            "provider credentials unavailable; signed pushes refused", extra={"provider": str(name), "reason": str(exc)}
        )
        return merged
    # The key and secret alone: the rest of the credentials secret never reaches the receipts function, and a key
    # it still carries (an older secret's GLOBESMS_HUAWEI_RECEIPT_AUTH=none) cannot switch the deployed check off,
    # as it did until 2026-12-07 (found by a review).
    return {**merged, **{k: with_secret[k] for k in PUSH_KEY_VARIABLES if k in with_secret}}


def build_provider(name: ProviderName, env: Mapping[str, str] | None = None) -> Provider:
    return _build(name, provider_environment(name, env))


# ---------------------------------------------------------------------------------------- clients that follow keys

#: Authentication refusals (a `config` error with one of these codes, or HTTP 401/403): the key the client signs
#: with may have been rotated or revoked since the secret was last read. Alibaba's gateway codes, Tencent's
#: AuthFailure family, Huawei's E0001xx authentication codes and its SDK-HMAC verification failure.
_AUTH_CODE = re.compile(
    r"(AuthFailure(\..+)?|InvalidAccessKeyId(\..+)?|SignatureDoesNotMatch|IncompleteSignature"
    r"|Forbidden\.AccessKeyDisabled|E00010[1-6]|E000111|E000045)"
)


def is_authentication_error(error: ProviderError | None) -> bool:
    if error is None or error.category is not ErrorCategory.CONFIG:
        return False
    return error.http_status in (401, 403) or _AUTH_CODE.fullmatch(error.code) is not None


def _fingerprint(env: Mapping[str, str]) -> str:
    """A digest of the settings a client is built from (never kept or logged in clear)."""
    relevant = sorted((k, v) for k, v in env.items() if k.startswith("GLOBESMS_"))
    return hashlib.sha256(json.dumps(relevant).encode()).hexdigest()


def _build(name: ProviderName, env: Mapping[str, str]) -> Provider:
    provider: Provider = importlib.import_module(f"globesms.providers.{name}").from_environment(env)
    return provider


class ProviderClients:
    """The dispatcher's client for one provider, rebuilt whenever the settings it was built from change: the
    provider's secret is re-read at most every SECRET_MAX_AGE_SECONDS (`globesms.secrets`), so a rotated or
    revoked key is followed within 5 minutes without a deploy, and at once when the provider refuses the key
    (`refreshed`).
    Thread-safe; the replaced client is closed."""

    def __init__(
        self,
        name: ProviderName,
        *,
        environment: Callable[..., Mapping[str, str]] = provider_environment,
        build: Callable[[ProviderName, Mapping[str, str]], Provider] = _build,
        on_last_good: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_last_good`: called each time the last good client is kept (the dispatcher counts it in the metric of
        its alarm, `<provider>-dispatcher-not-built`: a log line alone would leave a broken secret unseen until the
        warm dispatchers are recycled, hours later)."""
        self.name = name
        self._environment = environment
        self._build = build
        self._on_last_good = on_last_good
        self._lock = threading.Lock()
        self._client: Provider | None = None
        self._fingerprint = ""

    def current(self) -> RefreshingProvider:
        """The client for one pack."""
        return RefreshingProvider(self._latest(force=False), self)

    def refreshed(self, stale: Provider) -> Provider | None:
        """After `stale` was refused authentication: the secret read again now; a new client when the settings
        changed, None when they did not or cannot be read (the same key would be refused again)."""
        client = self._latest(force=True)
        return None if client is stale else client

    def _latest(self, *, force: bool) -> Provider:
        """The client of the settings as they are read now, or the last good client, with an error logged, when they
        cannot be read or built from: a broken edit of the credentials secret keeps the key that worked in force, as
        bad settings do everywhere here (it failed every pack until it was mended, a review found). Raises only
        while no client has been built. The reason logged is the error's class, never the settings."""
        try:
            env = self._environment(self.name, force=True) if force else self._environment(self.name)
            return self._client_for(env)
        except Exception as exc:
            kept = self._client
            if kept is None:
                raise
            self._on_last_good()
            logger.error(
                "provider settings unusable: the last good client kept",
                extra={
                    "provider": str(self.name),
                    "reason": str(exc) if isinstance(exc, SecretRefused) else error_classes(exc),
                },
            )
            return kept

    def _client_for(self, env: Mapping[str, str]) -> Provider:
        fingerprint = _fingerprint(env)
        with self._lock:
            if self._client is None or fingerprint != self._fingerprint:
                old, self._client, self._fingerprint = self._client, self._build(self.name, env), fingerprint
                close = getattr(old, "close", None)
                if callable(close):
                    close()
            return self._client


class RefreshingProvider:
    """A `Provider` for one pack: its client's calls; when the provider refused some for authentication, the
    secret is read again at once, and if it changed, the client is rebuilt and those recipients come back with
    `DispatchCode.CREDENTIALS_RENEWED` (RETRYABLE): the rate-limited sending takes them for unsent and plans them
    again, under rate-limit permits of their own, with the new key (`dispatch.sending._make_call`; what its
    rounds do not reach goes back on the queue as recipients without a permit do, an attempt not counted); sent
    without a limiter they are retried. A refused call sent nothing, so sending it again texts nobody twice.
    Not sent again here, at once: the permit taken for the refused call was for its second, which may be over by
    now (the call's answer, then a read of the secret), and a provider may count the refused call against its
    limit too, so a resend under the same permit could be the second call of that second. When the secret did
    not change, the refusals stand (the same key would be refused again)."""

    def __init__(self, client: Provider, clients: ProviderClients) -> None:
        self.client = client
        self._clients = clients
        self.name = client.name
        self.max_recipients_per_call = client.max_recipients_per_call
        self.longest_call_seconds = client.longest_call_seconds

    def check(self, message: OutboundSms) -> InvalidProviderRequest | None:
        return self.client.check(message)

    def plan(self, messages: Sequence[OutboundSms]) -> list[PlannedCall]:
        return self.client.plan(messages)

    def send(self, messages: Sequence[OutboundSms], *, plan: Sequence[PlannedCall] | None = None) -> list[SendOutcome]:
        outcomes = self.client.send(messages, plan=plan)
        if not any(is_authentication_error(outcome.error) for outcome in outcomes):
            return outcomes
        # A secret that cannot be read again leaves the refusals standing too (`ProviderClients._latest`): raised
        # here, the error lost the pack's answers, earlier calls' ids included (a review).
        fresh = self._clients.refreshed(self.client)
        if fresh is None:
            return outcomes
        self.client = fresh
        return [
            outcome._replace(error=CREDENTIALS_RENEWED) if is_authentication_error(outcome.error) else outcome
            for outcome in outcomes
        ]


CREDENTIALS_RENEWED: Final = ProviderError(
    ErrorCategory.RETRYABLE,
    DispatchCode.CREDENTIALS_RENEWED,
    "refused for the provider key, which has been renewed since: sent again with the new key",
)
