"""Sending one webhook: the queue body checked, the event signed and POSTed once, the answer judged.

One attempt per call; retries belong to the queue (functions/webhooks/app.py): a failed delivery raises
`WebhookFailed`, the sender makes the queue message invisible for `backoff_seconds(receives)` and reports it failed,
and after the queue's maxReceiveCount the message moves to the dead-letter queue.
"""

from __future__ import annotations

import json
import random
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from globesms.config import CallbackSettings, WebhookSecretSettings, load_settings, settings
from globesms.cookieless import CookielessClient
from globesms.domain.addresses import AddressRefused, Resolver, system_resolver, vetted_addresses
from globesms.domain.callback_urls import check_callback_url
from globesms.models.webhooks import WebhookDelivery
from globesms.secrets import SecretRefused, SecretUnavailable, last_good_secret
from globesms.validation import fields
from globesms.webhooks.pinned import DeadlineExceeded, pinned_client
from globesms.webhooks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, Secrets, sign

#: Short: a slow customer endpoint holds one delivery (and one sender thread), never the pipeline.
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0
TIMEOUT = httpx.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS, write=5.0, pool=2.0)
#: All of one delivery — resolving the host, connecting, TLS, sending, the answer's status and what is drained of
#: its body — ends within this: httpx's timeouts are per phase (per read), so an endpoint sending its headers a
#: byte at a time would otherwise hold a delivery indefinitely. Each network operation gets at most what is left.
DELIVERY_DEADLINE_SECONDS = 5.0
USER_AGENT = "globesms-webhooks/1"
DRAIN_LIMIT_BYTES = 64 * 1024
DRAIN_SECONDS = 1.0
LOOPBACK_VARIABLE = "GLOBESMS_ALLOW_LOOPBACK_CALLBACKS"

#: Backoff between attempts, "full jitter": uniform in [0, min(cap, base * 2^(receives - 1))], at least 1 s.
#: Ceilings 30, 60, 120, 240, 480, 900, 900 s between the 8 receives of the webhook queue: ~25 min on average
#: (at most ~45 min) before an event reaches the dead-letter queue.
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 900  # SQS allows up to 12 h of visibility; 15 min keeps retries meaningful
BACKOFF_MIN_SECONDS = 1

SECRET_VARIABLE = "GLOBESMS_WEBHOOK_SECRET"  # noqa: S105 - the variable's name, not a secret
SECRET_NAME_VARIABLE = "GLOBESMS_WEBHOOK_SECRET_NAME"  # noqa: S105 - the variable's name, not a secret
KEY_SECRETS_VARIABLE = "GLOBESMS_WEBHOOK_KEY_SECRETS"  # the variable and the JSON key of the per-key secrets


class WebhookFailed(Exception):
    """A delivery that did not succeed. `reason` is safe to log: a status code or an error class, never a body,
    a URL or a secret. `permanent` means trying again cannot help (the queue body or its URL is refused)."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class WebhookSecretUnavailable(WebhookFailed):
    """No signing secret: nothing is sent unsigned. Not permanent: fixing the configuration fixes it."""


def parse_delivery(body: str) -> WebhookDelivery:
    """The queue body as a `WebhookDelivery` (a queue body is external input too). The reason names the fields
    that broke the model, never their values."""
    try:
        return WebhookDelivery.model_validate_json(body)
    except ValidationError as exc:
        raise WebhookFailed(f"invalid queue body: {', '.join(fields(exc)[:5])}", permanent=True) from None


def url_host(url: str) -> str | None:
    """What a log line may show of a callback URL: its host (paths and queries may hold the customer's tokens)."""
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def signed_request(delivery: WebhookDelivery, *, secret: Secrets, now: datetime) -> tuple[bytes, dict[str, str]]:
    """The exact body (compact JSON of the event) and the headers that go with it."""
    body = delivery.event.model_dump_json().encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(secret, int(now.timestamp()), body),
        EVENT_ID_HEADER: delivery.event.id,
    }
    return body, headers


