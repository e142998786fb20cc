"""Where a status event may be sent: the rule for a `status_callback` URL, checked when a request names one
(`models.api`) and again before each delivery (`webhooks.sender`: the setting may have changed since)."""

from __future__ import annotations

from urllib.parse import urlsplit

from globesms.config import CallbackSettings, settings
from globesms.domain.addresses import check_literal_host


def check_callback_url(value: str) -> str:
    """Only https, so events (message content, numbers) never travel in clear; plain http to a loopback host is
    allowed when GLOBESMS_ALLOW_LOOPBACK_CALLBACKS is true (the local stack sets it). A host written as an address
    (or `localhost`) must be a public one (domain/addresses.py); a name is resolved and vetted at each delivery."""
    url = urlsplit(value)
    allow_loopback = _loopback_callbacks_allowed()
    if url.scheme == "https" and url.hostname:
        check_literal_host(url.hostname, allow_loopback=allow_loopback)  # AddressRefused: a ValueError
        return value
    loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
    if url.scheme == "http" and loopback and allow_loopback:
        return value
    raise ValueError("status_callback must be an https URL")


def _loopback_callbacks_allowed() -> bool:
    try:
        return settings(CallbackSettings).allow_loopback_callbacks
    except ValueError as exc:  # our configuration's fault, not the caller's: not a 422 about their URL
        raise RuntimeError(str(exc)) from None
