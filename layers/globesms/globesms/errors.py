"""One error taxonomy for every provider.

A provider's own code is never thrown away: `ProviderError` carries the normalised `category` *and* the raw
`code`/`message` the provider sent, so the record shows both and a new provider code is one line in that
provider's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorCategory(StrEnum):
    RETRYABLE = "retryable"  # transient: provider 5xx, connection refused before anything was sent
    THROTTLED = "throttled"  # the provider's rate limit; retry later
    RECIPIENT = "recipient"  # this number will not work: invalid, opted out, country not allowed
    REQUEST = "request"  # our request is wrong: template, params, content, sender id
    CONFIG = "config"  # credentials, signature, allowlist, balance, suspended account
    UNKNOWN_OUTCOME = "unknown_outcome"  # the request may have reached the provider (e.g. read timeout)


#: Categories after which the same request must not be sent again as it is.
FINAL_CATEGORIES = frozenset({ErrorCategory.RECIPIENT, ErrorCategory.REQUEST})


@dataclass(frozen=True, slots=True)
class ProviderError:
    category: ErrorCategory
    code: str  # the provider's raw code, e.g. "MOBILE_NUMBER_ILLEGAL", "FailedOperation.TemplateIncorrectOrUnapproved"
    message: str = ""  # the provider's raw message (never contains our secrets)
    http_status: int | None = None

    @property
    def is_final(self) -> bool:
        return self.category in FINAL_CATEGORIES


class InvalidProviderRequest(ValueError):
    """Raised by a provider client *before* anything is sent: a field breaks the provider's documented rules."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule
