"""Short names for the error categories, so a provider's table of codes (`<provider>/errors.py`) reads one code a
line."""

from __future__ import annotations

from typing import Final

from globesms.errors import ErrorCategory

RETRYABLE: Final = ErrorCategory.RETRYABLE
THROTTLED: Final = ErrorCategory.THROTTLED
RECIPIENT: Final = ErrorCategory.RECIPIENT
REQUEST: Final = ErrorCategory.REQUEST
CONFIG: Final = ErrorCategory.CONFIG
UNKNOWN_OUTCOME: Final = ErrorCategory.UNKNOWN_OUTCOME
