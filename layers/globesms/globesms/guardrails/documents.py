"""A guardrail document as data: shipped in the layer (`globesms/data/<name>.json`) and replaced by an SSM
parameter when one is named, exactly as the route table is (`routing/route_table.py`).

The shipped file is validated when first read: an invalid file is a deployment error (raised). The parameter is
re-read at most every 5 minutes through Powertools Parameters; an invalid value is refused with a log line naming
every bad field, and the last good document stays in force; after a failed read the document in use is kept for a
minute before the parameter is tried again. Never a 5xx storm for bad data.

A parameter that does not exist is the shipped document (the path names the documents that replace the shipped
ones; the operator writes those they change). A process that has read no good value of a parameter that exists
has no last good document: it does not fall back to the shipped file (no spend limit, every country allowed,
illustrative prices), which would let every new Lambda instance spend past the operator's limit while the
parameter is unreadable or invalid. It raises `DocumentUnavailable` instead: sends are refused
`503 GUARDRAILS_UNAVAILABLE` (the intake leaves its body on the queue) and the parameter is tried again after a
few seconds. (Until 2026-12-06 it fell back to the file.)

Written once here rather than shared with the route table so the route table's module stays as it is.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from globesms.validation import describe

log = logging.getLogger(__name__)

PARAMETER_MAX_AGE_SECONDS = 300
READ_RETRY_SECONDS = 60
UNAVAILABLE_RETRY_SECONDS = 5  # with no good document yet: every send waits for one, so it is tried again soon
#: A fresh read (`current(fresh=True)`) this recent stands for another: a backlog of packs each asking for one would
#: read SSM once per pack, past its account-wide throughput, which the API's and the intake's reads share (a review).
FRESH_ENOUGH_SECONDS = 10


class DocumentUnavailable(RuntimeError):
    """A guardrail document's parameter has never been read good in this process (unreadable, or invalid)."""

    def __init__(self, file_name: str) -> None:
        super().__init__(
            f"the deployment's guardrail settings ({file_name.removesuffix('.json')}) could not be read yet: "
            "nothing is sent without them; try again shortly"
        )


class DocumentError(ValueError):
    """A guardrail document is invalid; the message names every bad field."""


def parse_document[Doc: BaseModel](model: type[Doc], raw: Any, source: str) -> Doc:
    """`raw`: JSON text, or already parsed. Raises DocumentError naming every bad path. JSON numbers are read as
    Decimal: money never goes through float (`99999999999.999999` read as a float was a limit of 100000000000)."""
    try:
        data = json.loads(raw, parse_float=Decimal) if isinstance(raw, str | bytes) else raw
    except ValueError as exc:
        raise DocumentError(f"{source}: not JSON ({exc})") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DocumentError(f"{source}: {describe(exc, default='')}") from None


#: What a fetch gives for a parameter that does not exist: the path names the documents that replace the shipped
#: ones, and a document the operator did not write there is the shipped one (not a failure).
ABSENT: Final = object()


def _fetch_parameter(name: str, *, fresh: bool = False) -> Any:
    """The parameter's text (Powertools' cache, or SSM itself when `fresh`), or ABSENT."""
    from aws_lambda_powertools.utilities import parameters

    try:
        # The text, parsed here (`parse_document`): Powertools' json transform reads numbers as floats.
        return parameters.get_parameter(name, max_age=PARAMETER_MAX_AGE_SECONDS, force_fetch=fresh)
    except parameters.exceptions.GetParameterError as exc:
        cause = exc.__cause__ or exc.__context__
        if getattr(cause, "response", {}).get("Error", {}).get("Code") == "ParameterNotFound":
            return ABSENT
        raise


