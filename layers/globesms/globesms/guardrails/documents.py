"""A guardrail document as data: shipped in the layer (`globesms/data/<name>.json`) and replaced by an SSM
parameter when one is named, exactly as the route table is (`routing/route_table.py`).

The shipped file is validated when first read: an invalid file is a deployment error (raised). The parameter is
re-read at most every 5 minutes through Powertools Parameters; an invalid value is refused with a log line naming
every bad field, and the last good document (else the file's) stays in force; after a failed read the document in
use is kept for a minute before the parameter is tried again. Never a 5xx storm for bad data.

Written once here rather than shared with the route table so the route table's module stays as it is.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from pydantic import BaseModel, ValidationError

from globesms.validation import describe

log = logging.getLogger(__name__)

PARAMETER_MAX_AGE_SECONDS = 300
READ_RETRY_SECONDS = 60


class DocumentError(ValueError):
    """A guardrail document is invalid; the message names every bad field."""


def parse_document[Doc: BaseModel](model: type[Doc], raw: Any, source: str) -> Doc:
    """`raw`: JSON text, or already parsed. Raises DocumentError naming every bad path."""
    try:
        data = json.loads(raw) if isinstance(raw, str | bytes) else raw
    except ValueError as exc:
        raise DocumentError(f"{source}: not JSON ({exc})") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DocumentError(f"{source}: {describe(exc, default='')}") from None


def _fetch_parameter(name: str) -> Any:
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_parameter(name, transform="json", max_age=PARAMETER_MAX_AGE_SECONDS)


@dataclass
class OverridableDocument[Doc: BaseModel]:
    """One document: `current(parameter_name)` is the one in force now."""

    model: type[Doc]
    file_name: str
    fetch: Callable[[str], Any] = _fetch_parameter
    clock: Callable[[], float] = time.monotonic
    _file: Doc | None = field(default=None, init=False, repr=False)
    _raw: Any = field(default=None, init=False, repr=False)
    _override: Doc | None = field(default=None, init=False, repr=False)
    _retry_at: float = field(default=0.0, init=False, repr=False)

    def from_file(self) -> Doc:
        if self._file is None:
            text = resources.files("globesms").joinpath("data", self.file_name).read_text(encoding="utf-8")
            self._file = parse_document(self.model, text, f"globesms/data/{self.file_name}")
        return self._file

    def reset(self) -> None:
        """Forget the parameter's last value (tests)."""
        self._raw, self._override, self._retry_at = None, None, 0.0

    def current(self, parameter: str) -> Doc:
        if not parameter:
            return self.from_file()
        now = self.clock()
        if now < self._retry_at:
            return self._override or self.from_file()
        try:
            raw = self.fetch(parameter)
        except Exception as exc:  # never the text: only the error's class
            self._retry_at = now + READ_RETRY_SECONDS
            log.error(
                "%s parameter unreadable; the last good document stays in force",
                self.file_name,
                extra={"parameter": parameter, "error": type(exc).__name__},
            )
            return self._override or self.from_file()
        if self._override is not None and raw is self._raw:
            return self._override
        try:
            doc = parse_document(self.model, raw, f"SSM parameter {parameter}")
        except DocumentError as exc:
            log.error("%s parameter refused; the last good document stays in force: %s", self.file_name, exc)
            self._raw = raw  # refused once, not parsed again while Powertools returns the same value
            return self._override or self.from_file()
        self._raw, self._override = raw, doc
        return doc
