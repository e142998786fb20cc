"""Where scored routes read their statistics: one country's stats snapshot, cached for a minute per process.

The accept path routes every recipient of a request from the cache: a request adds at most one read per country
with a scored route (a Query of that country's recent buckets), and none while the cache is fresh. The handlers that
route read the source `aws/wiring.py` installs (`globesms.hooks`) when the stack has the statistics table; without
one, or while the statistics cannot be read, scored routes fall back to the table's order (routing never fails for
want of statistics).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from globesms import hooks
from globesms.guardrails.prices import current_prices
from globesms.models.outbound import MessageType, ProviderName
from globesms.stats.ports import RouteStatsStore
from globesms.stats.summary import StatsSnapshot, snapshot

log = logging.getLogger(__name__)

SCORING_WINDOW_SECONDS: Final = 900  # the current 5-minute bucket and the two before it
CACHE_SECONDS: Final = 60.0

PriceOf = Callable[[ProviderName, str, MessageType], Decimal | None]


def _listed_price(provider: ProviderName, country: str, message_type: MessageType) -> Decimal | None:
    return current_prices().price(provider, country, message_type)


@dataclass
class ScoreSource:
    store: RouteStatsStore
    price_of: PriceOf = _listed_price
    clock: Callable[[], float] = time.time
    max_age: float = CACHE_SECONDS
    window_seconds: int = SCORING_WINDOW_SECONDS
    reads: int = 0  # store reads made (the cache's misses)
    _cached: dict[str, tuple[float, StatsSnapshot | None]] = field(default_factory=dict)

    def snapshot(self, country: str) -> StatsSnapshot | None:
        now = self.clock()
        hit = self._cached.get(country)
        if hit is not None and now - hit[0] < self.max_age:
            return hit[1]
        self.reads += 1
        try:
            found: StatsSnapshot | None = snapshot(self.store, country, now, self.window_seconds)
        except Exception as exc:  # statistics are advisory: route with the last snapshot, or the table's order
            log.warning("route statistics unreadable", extra={"country": country, "error": type(exc).__name__})
            found = hit[1] if hit is not None else None
        self._cached[country] = (now, found)
        return found


#: How the routers of this process find their source (its answer None: scored routes use the table's order).
_deployed: hooks.Hook[ScoreSource] = hooks.Hook(hooks.SCORE_SOURCE)


def current() -> ScoreSource | None:
    return _deployed()
