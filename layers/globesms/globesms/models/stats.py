"""GET /v1/stats/routes: what the route statistics answer."""

from __future__ import annotations

from pydantic import Field

from globesms.models.base import Model
from globesms.models.outbound import MessageType, ProviderName


class ProviderRouteStats(Model):
    provider: ProviderName
    sent: int = Field(
        description="messages that reached a final outcome in the window (delivered + undelivered + expired)"
    )
    delivered: int
    undelivered: int = Field(description="UNDELIVERED or REJECTED by the provider's receipt")
    expired: int = Field(description="EXPIRED by the receipt, or by the receipt deadline (NO_RECEIPT)")
    delivered_rate: float | None = Field(description="delivered / sent; null when nothing was sent")
    median_receipt_seconds: int | None = Field(
        description="receipt latency (final receipt - SUBMITTED), median: the bound of its histogram slot"
    )
    p95_receipt_seconds: int | None = Field(description="as median_receipt_seconds, the 95th percentile")
    cost_per_delivered: str | None = Field(
        description="estimated: the price table's price x SMS parts sent / delivered, a decimal string in "
        "`currency`; null when nothing was delivered or the price table has no price"
    )


class RouteStatsView(Model):
    country: str
    type: MessageType | None = Field(description="the message type counted; null: all types")
    window: str
    since: str = Field(description="start of the first 5-minute bucket counted (ISO-8601 UTC)")
    until: str
    currency: str
    providers: list[ProviderRouteStats]
