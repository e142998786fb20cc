"""The deployed adapters four logic modules fall back on, installed by the AWS wiring (`aws/wiring.py`).

Accept and failover read the template registry's store (`routing/templates.py`), scored routes their statistics
(`routing/route_scores.py`), accept the opt-out list (`consent/screen.py`) and where it holds scheduled sends
(`scheduling/hold.py`): each through a `Hook` it declares under one of the names below, which answers None until
the wiring installs a factory under that name (the stack has no such table or queue, or a test runs the logic
alone). The names meet here, apart from both sides, so that installing a factory imports neither: every handler
imports the wiring, and one that never routes, screens or schedules (the status counts, the scheduler's sweep)
would otherwise import those modules and the models they build, about a fifth of its cold start
(docs/performance.md, figure 2). A name is the only link left untyped; `tests/unit/test_hooks.py` holds the
wiring's names to the hooks the logic declares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

TEMPLATE_STORE = "template_store"
SCORE_SOURCE = "score_source"
OPT_OUT_CHECK = "opt_out_check"
SCHEDULE_DEPS = "schedule_deps"

#: The factory installed under each name (tests replace one with `monkeypatch.setitem`).
installed: dict[str, Callable[[], object]] = {}
#: The names some logic module reads (each `Hook` adds its own).
declared: set[str] = set()


def install(name: str, factory: Callable[[], object]) -> Callable[[], object] | None:
    """Answer the hooks named `name` with `factory` from now on; returns the factory it replaces, if any."""
    previous = installed.get(name)
    installed[name] = factory
    return previous


class Hook[T]:
    """A logic module's fall-back: what the factory installed under `name` answers, None while there is none."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name
        declared.add(name)

    def __call__(self) -> T | None:
        factory = installed.get(self.name)
        return None if factory is None else cast("T | None", factory())
