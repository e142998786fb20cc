"""Python's cyclic garbage collector, paused around bulk work that makes no garbage cycles.

Why: a 10,000-recipient accept builds some fifty objects per recipient (its record, the record's DynamoDB item,
its pack and answer entries), all alive until the accept answers. The collector walks the young objects every
2,000 allocations, and the older generations as these age into them: it frees nothing there (none of them is in a
cycle: reference counting frees each as its last use ends), and it cost 7-8% of the accept's CPU (bench figure 3,
with the collector paused and not). While it is paused, reference counting still frees everything that is not in
a cycle; a cycle made meanwhile is freed by the first collection after.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable


def paused_during[**P, R](work: Callable[P, R]) -> Callable[P, R]:
    """`work` with the collector paused while it runs, then as it was. Already paused (by a caller, or another
    thread's bulk work in a process that runs several at once): left as it is, so the collector is never left off
    by this: only the call that paused it turns it back on."""

    @functools.wraps(work)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        if not gc.isenabled():
            return work(*args, **kwargs)
        gc.disable()
        try:
            return work(*args, **kwargs)
        finally:
            gc.enable()

    return paused
