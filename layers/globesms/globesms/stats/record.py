"""Adding one push's (or one reconcile run's) final outcomes to the route statistics."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from globesms.models.records import MessageRecord
from globesms.stats.ports import RouteStatsStore
from globesms.stats.tally import tally_outcomes

log = logging.getLogger(__name__)


def record_outcomes(store: RouteStatsStore | None, finals: Sequence[MessageRecord], now: datetime) -> bool:
    """One update per (country, provider, type, bucket) of these messages. False when the update failed: the
    statistics are estimates for routing and reporting, so a failed update is logged and counted by the caller,
    never a reason to fail the push (the statuses are written; a push answered with an error would come again as
    duplicates, which count nothing)."""
    if store is None or not finals:
        return True
    try:
        tallies = tally_outcomes(finals, now)
        if tallies:
            store.add(tallies)
    except Exception as exc:
        log.warning("route statistics not updated", extra={"records": len(finals), "error": type(exc).__name__})
        return False
    return True