def deliver(
    delivery: WebhookDelivery,
    *,
    secret: Secrets,
    now: datetime,
    http: httpx.Client | None = None,
    resolve: Resolver = system_resolver,
    ssl_context: ssl.SSLContext | None = None,
    deadline_seconds: float = DELIVERY_DEADLINE_SECONDS,
) -> None:
    """POST the signed event once. Returns on a 2xx answer; raises `WebhookFailed` on anything else: another
    status (redirects are not followed), a timeout, the delivery deadline, a connection error, or a URL refused
    (`check_callback_url`, or a host that is or resolves to an address a callback may not reach).

    The host is resolved once, every address it resolves to is vetted, and the request goes to the first vetted
    address that takes the connection (the next one tried when one refuses or does not answer in time, as a
    browser does: a host with an address down still gets its events) through a client of its own (no pool shared
    with other deliveries or invocations), with the URL's host name for the Host header, SNI and certificate
    check. `http` replaces that client (tests with a mock transport)."""
    try:
        url = check_callback_url(delivery.url)
    except AddressRefused as refused:
        raise WebhookFailed(f"callback URL refused: {refused}", permanent=True) from None
    except ValueError as exc:  # the rule it breaks, in our words (never the URL)
        raise WebhookFailed(f"callback URL refused: {exc}", permanent=True) from None
    body, headers = signed_request(delivery, secret=secret, now=now)
    if http is not None:
        _post(http, url, body, headers)
        return
    deadline = time.monotonic() + deadline_seconds
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL:  # one accepted before the accept-time rule was as strict as this parse
        raise WebhookFailed("callback URL refused: invalid", permanent=True) from None
    port = target.port or (443 if target.scheme == "https" else 80)
    if not 0 < port < 65536:
        raise WebhookFailed("callback URL refused: invalid port", permanent=True)
    # The host as it goes on the wire (IDNA: xn--...), which the connection is pinned to and which is resolved and
    # vetted; `target.host` is its Unicode form, which never matched the name the connection asks for.
    host = target.raw_host.decode("ascii")
    try:
        addresses = vetted_addresses(host, port, allow_loopback=loopback_allowed(), resolve=resolve)
    except AddressRefused as refused:
        raise WebhookFailed(f"callback URL refused: {refused}", permanent=True) from None
    except (OSError, UnicodeError) as exc:
        raise WebhookFailed(f"host does not resolve ({type(exc).__name__})") from None
    with pinned_client(
        host, addresses, deadline, timeout=TIMEOUT, headers={"User-Agent": USER_AGENT}, ssl_context=ssl_context
    ) as client:
        _post(client, url, body, headers)


def loopback_allowed() -> bool:
    """Only the local stack sets GLOBESMS_ALLOW_LOOPBACK_CALLBACKS=true (local/settings.py)."""
    return settings(CallbackSettings).allow_loopback_callbacks


def _post(http: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> None:
    try:
        # Streamed: only the status matters; a short answer is read so the connection can be reused, a long one is
        # cut off (a receiver cannot make us read a large body).
        with http.stream(
            "POST", url, content=body, headers=headers, timeout=TIMEOUT, follow_redirects=False
        ) as response:
            status = response.status_code
            _drain(response)
    except DeadlineExceeded:
        raise WebhookFailed(f"deadline ({DELIVERY_DEADLINE_SECONDS:g} s for the whole delivery)") from None
    except httpx.TimeoutException as exc:
        raise WebhookFailed(f"timeout ({type(exc).__name__})") from exc
    except httpx.UnsupportedProtocol as exc:
        raise WebhookFailed("callback URL refused: unsupported protocol", permanent=True) from exc
    except httpx.TransportError as exc:
        raise WebhookFailed(f"connection error ({type(exc).__name__})") from exc
    except (httpx.InvalidURL, UnicodeError) as exc:  # UnicodeError: a host without an IDNA form (idna.IDNAError)
        raise WebhookFailed("callback URL refused: invalid", permanent=True) from exc
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        raise WebhookFailed(f"HTTP {status} (redirects are not followed)")
    raise WebhookFailed(f"HTTP {status}")


def _drain(response: httpx.Response) -> None:
    """Read what is left of a short answer; give up (the connection is then closed, not reused) past
    DRAIN_LIMIT_BYTES or DRAIN_SECONDS, or on any error: the status is already known."""
    if response.is_stream_consumed:  # an answer already in memory (e.g. a mock transport's)
        return
    deadline = time.monotonic() + DRAIN_SECONDS
    read = 0
    try:
        for chunk in response.iter_raw():
            read += len(chunk)
            if read > DRAIN_LIMIT_BYTES or time.monotonic() > deadline:
                return
    except (httpx.HTTPError, httpx.StreamError, DeadlineExceeded):
        return


def backoff_seconds(receives: int, *, uniform: Callable[[float, float], float] = random.uniform) -> int:
    """How long a failed delivery waits before its next attempt, given how often the queue delivered it
    (ApproximateReceiveCount, from 1): full jitter under an exponential ceiling."""
    ceiling = backoff_ceiling(receives)
    return max(BACKOFF_MIN_SECONDS, min(ceiling, round(uniform(0, ceiling))))


def backoff_ceiling(receives: int) -> int:
    exponent = min(max(receives, 1) - 1, 16)  # 30 * 2^16 is far past the cap already
    return min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (1 << exponent))


