"""Provider settings from GLOBESMS_* variables: `globesms.config.load_settings` (the rules every settings model is
read by), plus the HTTP timeouts every provider's settings share.

- `GLOBESMS_HTTP_CONNECT_TIMEOUT` / `GLOBESMS_HTTP_READ_TIMEOUT` are positive, finite seconds (`2`, `0.5`), at most
  5 and 15: a dispatcher starts a call only if connecting and waiting for the answer can end 5 s before its 30 s
  timeout (`dispatch.sending`), so longer timeouts would leave it no time to call at all, and every recipient would
  be put back on its queue until its validity lapsed.
- Each provider's model lists its variables (`ENVIRONMENT_VARIABLES`, settings field -> variable); its fields'
  defaults and descriptions are the documentation (docs/configuration.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

from pydantic import BaseModel

from globesms import config
from globesms.config import optional

CONNECT_TIMEOUT_VARIABLE: Final = "GLOBESMS_HTTP_CONNECT_TIMEOUT"
READ_TIMEOUT_VARIABLE: Final = "GLOBESMS_HTTP_READ_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT: Final = 3.0
DEFAULT_READ_TIMEOUT: Final = 10.0
MAX_CONNECT_TIMEOUT: Final = 5.0
MAX_READ_TIMEOUT: Final = 15.0
CONNECT_TIMEOUT_MEANING: Final = "seconds to wait for a connection to the provider (at most 5)"
READ_TIMEOUT_MEANING: Final = "seconds to wait for the provider's answer (at most 15)"
#: Settings field -> variable, for the two timeouts every provider's settings share.
HTTP_TIMEOUT_VARIABLES: Final[Mapping[str, str]] = {
    "connect_timeout": CONNECT_TIMEOUT_VARIABLE,
    "read_timeout": READ_TIMEOUT_VARIABLE,
}

__all__ = [
    "CONNECT_TIMEOUT_MEANING",
    "CONNECT_TIMEOUT_VARIABLE",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "HTTP_TIMEOUT_VARIABLES",
    "MAX_CONNECT_TIMEOUT",
    "MAX_READ_TIMEOUT",
    "READ_TIMEOUT_MEANING",
    "READ_TIMEOUT_VARIABLE",
    "load_settings",
    "optional",
]


_MAXIMUM_SECONDS: Final = {CONNECT_TIMEOUT_VARIABLE: MAX_CONNECT_TIMEOUT, READ_TIMEOUT_VARIABLE: MAX_READ_TIMEOUT}


def _seconds(name: str, raw: str) -> float:
    """A duration in seconds: positive and finite (`inf` would mean no timeout at all), at most its maximum."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    most = _MAXIMUM_SECONDS[name]
    if not (math.isfinite(value) and 0 < value <= most):
        raise ValueError(f"{name} must be a positive number of seconds, at most {most:g}")
    return value


_SECONDS = {variable: _seconds for variable in HTTP_TIMEOUT_VARIABLES.values()}


def load_settings[SettingsModel: BaseModel](
    model: type[SettingsModel], env: Mapping[str, str], variables: Mapping[str, str]
) -> SettingsModel:
    """`model` from the variables in `variables` (settings field -> variable name), the timeouts read as seconds.

    Raises ValueError naming every variable that is missing or breaks a rule, never a value."""
    return config.load_settings(model, env, variables, parsers=_SECONDS)