@dataclass
class OverridableDocument[Doc: BaseModel]:
    """One document: `current(parameter_name)` is the one in force now."""

    model: type[Doc]
    file_name: str
    #: `fetch(name, fresh=...)`: the parameter's text (or ABSENT); `fresh`: past any cache.
    fetch: Callable[..., Any] = _fetch_parameter
    clock: Callable[[], float] = time.monotonic
    _file: Doc | None = field(default=None, init=False, repr=False)
    _raw: Any = field(default=None, init=False, repr=False)
    _override: Doc | None = field(default=None, init=False, repr=False)
    _retry_at: float = field(default=0.0, init=False, repr=False)
    _fresh_at: float | None = field(default=None, init=False, repr=False)  # when a fresh read last gave a good one
    _fresh_failed_at: float | None = field(default=None, init=False, repr=False)  # ... or last failed

    def from_file(self) -> Doc:
        if self._file is None:
            text = resources.files("globesms").joinpath("data", self.file_name).read_text(encoding="utf-8")
            self._file = parse_document(self.model, text, f"globesms/data/{self.file_name}")
        return self._file

    def reset(self) -> None:
        """Forget the parameter's last value (tests)."""
        self._raw, self._override, self._retry_at = None, None, 0.0
        self._fresh_at = self._fresh_failed_at = None

    def current(self, parameter: str, *, fresh: bool = False) -> Doc:
        """The document in force; raises `DocumentUnavailable` while a named parameter has no good value yet.
        `fresh`: read past every cache, and raise `DocumentUnavailable` unless that read gives a good document (no
        last good one instead): a dispatcher confirming a refusal its cached copy would make. A fresh read less than
        `FRESH_ENOUGH_SECONDS` old stands for a new one, a good one and a failed one alike: while SSM throttles, a
        read for every pack would keep it throttling (a review)."""
        if not parameter:
            return self.from_file()
        now = self.clock()
        if fresh and _within(self._fresh_failed_at, now):
            return self._unavailable()
        if fresh and self._override is not None and _within(self._fresh_at, now):
            return self._override
        if now < self._retry_at and not fresh:
            return self._last_good()
        try:
            raw = self.fetch(parameter, fresh=True) if fresh else self._read(parameter)
        except Exception as exc:  # never the text: only the error's class
            self._retry_at = now + (READ_RETRY_SECONDS if self._override else UNAVAILABLE_RETRY_SECONDS)
            log.error(
                "%s parameter unreadable%s",
                self.file_name,
                " past the cache" if fresh else "; the last good document stays in force",
                extra={"parameter": parameter, "error": type(exc).__name__},
            )
            return self._fresh_failed(now) if fresh else self._last_good()
        doc = self._take(raw, parameter, now)
        if doc is None:
            return self._fresh_failed(now) if fresh else self._last_good()
        if fresh:
            self._fresh_at, self._fresh_failed_at = now, None
        return doc

    def _fresh_failed(self, now: float) -> Doc:
        self._fresh_failed_at = now
        return self._unavailable()

    def _take(self, raw: Any, parameter: str, now: float) -> Doc | None:
        """The document `raw` (the parameter's text, or ABSENT) stands for, now in force; None when it is refused."""
        if raw is ABSENT:
            # Known good: the shipped document stands for it, read again after Powertools' cache would have run
            # out (Powertools keeps no answer for a parameter it could not get: every send would read SSM, and a
            # throttled read would refuse sends for a document that was never unavailable).
            self._raw, self._override = ABSENT, self.from_file()
            self._retry_at = now + PARAMETER_MAX_AGE_SECONDS
            return self._override
        if self._override is not None and raw is self._raw:
            return self._override
        try:
            doc = parse_document(self.model, raw, f"SSM parameter {parameter}")
        except DocumentError as exc:
            log.error("%s parameter refused; the last good document stays in force: %s", self.file_name, exc)
            self._raw = raw  # refused once, not parsed again while Powertools returns the same value
            if self._override is None:  # nothing in force: read it again (past the cache) in a few seconds
                self._retry_at = now + UNAVAILABLE_RETRY_SECONDS
            return None
        self._raw, self._override = raw, doc
        return doc

    def _unavailable(self) -> Doc:
        raise DocumentUnavailable(self.file_name)

    def _read(self, parameter: str) -> Any:
        """Through Powertools' cache; past it after an invalid value with no good one in force (the fixed value is
        seen within seconds, not when the cache runs out in five minutes)."""
        return self.fetch(parameter, fresh=self._override is None and self._raw is not None)

    def _last_good(self) -> Doc:
        if self._override is None:
            return self._unavailable()
        return self._override


def _within(fresh_read_at: float | None, now: float) -> bool:
    """Whether a fresh read made at `fresh_read_at` stands for one at `now` (`FRESH_ENOUGH_SECONDS`)."""
    return fresh_read_at is not None and now - fresh_read_at < FRESH_ENOUGH_SECONDS
