"""Lambda SnapStart hooks: nothing unique or expiring is carried from the snapshot into the environments restored
from it (docs/performance.md, "SnapStart").

With SnapStart on (the template's `SnapStart` parameter), Lambda runs a function's init once, snapshots the
environment and resumes every new environment from that one snapshot. Whatever init left in memory is then shared
by all of them: the `random` module's state (the same jitter sequence in every environment), boto3 clients with
their open connections and the credentials they resolved (which expire), the Powertools parameter providers with
their cached secrets and their own clients, the adapters `wiring` caches around those clients, and any other cache
a handler names (the idempotency persistence layer holds a client). `register` hooks `forget_process_state` into
the runtime's `snapshot_restore_py` (before the snapshot: no open connection goes into it; after each restore:
random is re-seeded and everything is built again on first use, with the restored environment's credentials).

Ids need nothing here: `domain.ids` draws `os.urandom` at each call, which Lambda keeps unique after a restore; no
module keeps a clock reading from init. Settings stay: they come from the function's environment, the same before
and after.

`snapshot_restore_py` ships with Lambda's Python runtimes (3.12 and later); where it is absent (tests, the local
stack, `sam local`) `register` does nothing and says so.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from globesms.aws import clients, wiring

_extra: list[Callable[[], None]] = []


def forget_process_state() -> None:
    """Drop what init may have built that must not outlive a snapshot, and re-seed `random` from the OS."""
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    random.seed()  # from os.urandom: each restored environment draws its own sequence
    clients.reset()  # boto3 clients: their connection pools and resolved credentials
    wiring.reset()  # adapters holding those clients, and the template cache
    DEFAULT_PROVIDERS.clear()  # Powertools secrets/SSM providers: cached values and their clients
    for forget in _extra:
        forget()


def register(*also_forget: Callable[[], None], runtime: Any = None) -> bool:
    """Hook `forget_process_state` (and `also_forget`, a handler's own caches) before the snapshot and after each
    restore. `runtime`: the hooks module (default: the runtime's `snapshot_restore_py`). Returns whether the hooks
    were registered (False where the module is absent: no SnapStart there)."""
    for forget in also_forget:
        if forget not in _extra:
            _extra.append(forget)
    if runtime is None:
        try:
            import snapshot_restore_py as runtime  # type: ignore[import-not-found,no-redef]  # Lambda's runtime
        except ImportError:
            return False
    runtime.register_before_snapshot(forget_process_state)
    runtime.register_after_restore(forget_process_state)
    return True