def new_http_client() -> httpx.Client:
    """A plain client with the sender's timeouts (the local receiver's tests). Deliveries use `pinned_client`."""
    return CookielessClient(timeout=TIMEOUT, follow_redirects=False, headers={"User-Agent": USER_AGENT})


def webhook_secrets(
    env: Mapping[str, str] | None = None, fetch: Callable[[str], Any] | None = None, *, owner: str | None = None
) -> tuple[str, ...]:
    """The signing secret(s) for an event of `owner`'s message (an API key id, or the intake owner): its own when
    one is configured, else the deployment's default. GLOBESMS_WEBHOOK_SECRET (and GLOBESMS_WEBHOOK_KEY_SECRETS)
    when set (the local stack); otherwise the Secrets Manager secret named by GLOBESMS_WEBHOOK_SECRET_NAME, a JSON
    object `{"GLOBESMS_WEBHOOK_SECRET": "…", "GLOBESMS_WEBHOOK_KEY_SECRETS": {"<key id>": "…"}}` read through
    Powertools Parameters (cached). A value may hold several secrets separated by spaces (`new old`) while one is
    being rotated: each event is then signed with each. Raises `WebhookSecretUnavailable` (never signing with the
    default for a key whose own secret is configured but unusable)."""
    configured = settings(WebhookSecretSettings) if env is None else load_settings(WebhookSecretSettings, env)
    value = "" if configured.webhook_secret is None else configured.webhook_secret.get_secret_value()
    own = configured.webhook_key_secrets
    keys = _key_secrets(_json_object(own.get_secret_value()) if own is not None else {})
    if not value:
        stored = _stored_secret(configured.webhook_secret_name, fetch)
        value = stored[SECRET_VARIABLE]
        keys = {**_key_secrets(stored.get(KEY_SECRETS_VARIABLE, {})), **keys}
    if owner is not None and owner in keys:
        value = keys[owner]
    secrets = tuple(value.split())
    if not secrets:
        raise WebhookSecretUnavailable("webhook secret is empty")
    return secrets


def _json_object(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise WebhookSecretUnavailable(f"{KEY_SECRETS_VARIABLE} must be a JSON object") from None


def _key_secrets(found: Any) -> dict[str, str]:
    """API key id -> its secret(s); the whole map refused when any entry is not a string (which keys have their own
    secret is then unknown: no event is signed with the default in their place)."""
    if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
        raise WebhookSecretUnavailable(f"{KEY_SECRETS_VARIABLE} must be a JSON object of API key id -> secret")
    return found


def _stored_secret(name: str, fetch: Callable[[str], Any] | None) -> dict[str, Any]:
    """The stored secret, checked whole; one unreadable or not valid (an edit that cleared the secret, misnamed a
    field or wrote a key's secret as a number) leaves the last good one of this process signing, with an error
    logged (`secrets.last_good_secret`): until 2026-12-06 it stopped every customer's webhooks until fixed
    (dead-lettered after 8 receives). A process that has read no good one yet raises: it signs nothing."""
    if not name:
        raise WebhookSecretUnavailable(f"no webhook secret: set {SECRET_VARIABLE} or {SECRET_NAME_VARIABLE}")
    try:
        return last_good_secret(name, _valid_stored, fetch=fetch)
    except SecretUnavailable as exc:
        raise WebhookSecretUnavailable(f"webhook secret {exc}") from exc


def _valid_stored(stored: Any) -> dict[str, Any]:
    if not isinstance(stored, dict) or not isinstance(stored.get(SECRET_VARIABLE), str):
        raise SecretRefused(f"must be a JSON object with {SECRET_VARIABLE}")
    if not stored[SECRET_VARIABLE].split():
        raise SecretRefused(f"has an empty {SECRET_VARIABLE}")
    try:
        keys = _key_secrets(stored.get(KEY_SECRETS_VARIABLE, {}))
    except WebhookSecretUnavailable as exc:
        raise SecretRefused(exc.reason) from None
    if not all(secret.split() for secret in keys.values()):
        raise SecretRefused(f"has an empty secret in {KEY_SECRETS_VARIABLE}")
    return stored
