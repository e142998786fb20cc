"""The one way a function reads a secret: AWS Secrets Manager through Powertools Parameters, a JSON object, kept
`SECRET_MAX_AGE_SECONDS` in the process (a rotated or revoked secret is picked up within that; `force` reads it
now, after an authentication error). Parameters is imported on use: it loads boto3, which no logic module may load
at import (tests/unit/test_import_boundary.py). The provider credentials (`providers`), the receipt and reply tokens
(`receipts.tokens`) and the webhook signing secrets (`webhooks.sender`) are read through it; the tokens and the
signing secrets through `last_good_secret`, so a secret that cannot be read or was edited wrong leaves the last
good one in force."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

SECRET_MAX_AGE_SECONDS = 300

# A child of the Powertools logger "globesms" (globesms.observability), whose handler writes these lines too.
log = logging.getLogger(__name__)


class SecretRefused(ValueError):
    """A secret that was read but breaks its rule. The message is the rule, never the secret's text."""


class SecretUnavailable(Exception):
    """No usable secret, and none read good before by this process. The message is safe to log: the rule the
    secret breaks or the class of the error reading it, never the secret's text."""


def read_secret(secret_name: str, *, force: bool = False) -> Any:
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_secret(secret_name, transform="json", max_age=SECRET_MAX_AGE_SECONDS, force_fetch=force)


def last_good_secret[T](
    name: str,
    check: Callable[[Any], T],
    *,
    fetch: Callable[[str], Any] | None = None,
    retry_after: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """The secret `name` (read through `fetch`, by default `read_secret`) as `check` returns it; `check` raises
    `SecretRefused` for one that breaks its rule. One that cannot be read (missing, access denied, throttled once
    the cache lapsed) or is refused leaves the last good one this process read in force, with an error logged, as
    bad settings do everywhere here; a process that has read no good one yet raises `SecretUnavailable`. After a
    failed read the secret is read again only `retry_after` seconds later (0: at the next call): the endpoints
    without an API key set it, so that a flood of pushes is not a flood of Secrets Manager calls and error lines.
    Each secret name is read with one `check`."""
    failed = _failed.get(name)
    if failed is not None and clock() < failed[0]:
        return cast(T, _fallback(name, failed[1], log_it=False))
    try:
        value = check((fetch or read_secret)(name))
    except Exception as exc:  # the reason is logged: only the rule broken or the error's class, never the secret
        reason = str(exc) if isinstance(exc, SecretRefused) else f"unreadable ({error_classes(exc)})"
        _failed[name] = (clock() + retry_after, reason)
        return cast(T, _fallback(name, reason, log_it=True))
    _failed.pop(name, None)
    _last_good[name] = value
    return value


def _fallback(name: str, reason: str, *, log_it: bool) -> Any:
    if name not in _last_good:
        raise SecretUnavailable(reason)
    if log_it:
        log.error(
            "stored secret refused; the last good one stays in force", extra={"secret_name": name, "reason": reason}
        )
    return _last_good[name]


def error_classes(exc: BaseException) -> str:
    """What may be logged of an error reading a secret: its class and its causes' (Powertools wraps every error in
    its GetParameterError), with AWS's error code where there is one, e.g. `GetParameterError:
    ResourceNotFoundException` or `GetParameterError: ClientError ThrottlingException`; never a message, which
    could quote the secret."""
    names: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(names) < 3:
        response = getattr(seen, "response", None)
        code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
        name = type(seen).__name__
        names.append(f"{name} {code}" if isinstance(code, str) and code != name else name)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return ": ".join(names)


#: The last good value of each secret read by this process through `last_good_secret`, by secret name.
_last_good: dict[str, Any] = {}
#: After a failed read of a secret: until when it is not read again, and why it failed.
_failed: dict[str, tuple[float, str]] = {}


def forget_stored_secrets() -> None:
    """As a new process: no last good secret (tests, each of whose stacks is a deployment of its own)."""
    _last_good.clear()
    _failed.clear()
