"""The deployed adapters four logic modules fall back on, set by the AWS wiring (`aws/wiring.py`).

Accept and failover read the template registry's store (`routing/templates.py`), scored routes their statistics
(`routing/route_scores.py`), accept the opt-out list (`consent/screen.py`) and where it holds scheduled sends
(`scheduling/hold.py`): each through a hook here, which answers None until the wiring sets it (the stack has no
such table or queue, or a test runs the logic alone). The hooks live apart from both sides, so that setting them
imports neither: every handler imports the wiring, and one that never routes, screens or schedules (the status
counts, the scheduler's sweep) would otherwise import those modules and the models they build, about a fifth of
its cold start (docs/performance.md, figure 2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from globesms.consent.screen import OptOutCheck
    from globesms.ports import TemplateStore
    from globesms.routing.route_scores import ScoreSource
    from globesms.scheduling.hold import ScheduleDeps


def _nothing() -> None:
    return None


class Hook[T]:
    """One process-wide factory: None until something is set."""

    __slots__ = ("_factory",)

    def __init__(self) -> None:
        self._factory: Callable[[], T | None] = _nothing

    def use(self, factory: Callable[[], T | None]) -> Callable[[], T | None]:
        """Read through `factory` from now on; returns the factory it replaces (a test puts it back)."""
        previous, self._factory = self._factory, factory
        return previous

    def __call__(self) -> T | None:
        return self._factory()


template_store: Hook[TemplateStore] = Hook()
score_source: Hook[ScoreSource] = Hook()
opt_out_check: Hook[OptOutCheck] = Hook()
schedule_deps: Hook[ScheduleDeps] = Hook()
