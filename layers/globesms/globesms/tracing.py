"""The handlers' X-Ray subsegments: Powertools' Tracer, built only in a deployment that asks for it.

Why not Powertools' Tracer as it is: building one imports the X-Ray SDK (about 100 ms of every function's cold start
on this project's `make bench`, the largest single cost there), and it does so even with tracing disabled. Lambda's
own tracing (`Tracing: Active` in template.yaml) needs none of it: Lambda records each invocation's segment
(initialization, invocation, overhead) and passes the trace header on by itself. What the Tracer adds is a
subsegment per traced method and per AWS call (botocore patched), and the cold-start annotation.

So the template parameter `TracerSubsegments` (off by default) sets `POWERTOOLS_TRACE_DISABLED`, Powertools' own
switch, which this module reads when a handler module decorates its functions (its import, i.e. Lambda's init):
- off: the decorators hand the function back unchanged; nothing of the X-Ray SDK is imported;
- on: they are the Tracer's own (`real`), built at the first decoration, with what it records then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from aws_lambda_powertools.shared.functions import strtobool

from globesms.config import environment

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

DISABLED_ENV = "POWERTOOLS_TRACE_DISABLED"

F = TypeVar("F", bound=Callable[..., Any])


def subsegments_on() -> bool:
    """Whether `POWERTOOLS_TRACE_DISABLED` leaves the Tracer on (unset or false: on, as for Powertools itself)."""
    try:
        return not strtobool(environment().get(DISABLED_ENV, "false").strip())
    except ValueError:
        return True  # Powertools reads a value it does not know as "not disabled" too


class LazyTracer:
    """`capture_lambda_handler` and `capture_method` of a Powertools Tracer made with `options`, or no decoration at
    all when tracing is disabled (see the module's docstring)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._tracer: Tracer | None = None

    @property
    def real(self) -> Tracer:
        """The Powertools Tracer (built, and the X-Ray SDK imported, on first use)."""
        if self._tracer is None:
            from aws_lambda_powertools import Tracer

            self._tracer = Tracer(**self._options)
        return self._tracer

    @overload
    def capture_lambda_handler(self, function: F) -> F: ...
    @overload
    def capture_lambda_handler(self, function: None = None, **options: Any) -> Callable[[F], F]: ...
    def capture_lambda_handler(self, function: F | None = None, **options: Any) -> F | Callable[[F], F]:
        return self._decorate("capture_lambda_handler", function, options)

    @overload
    def capture_method(self, function: F) -> F: ...
    @overload
    def capture_method(self, function: None = None, **options: Any) -> Callable[[F], F]: ...
    def capture_method(self, function: F | None = None, **options: Any) -> F | Callable[[F], F]:
        return self._decorate("capture_method", function, options)

    def _decorate(self, how: str, function: F | None, options: dict[str, Any]) -> F | Callable[[F], F]:
        if function is None:  # used as @tracer.capture_method(capture_response=False)
            return lambda later: self._decorate(how, later, options)  # type: ignore[return-value]
        if not subsegments_on():
            return function
        decorated: F = getattr(self.real, how)(function, **options)
        return decorated
