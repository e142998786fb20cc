"""A pack a cancel stopped: nothing of it is sent, and every recipient of it ends CANCELED.

A cancel takes a pack's claim before any dispatcher does (or the quiet-hours hold its recipients wait in:
`holds.py`), then moves its recipients to CANCELED one conditional write each. A dispatcher receiving the pack
afterwards finishes what the cancel may not have (it was interrupted between its writes), so a cancel that answered
always ends with its recipients final.
"""

from __future__ import annotations

from datetime import datetime

from globesms.dispatch.deps import DispatchDeps, Recorders
from globesms.dispatch.summary import DispatchSummary
from globesms.domain.status import Status
from globesms.models.packs import DispatchPack
from globesms.scheduling.canceled import settle_canceled


def finish_cancel(pack: DispatchPack, deps: DispatchDeps | Recorders, *, now: datetime) -> DispatchSummary:
    """Nothing is sent. The pack's recipients the cancel did not move yet are moved to CANCELED here."""
    moved, others = deps.store.cancel_unsent([r.id for r in pack.recipients], now=now)
    # With those an earlier delivery moved before it failed (the moves are one write each): their events were to be
    # queued after every move, and a repeat of either is harmless (stable ids, a give-back once).
    earlier = [i for i, status in others.items() if status == Status.CANCELED]
    settle_canceled(deps.webhooks, deps.spend, [*moved, *deps.store.get_messages(earlier).values()], now)
    return DispatchSummary(submitted=0, failed=0, unknown=0, skipped=len(pack.recipients))
