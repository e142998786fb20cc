"""Route statistics: outcomes -> bucket counts (tally), windows and the API's summary (summary), the recording hook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from globesms.guardrails.prices import PriceTableDoc
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.records import MessageRecord
from globesms.stats.ports import MemoryRouteStats
from globesms.stats.record import record_outcomes
from globesms.stats.summary import InvalidWindow, route_stats, snapshot, window_buckets, window_seconds
from globesms.stats.tally import (
    LATENCY_BOUNDS,
    BucketKey,
    Tally,
    bucket_of,
    latency_slot,
    quantile_seconds,
    tally_outcomes,
)

NOW = datetime(2026, 12, 4, 10, 7, 30, tzinfo=UTC)
A, T = ProviderName.ALIYUN, ProviderName.TENCENT
PRICES = PriceTableDoc.model_validate(
    {"version": 1, "currency": "USD", "as_of": "2026-12-01", "prices": {"aliyun": {"SG": {"*": "0.04"}}}}
)


def final(seq: int, status: str, *, provider: str = "aliyun", latency: float = 7.0, **extra: object) -> MessageRecord:
    submitted = NOW - timedelta(seconds=latency)
    return MessageRecord.model_validate(
        {
            "id": f"B.{seq:05d}",
            "batch_id": "B",
            "to": "+6591234567",
            "provider": provider,
            "type": "OTP",
            "status": status,
            "text": "code 1",
            "country": "SG",
            "segments": 1,
            "created_at": "2026-12-04T10:00:00Z",
            "updated_at": "2026-12-04T10:00:00Z",
            "submitted_at": submitted.isoformat(),
            **extra,
        }
    )


def test_a_push_becomes_one_tally_per_bucket_key() -> None:
    records = [final(1, "DELIVERED"), final(2, "DELIVERED", latency=50), final(3, "UNDELIVERED"), final(4, "EXPIRED")]
    records += [final(5, "DELIVERED", provider="tencent", segments=2), final(6, "SUBMITTED")]
    tallies = tally_outcomes(records, NOW)
    bucket = bucket_of(NOW.timestamp())
    assert bucket % 300 == 0 and bucket <= NOW.timestamp() < bucket + 300
    aliyun = tallies[BucketKey("SG", A, MessageType.OTP, bucket)]
    assert (aliyun.delivered, aliyun.undelivered, aliyun.expired, aliyun.parts) == (2, 1, 1, 4)
    assert aliyun.latency[latency_slot(7)] == 3 and aliyun.latency[latency_slot(50)] == 1
    tencent = tallies[BucketKey("SG", T, MessageType.OTP, bucket)]
    assert (tencent.delivered, tencent.parts) == (1, 2)
    assert len(tallies) == 2  # the SUBMITTED one adds nothing


def test_no_receipt_expiry_counts_without_a_latency() -> None:
    expired = final(1, "EXPIRED", error_code="NO_RECEIPT")
    (tally,) = tally_outcomes([expired], NOW).values()
    assert tally.expired == 1 and sum(tally.latency) == 0


@pytest.mark.parametrize(
    ("status", "extra"),
    [
        ("FAILED", {"error_code": "INVALID_REQUEST"}),
        ("FAILED", {"error_code": "UNKNOWN_OUTCOME_EXPIRED"}),
        ("CANCELED", {}),
    ],
)
def test_failed_and_canceled_messages_are_not_counted(status: str, extra: dict[str, str]) -> None:
    """docs/routing-scores.md, "What is not counted": a score ranks how well a provider delivers what it accepts."""
    assert tally_outcomes([final(1, status, **extra)], NOW) == {}


def test_a_record_without_its_country_is_counted_under_its_numbers() -> None:
    tallies = tally_outcomes([final(1, "DELIVERED", country=None, to="+85251234567")], NOW)
    assert [k.country for k in tallies] == ["HK"]
    assert tally_outcomes([final(2, "DELIVERED", country=None, to="+999")], NOW) == {}


def test_record_outcomes_makes_one_update_per_key_and_survives_a_failing_store() -> None:
    store = MemoryRouteStats()
    assert record_outcomes(store, [final(i, "DELIVERED") for i in range(50)], NOW)
    assert store.updates == 1
    assert store.rows[BucketKey("SG", A, MessageType.OTP, bucket_of(NOW.timestamp()))].delivered == 50

    class Broken(MemoryRouteStats):
        def add(self, tallies: object) -> None:
            raise OSError("down")

    assert record_outcomes(Broken(), [final(1, "DELIVERED")], NOW) is False
    assert record_outcomes(None, [final(1, "DELIVERED")], NOW)


@pytest.mark.parametrize(("latencies", "median", "p95"), [([1] * 10, 2, 2), ([3] * 50 + [700] * 50, 5, 1800)])
def test_quantiles_are_read_from_the_histogram(latencies: list[int], median: int, p95: int) -> None:
    histogram = [0] * (len(LATENCY_BOUNDS) + 1)
    for seconds in latencies:
        histogram[latency_slot(seconds)] += 1
    assert quantile_seconds(histogram, 0.5) == median
    assert quantile_seconds(histogram, 0.95) == p95
    assert quantile_seconds([0] * len(histogram), 0.5) is None


def test_slower_than_the_last_bound_reports_the_last_bound() -> None:
    histogram = [0] * (len(LATENCY_BOUNDS) + 1)
    histogram[latency_slot(10_000)] = 3
    assert quantile_seconds(histogram, 0.95) == LATENCY_BOUNDS[-1]


@pytest.mark.parametrize(
    ("text", "seconds"), [("5m", 300), ("15m", 900), ("1h", 3600), ("24h", 86_400), ("1d", 86_400)]
)
def test_windows(text: str, seconds: int) -> None:
    assert window_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "4m", "25h", "2d", "0h", "1w", "-1h", "1.5h", "01h", "1H"])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(InvalidWindow, match="from 5m to 24h"):
        window_seconds(text)


def test_a_window_is_the_current_bucket_and_the_ones_before_it() -> None:
    first, last = window_buckets(NOW.timestamp(), 3600)
    assert last == bucket_of(NOW.timestamp()) and (last - first) // 300 == 11


def test_route_stats_answers_per_provider_within_the_window() -> None:
    store = MemoryRouteStats()
    bucket = bucket_of(NOW.timestamp())
    store.add({BucketKey("SG", A, MessageType.OTP, bucket): Tally(delivered=90, undelivered=8, expired=2, parts=100)})
    store.rows[BucketKey("SG", A, MessageType.OTP, bucket)].latency[latency_slot(4)] = 90
    store.add({BucketKey("SG", A, MessageType.NOTIFY, bucket - 300): Tally(delivered=10, parts=10)})
    store.add({BucketKey("SG", T, MessageType.OTP, bucket - 3600): Tally(delivered=5)})  # outside a 1h window
    store.add({BucketKey("MY", A, MessageType.OTP, bucket): Tally(delivered=5)})  # another country
    view = route_stats(store, country="SG", message_type=None, window="1h", seconds=3600, now=NOW, prices=PRICES)
    (aliyun,) = view.providers
    assert (aliyun.sent, aliyun.delivered, aliyun.delivered_rate) == (110, 100, round(100 / 110, 4))
    assert aliyun.median_receipt_seconds == 5 and aliyun.p95_receipt_seconds == 5
    assert Decimal(aliyun.cost_per_delivered or "x") == Decimal("0.04") * 110 / 100
    only_otp = route_stats(
        store, country="SG", message_type=MessageType.OTP, window="1h", seconds=3600, now=NOW, prices=PRICES
    )
    assert only_otp.providers[0].sent == 100
    assert snapshot(store, "SG", NOW.timestamp(), 3600).of(T, MessageType.OTP).outcomes == 0


def test_a_provider_without_a_price_has_no_cost() -> None:
    store = MemoryRouteStats()
    store.add({BucketKey("SG", T, MessageType.OTP, bucket_of(NOW.timestamp())): Tally(delivered=1, parts=1)})
    view = route_stats(store, country="SG", message_type=None, window="5m", seconds=300, now=NOW, prices=PRICES)
    assert view.providers[0].cost_per_delivered is None and view.providers[0].delivered_rate == 1.0
