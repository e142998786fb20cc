"""Provider settings from GLOBESMS_* environment variables, read the same way for every provider.

- A variable that is unset, empty or only whitespace is absent: the settings model's default applies. Values are
  used stripped (a secret pasted with a trailing newline would otherwise sign "correctly" and be refused).
- A required variable (its settings field has no default) that is absent is an error naming it.
- Secrets (the settings fields typed `SecretStr`) are wrapped before validation, so not even pydantic's error
  details hold them in clear.
- `GLOBESMS_HTTP_CONNECT_TIMEOUT` / `GLOBESMS_HTTP_READ_TIMEOUT` are positive, finite seconds (`2`, `0.5`).
- Every problem is reported in one `ValueError` that names the variable and the rule it breaks, never its value
  (some values are secrets; the rule is enough to fix it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final, TypeVar, get_args

from pydantic import BaseModel, SecretStr, ValidationError

CONNECT_TIMEOUT_VARIABLE: Final = "GLOBESMS_HTTP_CONNECT_TIMEOUT"
READ_TIMEOUT_VARIABLE: Final = "GLOBESMS_HTTP_READ_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT: Final = 3.0
DEFAULT_READ_TIMEOUT: Final = 10.0
#: Settings field -> variable, for the two timeouts every provider's settings share.
HTTP_TIMEOUT_VARIABLES: Final[Mapping[str, str]] = {
    "connect_timeout": CONNECT_TIMEOUT_VARIABLE,
    "read_timeout": READ_TIMEOUT_VARIABLE,
}
_SECONDS_VARIABLES = frozenset(HTTP_TIMEOUT_VARIABLES.values())

SettingsModel = TypeVar("SettingsModel", bound=BaseModel)


def optional(env: Mapping[str, str], name: str) -> str | None:
    """The stripped value of `name`, or None when it is unset or blank."""
    value = env.get(name, "").strip()
    return value or None


def _seconds(name: str, raw: str) -> float:
    """A duration in seconds: positive and finite (`inf` would mean no timeout at all)."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of seconds")
    return value


def load_settings(model: type[SettingsModel], env: Mapping[str, str], variables: Mapping[str, str]) -> SettingsModel:
    """`model` from the variables in `variables` (settings field -> variable name).

    Raises ValueError naming every variable that is missing or breaks a rule (the model's own validation
    included), with pydantic's reason but never a value."""
    fields = model.model_fields
    values: dict[str, object] = {}
    problems: list[str] = []
    for field, variable in variables.items():
        raw = optional(env, variable)
        if raw is None:
            if fields[field].is_required():
                problems.append(f"{variable} is not set")
            continue
        if variable in _SECONDS_VARIABLES:
            try:
                values[field] = _seconds(variable, raw)
            except ValueError as exc:
                problems.append(str(exc))
        else:
            values[field] = SecretStr(raw) if _is_secret(fields[field].annotation) else raw
    if problems:
        raise ValueError("; ".join(problems))
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        details = exc.errors(include_input=False, include_url=False, include_context=False)
        # `from None`: the ValidationError (which may hold inputs) must not ride along in a traceback.
        raise ValueError("; ".join(_describe(d["loc"], d["msg"], variables) for d in details)) from None


def _is_secret(annotation: object) -> bool:
    """`SecretStr`, or `SecretStr | None`."""
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _describe(location: tuple[int | str, ...], reason: str, variables: Mapping[str, str]) -> str:
    field = location[0] if location else None
    where = variables.get(field, field) if isinstance(field, str) else "settings"
    return f"{where}: {reason}"
