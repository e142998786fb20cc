"""Where a status event may be sent: the rule for a `status_callback` URL, checked when a request names one
(`models.api`) and again before each delivery (`webhooks.sender`: the setting may have changed since)."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from globesms.config import CallbackSettings, settings
from globesms.domain.addresses import check_literal_host, literal_address

# What urlsplit and an HTTP client read differently: urlsplit drops tabs and newlines anywhere and strips a leading
# space, where httpx refuses a control character anywhere ("non-printable") and reads a URL with a leading space as
# a relative one. Spaces elsewhere (path, query, user info) are fine: httpx sends them as %20.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: What a host name resolves with: httpx sends any ASCII host as written (%-escapes, backslashes and all), and a
#: name with other characters never resolves, so its events would be retried until their dead-letter queue.
_HOST_NAME = re.compile(r"[a-z0-9._-]+")
#: Why urlsplit refuses a URL: a bracket that does not pair, or a character that NFKC normalisation (which a
#: client's URL handling may apply) turns into one that ends or splits the host part.
_UNSPLITTABLE = (
    "status_callback's host part must not have unpaired brackets, nor characters that read as @ : / ? or # once "
    "normalised (NFKC, as U+FF20 reads as @)"
)


def check_callback_url(value: str) -> str:
    """Only https, so events (message content, numbers) never travel in clear; plain http to a loopback host is
    allowed when GLOBESMS_ALLOW_LOOPBACK_CALLBACKS is true (the local stack sets it). A host written as an address
    (or `localhost`) must be a public one (domain/addresses.py); a name is resolved and vetted at each delivery."""
    url, host = _parsed(value)
    allow_loopback = _loopback_callbacks_allowed()
    if url.scheme == "https" and host:
        check_literal_host(host, allow_loopback=allow_loopback)  # AddressRefused: a ValueError
        return value
    loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
    if url.scheme == "http" and loopback and allow_loopback:
        return value
    raise ValueError("status_callback must be an https URL")


def _parsed(value: str) -> tuple[SplitResult, str]:
    """`value` split, and its host as an HTTP client sends it (an internationalised name in its IDNA form),
    refusing what an HTTP client would not send as written, or would send where nothing answers: control
    characters, a leading space, what urlsplit cannot split, a port that is no number (or 0), a bracketed host that
    is no IPv6 address (or carries a zone), a host name with characters no name resolves with, an internationalised
    name without an IDNA form."""
    if _CONTROL.search(value) or value.startswith(" "):
        raise ValueError("status_callback must not contain control characters or start with a space")
    try:
        url = urlsplit(value)
    except ValueError:
        # urllib's message quotes the whole netloc, user info (a password, a token) included, and it would become
        # the 422's rule and an intake refusal's record: the rule is named, the input never quoted.
        raise ValueError(_UNSPLITTABLE) from None
    try:
        port = url.port  # parsed on access: ValueError for "host:443:80" or a port out of range
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("status_callback must have a numeric port (1-65535) if any")
    host = url.hostname or ""
    if "[" in url.netloc:
        if "%" in host or literal_address(host) is None:
            raise ValueError("status_callback's bracketed host must be an IPv6 address, without a zone")
    elif not host.isascii():
        host = _idna_form(host)
    elif host and not _HOST_NAME.fullmatch(host):
        raise ValueError("status_callback's host has a character no host name has")
    return url, host


def _idna_form(host: str) -> str:
    """An internationalised name's IDNA form, which is what is resolved and sent, encoded as httpx encodes it
    (lower case, IDNA 2008 without UTS 46 mapping: a full-width letter is refused, not mapped). It is the form the
    address check reads: `idna` splits labels at the ideographic and full-width dots too (U+3002, U+FF0E, U+FF61),
    so `127。0。0。1` is sent to 127.0.0.1, and passed for a name when the check read it as written. `idna` is
    imported only for such a name: its tables cost a cold start several milliseconds."""
    import idna

    try:
        return idna.encode(host.lower()).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise ValueError("status_callback's host is not a valid internationalised domain name") from None


def _loopback_callbacks_allowed() -> bool:
    try:
        return settings(CallbackSettings).allow_loopback_callbacks
    except ValueError as exc:  # our configuration's fault, not the caller's: not a 422 about their URL
        raise RuntimeError(str(exc)) from None
