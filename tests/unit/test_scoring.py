"""Scored routes: the pure scoring function (routing/scoring.py), the route table's mode, the router reading a
cached snapshot (routing/route_scores.py)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from globesms.models.outbound import MessageType, ProviderName
from globesms.routing.route_scores import ScoreSource
from globesms.routing.route_table import parse_route_table
from globesms.routing.router import Routed, SpecRouter
from globesms.routing.scoring import DEFAULT_POLICY, ScoringPolicy, rank, wilson_lower_bound
from globesms.routing.templates import IdVersion, ProviderTemplates, TextVersion
from globesms.stats.ports import MemoryRouteStats
from globesms.stats.tally import BucketKey, Tally, bucket_of, latency_slot

A, T, H = ProviderName.ALIYUN, ProviderName.TENCENT, ProviderName.HUAWEI
ALL = (A, T, H)
PRICES: dict[ProviderName, Decimal | None] = {A: Decimal("0.038"), T: Decimal("0.0399"), H: Decimal("0.0418")}
IDS = [f"B{n}.{i:05d}" for n in range(20) for i in range(100)]


def seen(delivered: int, total: int, *, latency: float = 5.0) -> Tally:
    tally = Tally(delivered=delivered, undelivered=total - delivered, parts=total)
    tally.latency[latency_slot(latency)] = total
    return tally


def shares(counts: dict[ProviderName, Tally], policy: ScoringPolicy = DEFAULT_POLICY) -> Counter[ProviderName]:
    ranked = rank(ALL, counts, PRICES, policy)
    return Counter(ranked.route_for(i)[0] for i in IDS)


def test_the_better_delivery_rate_wins() -> None:
    ranked = rank(ALL, {A: seen(600, 1000), T: seen(950, 1000), H: seen(940, 1000)}, PRICES)
    assert ranked.order == (T, H, A)


def test_price_breaks_a_tie_in_delivery() -> None:
    ranked = rank(ALL, {A: seen(95, 100), T: seen(95, 100), H: seen(95, 100)}, PRICES)
    assert ranked.order[0] is A  # the cheapest per delivered message


def test_a_provider_without_a_price_is_scored_as_twice_the_dearest_not_as_free() -> None:
    # With no price term it outranked the priced ones that delivered as well, and under a spend limit every
    # recipient sent its way was refused PRICE_UNKNOWN (a review: 95 of 100).
    counts = {A: seen(950, 1000), T: seen(900, 1000), H: seen(1150, 1200)}
    ranked = rank(ALL, counts, {A: Decimal("0.038"), T: Decimal("0.076"), H: None})
    assert ranked.order[0] is A
    unpriced = {s.provider: s for s in ranked.scores}[H]
    assert unpriced.cost_per_delivered is None  # what it reports is what is known
    # Scored as the dearest itself it kept the traffic beside one priced provider (no penalty at all), and beside two
    # priced alike (a penalty inside the hysteresis): twice the dearest (a review of the change).
    alike = {A: seen(950, 1000), T: seen(950, 1000), H: seen(1150, 1200)}
    assert rank((T, H), alike, {T: Decimal("0.0399"), H: None}).order[0] is T
    assert rank(ALL, alike, {A: Decimal("0.0380"), T: Decimal("0.0399"), H: None}).order[0] is not H
    assert rank((A, H), alike, {A: Decimal("0"), H: None}).order[0] is A  # a free provider: no ratio, still a term


def test_a_slow_provider_loses_to_an_equally_good_fast_one() -> None:
    counts = {A: seen(950, 1000, latency=900), T: seen(950, 1000, latency=3), H: seen(950, 1000, latency=3)}
    assert rank(ALL, counts, {p: None for p in ALL}).order[0] is T


def test_too_few_samples_are_not_trusted() -> None:
    ranked = rank(
        ALL, {A: seen(5, 10), T: seen(DEFAULT_POLICY.min_samples - 1, DEFAULT_POLICY.min_samples - 1)}, PRICES
    )
    assert ranked.order == ALL  # nobody has enough: the table's order
    assert all(s.score is None for s in ranked.scores)
    ranked = rank(ALL, {A: seen(85, 100), T: seen(29, 29)}, PRICES)
    assert ranked.order[0] is A  # the only trusted provider, however perfect the other looks


def test_a_provider_surely_failing_ranks_after_the_unscored_ones() -> None:
    """A review's case: Alibaba delivered 0 of 40 and the others had too few outcomes to be scored; Alibaba kept
    94 % of the traffic, the others only the exploration share, too little to ever reach min_samples."""
    counts = {A: seen(0, 40), T: seen(20, 20)}
    ranked = rank(ALL, counts, PRICES)
    assert ranked.order == (T, H, A)
    assert [s.failing for s in ranked.scores] == [True, False, False]
    assert shares(counts)[A] < 0.1 * len(IDS)  # the exploration share at most: its recovery is still noticed
    assert rank(ALL, {A: seen(0, 40), T: seen(950, 1000)}, PRICES).order == (T, H, A)  # after the healthy too


def test_a_failing_provider_is_still_used_when_nothing_else_is_untried() -> None:
    assert rank((A,), {A: seen(0, 40)}, PRICES).order == (A,)
    assert rank(ALL, {A: seen(0, 40), T: seen(30, 40), H: seen(35, 40)}, PRICES).order == (H, T, A)  # by score
    # Not surely under half (its upper bound is over it): scored as before, ahead of the unscored ones.
    assert rank(ALL, {A: seen(500, 1000)}, PRICES).order == (A, T, H)


def test_hysteresis_keeps_the_provider_carrying_the_traffic() -> None:
    # Huawei looks a little better, on far fewer messages: within the band, the incumbent keeps the traffic.
    counts = {A: seen(9500, 10_000), T: seen(97, 100), H: seen(96, 100)}
    assert rank(ALL, counts, PRICES).order[0] is A
    # ... but a provider that falls clearly behind loses it at once.
    counts[A] = seen(8500, 10_000)
    assert rank(ALL, counts, PRICES).order[0] in (T, H)


def test_no_flapping_between_snapshots_that_only_differ_by_noise() -> None:
    chosen = set()
    for t_delivered in range(93, 98):  # the challenger's observed rate wobbling around the incumbent's
        counts = {A: seen(4700, 5000), T: seen(t_delivered, 100), H: seen(95, 100)}
        chosen.add(rank(ALL, counts, PRICES).order[0])
    assert chosen == {A}


def test_exploration_is_a_small_deterministic_share() -> None:
    counts = {A: seen(950, 1000), T: seen(600, 1000), H: seen(600, 1000)}
    first = shares(counts)
    assert first == shares(counts)  # the same snapshot and ids: the same routes
    explored = (first[T] + first[H]) / len(IDS)
    assert 0.04 < explored < 0.08 and first[T] > 0 and first[H] > 0
    none = shares(counts, ScoringPolicy(exploration_share=0.0))
    assert none == Counter({A: len(IDS)})


def test_the_route_lists_every_candidate_once_chosen_first() -> None:
    ranked = rank(ALL, {A: seen(950, 1000), T: seen(900, 1000)}, PRICES)
    for message_id in IDS[:200]:
        route = ranked.route_for(message_id)
        assert sorted(route) == sorted(ALL)
    assert ranked.order == (A, T, H)  # the unscored one last


@pytest.mark.parametrize(("successes", "trials"), [(0, 10), (5, 10), (10, 10), (950, 1000)])
def test_wilson_bound_is_below_the_observed_rate(successes: int, trials: int) -> None:
    assert 0 <= wilson_lower_bound(successes, trials, 1.0) <= successes / trials
    assert wilson_lower_bound(0, 0, 1.0) == 0


# ---- the route table's mode and the router ----

SCORED_SG = parse_route_table(
    {
        "version": 1,
        "default": {"text": [{"provider": "aliyun"}], "template": [{"provider": "tencent"}]},
        "countries": {"SG": {"mode": "score", "template": [{"provider": p} for p in ("aliyun", "tencent", "huawei")]}},
    },
    "test",
)
EVERYWHERE: ProviderTemplates = {
    A: TextVersion(text="Your code is {code}"),
    T: IdVersion(id="1800308", params=["code"]),
    H: IdVersion(id="tplOtp", params=["code"]),
}


def test_the_mode_is_resolved_per_country_and_type() -> None:
    doc = {
        "version": 1,
        "default": {"text": [{"provider": "aliyun"}], "template": [{"provider": "tencent"}, {"provider": "huawei"}]},
        "countries": {"MY": {"types": {"OTP": {"mode": "score"}}}, "SG": {"mode": "score"}},
    }
    routes = parse_route_table(doc, "test")
    assert routes.lookup("MY", "template", MessageType.OTP).scored
    assert not routes.lookup("MY", "template", MessageType.NOTIFY).scored
    assert routes.lookup("SG", "template", MessageType.MKT).scored
    assert not routes.lookup("HK", "template", MessageType.OTP).scored


def test_an_unknown_mode_is_refused_naming_the_path() -> None:
    from globesms.routing.route_table import RouteTableError

    doc = {"version": 1, "default": {"text": [{"provider": "aliyun"}], "template": [{"provider": "tencent"}]}}
    with pytest.raises(RouteTableError, match=r"countries\.SG\.mode"):
        parse_route_table({**doc, "countries": {"SG": {"mode": "fastest"}}}, "test")


def scored_router(source: ScoreSource | None) -> SpecRouter:
    return SpecRouter(SCORED_SG, "template", MessageType.OTP, None, "login", EVERYWHERE, scores=source)


def test_the_router_follows_the_statistics_and_reads_them_once_per_minute() -> None:
    now = datetime(2026, 12, 4, 10, 0, tzinfo=UTC).timestamp()
    store = MemoryRouteStats()
    bucket = bucket_of(now)
    store.add({BucketKey("SG", A, MessageType.OTP, bucket): seen(600, 1000)})
    store.add({BucketKey("SG", T, MessageType.OTP, bucket): seen(960, 1000)})
    store.add({BucketKey("SG", H, MessageType.OTP, bucket): seen(940, 1000)})
    clock = [now]
    source = ScoreSource(store, price_of=lambda p, c, t: PRICES[p], clock=lambda: clock[0])
    firsts: Counter[ProviderName] = Counter()
    for message_id in IDS:
        routed = scored_router(source).route("SG", 65, message_id)
        assert isinstance(routed, Routed)
        firsts[routed.provider] += 1
    assert firsts.most_common(1)[0][0] is T and firsts[T] > 0.9 * len(IDS)
    assert source.reads == 1  # 2,000 recipients, one read within the minute
    clock[0] += 61
    scored_router(source).route("SG", 65, "X.00001")
    assert source.reads == 2


def test_without_statistics_a_scored_route_uses_the_table_order() -> None:
    routed = scored_router(None).route("SG", 65, "B.00001")
    assert routed.route == (A, T, H)  # type: ignore[union-attr]


def test_unreadable_statistics_fall_back_to_the_last_snapshot_or_the_table() -> None:
    class Down(MemoryRouteStats):
        def buckets(self, country: str, since: int, until: int) -> list[tuple[BucketKey, Tally]]:
            raise OSError("throttled")

    source = ScoreSource(Down(), price_of=lambda p, c, t: PRICES[p])
    routed = scored_router(source).route("SG", 65, "B.00001")
    assert routed.route == (A, T, H)  # type: ignore[union-attr]
