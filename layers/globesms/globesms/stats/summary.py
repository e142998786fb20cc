"""Summing buckets over a window: the answer of GET /v1/stats/routes and the snapshot the scored router reads."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

from globesms.domain.clock import iso
from globesms.guardrails.prices import PriceTableDoc, money
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.stats import ProviderRouteStats, RouteStatsView
from globesms.stats.ports import RouteStatsStore
from globesms.stats.tally import BUCKET_SECONDS, BucketKey, Tally, bucket_of, quantile_seconds

WINDOW_PATTERN: Final = re.compile(r"^([1-9][0-9]{0,4})([mhd])$")
WINDOW_RULE: Final = "a duration like 15m, 1h or 1d, from 5m to 24h"
MIN_WINDOW_SECONDS: Final = BUCKET_SECONDS
#: A day of 5-minute buckets is at most 288 x providers x types rows to read; the buckets are kept 14 days, but a
#: longer window would make one API call read thousands of items.
MAX_WINDOW_SECONDS: Final = 86_400
_UNIT_SECONDS: Final = {"m": 60, "h": 3600, "d": 86_400}


class InvalidWindow(ValueError):
    pass


def window_seconds(text: str) -> int:
    """`15m`, `1h`, `1d` -> seconds; raises InvalidWindow naming the rule."""
    found = WINDOW_PATTERN.fullmatch(text)
    if found is None:
        raise InvalidWindow(WINDOW_RULE)
    seconds = int(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    if not MIN_WINDOW_SECONDS <= seconds <= MAX_WINDOW_SECONDS:
        raise InvalidWindow(WINDOW_RULE)
    return seconds


def window_buckets(now_epoch: float, seconds: int) -> tuple[int, int]:
    """First and last bucket start of the window ending now: the current (partial) bucket and the ones before it,
    `seconds` worth in all."""
    last = bucket_of(now_epoch)
    return last - (seconds // BUCKET_SECONDS - 1) * BUCKET_SECONDS, last


def totals(rows: Iterable[tuple[BucketKey, Tally]]) -> dict[tuple[ProviderName, MessageType], Tally]:
    """The window's counts by (provider, type)."""
    summed: dict[tuple[ProviderName, MessageType], Tally] = {}
    for key, tally in rows:
        summed.setdefault((key.provider, key.message_type), Tally()).add(tally)
    return summed


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """One country's counts over the scoring window, by (provider, type): what a scored route is chosen from."""

    country: str
    counts: dict[tuple[ProviderName, MessageType], Tally]

    def of(self, provider: ProviderName, message_type: MessageType) -> Tally:
        return self.counts.get((provider, message_type)) or Tally()


def snapshot(store: RouteStatsStore, country: str, now_epoch: float, seconds: int) -> StatsSnapshot:
    since, until = window_buckets(now_epoch, seconds)
    return StatsSnapshot(country, totals(store.buckets(country, since, until)))


def route_stats(
    store: RouteStatsStore,
    *,
    country: str,
    message_type: MessageType | None,
    window: str,
    seconds: int,
    now: datetime,
    prices: PriceTableDoc,
) -> RouteStatsView:
    since, until = window_buckets(now.timestamp(), seconds)
    by_provider: dict[ProviderName, Tally] = {}
    cost: dict[ProviderName, Decimal | None] = {}
    for (provider, kind), tally in sorted(totals(store.buckets(country, since, until)).items()):
        if message_type is not None and kind is not message_type:
            continue
        by_provider.setdefault(provider, Tally()).add(tally)
        price = prices.price(provider, country, kind)
        known = cost.get(provider, Decimal(0))
        cost[provider] = None if price is None or known is None else known + price * tally.parts
    return RouteStatsView(
        country=country,
        type=message_type,
        window=window,
        since=iso(datetime.fromtimestamp(since, UTC)),
        until=iso(now),
        currency=prices.currency,
        providers=[_provider_view(p, t, cost.get(p)) for p, t in sorted(by_provider.items())],
    )


def _provider_view(provider: ProviderName, tally: Tally, cost: Decimal | None) -> ProviderRouteStats:
    sent = tally.outcomes
    return ProviderRouteStats(
        provider=provider,
        sent=sent,
        delivered=tally.delivered,
        undelivered=tally.undelivered,
        expired=tally.expired,
        delivered_rate=round(tally.delivered / sent, 4) if sent else None,
        median_receipt_seconds=quantile_seconds(tally.latency, 0.5),
        p95_receipt_seconds=quantile_seconds(tally.latency, 0.95),
        cost_per_delivered=money(cost / tally.delivered) if cost is not None and tally.delivered else None,
    )


SnapshotReader = Callable[[str], StatsSnapshot | None]
