"""Figure "routing": scored routing in a simulation where one of three providers degrades halfway.

One country (SG), one message type (OTP), a registered template all three providers carry, the route mode `score`.
Messages arrive at a steady rate for two simulated hours; every provider delivers 95 % of them until the halfway
mark, when the provider carrying the traffic (the cheapest, Alibaba) drops to 60 %. What runs is the real thing,
on a simulated clock: each request is routed by `routing.router.SpecRouter` reading the statistics through
`routing.route_scores.ScoreSource` (its 60-second cache) and `routing.scoring`; receipts come back after 5-40
simulated seconds and are pushed every 10 seconds per provider, each push recorded by `stats.record.record_outcomes`
(one update per bucket key) into the statistics store (in memory: the DynamoDB adapter is moto-tested apart). Whether
a message is delivered is drawn once per message (one uniform number, seeded) and compared with the delivery rate of
the provider it went to at that minute: the same draws decide the fixed routes the result is compared with.

- `routing.minutes_to_move`: simulated minutes from the degradation until at least 90 % of the traffic (a minute's
  messages) goes to the other providers, and stays there. Goal: within 10 minutes (ratio = minutes / 10 <= 1).
- `routing.delivery_vs_hindsight`: the delivery rate achieved over the whole run against the best fixed route in
  hindsight (every message through one provider, the best of the three), ratio >= 0.97.
"""

from __future__ import annotations

import random
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from itertools import pairwise

from bench.figures import Figure
from globesms.domain.clock import iso
from globesms.guardrails.prices import PriceTableDoc
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.records import MessageRecord
from globesms.routing.route_scores import ScoreSource
from globesms.routing.route_table import parse_route_table
from globesms.routing.router import Routed, SpecRouter
from globesms.routing.templates import IdVersion, TextVersion
from globesms.stats.ports import MemoryRouteStats
from globesms.stats.record import record_outcomes

A, T, H = ProviderName.ALIYUN, ProviderName.TENCENT, ProviderName.HUAWEI
COUNTRY, COUNTRY_CODE = "SG", 65
MINUTES = 120
QUICK_MINUTES = 60
MESSAGES_PER_MINUTE = 200
REQUEST_SIZE = 10  # recipients per request (a router per request, as accept builds them)
HEALTHY, DEGRADED = 0.95, 0.60
PUSH_EVERY_SECONDS = 10
MOVED_SHARE = 0.90
GOAL_MINUTES = 10.0
GOAL_HINDSIGHT = 0.97
START = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
SEED = 12

ROUTES = parse_route_table(
    {
        "version": 1,
        "default": {"text": [{"provider": "aliyun"}], "template": [{"provider": "tencent"}]},
        "countries": {
            COUNTRY: {"mode": "score", "template": [{"provider": p} for p in ("aliyun", "tencent", "huawei")]}
        },
    },
    "bench",
)
REGISTERED = {
    A: TextVersion(text="Your code is {code}"),
    T: IdVersion(id="1800308", params=["code"]),
    H: IdVersion(id="tplOtp", params=["code"]),
}


def delivery_rate(provider: ProviderName, minute: int, degrade_at: int) -> float:
    return DEGRADED if provider is A and minute >= degrade_at else HEALTHY


def shipped_prices() -> PriceTableDoc:
    text = resources.files("globesms").joinpath("data", "prices.json").read_text(encoding="utf-8")
    return PriceTableDoc.model_validate_json(text)


@dataclass
class Run:
    minutes: int
    degrade_at: int
    store: MemoryRouteStats = field(default_factory=MemoryRouteStats)
    now: float = START.timestamp()
    by_minute: dict[int, Counter[ProviderName]] = field(default_factory=lambda: defaultdict(Counter))
    delivered: int = 0
    sent: int = 0
    fixed_delivered: Counter[ProviderName] = field(default_factory=Counter)
    pending: dict[int, list[MessageRecord]] = field(default_factory=lambda: defaultdict(list))  # by push second
    pushes: int = 0


def simulate(minutes: int) -> tuple[Run, ScoreSource]:
    run = Run(minutes, degrade_at=minutes // 2)
    prices = shipped_prices()
    source = ScoreSource(run.store, price_of=prices.price, clock=lambda: run.now)
    rng = random.Random(SEED)
    per_second = MESSAGES_PER_MINUTE / 60
    owed = 0.0
    seq = 0
    for second in range(minutes * 60):
        run.now = START.timestamp() + second
        _push_due(run, second)
        owed += per_second
        while owed >= REQUEST_SIZE:  # a request of REQUEST_SIZE recipients, routed as accept routes it
            owed -= REQUEST_SIZE
            router = SpecRouter(ROUTES, "template", MessageType.OTP, None, "otp", REGISTERED, scores=source)
            for _ in range(REQUEST_SIZE):
                _send(run, router, f"SIM{seq // 1000:08d}.{seq % 1000:05d}", second, rng)
                seq += 1
    return run, source


def _send(run: Run, router: SpecRouter, message_id: str, second: int, rng: random.Random) -> None:
    routed = router.route(COUNTRY, COUNTRY_CODE, message_id)
    assert isinstance(routed, Routed)
    minute = second // 60
    draw = rng.random()  # one draw per message: it decides this route and every fixed route alike
    latency = rng.uniform(5, 40)
    for provider in (A, T, H):
        run.fixed_delivered[provider] += draw < delivery_rate(provider, minute, run.degrade_at)
    delivered = draw < delivery_rate(routed.provider, minute, run.degrade_at)
    run.sent += 1
    run.delivered += delivered
    run.by_minute[minute][routed.provider] += 1
    submitted = START + timedelta(seconds=second)
    record = MessageRecord(
        id=message_id,
        batch_id=message_id.split(".")[0],
        to="+6591234567",
        provider=routed.provider,
        type=MessageType.OTP,
        status="DELIVERED" if delivered else "UNDELIVERED",
        template_id="otp",
        country=COUNTRY,
        segments=1,
        created_at=iso(submitted),
        updated_at=iso(submitted),
        submitted_at=iso(submitted),
    )
    due = int(second + latency)
    run.pending[due - due % PUSH_EVERY_SECONDS + PUSH_EVERY_SECONDS].append(record)


def _push_due(run: Run, second: int) -> None:
    records = run.pending.pop(second, None)
    if not records:
        return
    now = START + timedelta(seconds=second)
    for provider in (A, T, H):  # each provider pushes its own receipts
        finals = [r for r in records if r.provider is provider]
        if finals:
            record_outcomes(run.store, finals, now)
            run.pushes += 1


def minutes_to_move(run: Run) -> float:
    """Minutes after the degradation until the first minute from which >= 90 % of every minute's messages avoid the
    degraded provider (the run's length when that never happens)."""
    moved_from = None
    for minute in range(run.degrade_at, run.minutes):
        counts = run.by_minute[minute]
        moved = 1 - counts[A] / max(1, sum(counts.values()))
        if moved < MOVED_SHARE:
            moved_from = None
        elif moved_from is None:
            moved_from = minute
    return float(run.minutes - run.degrade_at) if moved_from is None else float(moved_from - run.degrade_at + 1)


def majority_changes(run: Run) -> int:
    """How often the provider carrying most of a minute's traffic changed (flapping shows here)."""
    leaders = [run.by_minute[m].most_common(1)[0][0] for m in range(run.minutes) if run.by_minute[m]]
    return sum(1 for a, b in pairwise(leaders) if a is not b)


def measure(quick: bool) -> list[Figure]:
    minutes = QUICK_MINUTES if quick else MINUTES
    run, source = simulate(minutes)
    moved = minutes_to_move(run)
    achieved = run.delivered / run.sent
    best, best_delivered = max(run.fixed_delivered.items(), key=lambda item: item[1])
    hindsight = best_delivered / run.sent
    detail: dict[str, object] = {
        "simulated_minutes": minutes,
        "degraded_at_minute": run.degrade_at,
        "messages": run.sent,
        "delivery_rates": {"healthy": HEALTHY, "degraded": DEGRADED, "degraded_provider": A.value},
        "fixed_route_delivery": {p.value: round(n / run.sent, 4) for p, n in sorted(run.fixed_delivered.items())},
        "traffic_share_before": _shares(run, range(0, run.degrade_at)),
        "traffic_share_last_10_minutes": _shares(run, range(minutes - 10, minutes)),
        "majority_provider_changes": majority_changes(run),
        "receipt_pushes": run.pushes,
        "stats_updates": run.store.updates,
        "stats_reads": source.reads,
        "how": "SpecRouter (route mode score) -> ScoreSource (60 s cache) -> scoring.rank; receipts pushed every "
        f"{PUSH_EVERY_SECONDS} s -> stats.record.record_outcomes; {MESSAGES_PER_MINUTE} messages/minute in requests "
        f"of {REQUEST_SIZE}; seeded draws",
    }
    return [
        Figure.at_most(
            id="routing.minutes_to_move",
            title="Scored routing: minutes until >= 90 % of traffic left a provider that fell from 95 % to 60 %",
            value=moved,
            unit="simulated minutes",
            limit=GOAL_MINUTES,
            goal="<= 10 minutes",
            detail=detail,
        ),
        Figure(
            id="routing.delivery_vs_hindsight",
            title="Scored routing: delivery rate against the best fixed route in hindsight",
            value=round(achieved, 4),
            unit="delivered share",
            reference=round(hindsight, 4),
            reference_label=f"fixed route {best.value}",
            ratio=achieved / hindsight,
            goal=">= 97 % of hindsight-best",
            goal_op=">=",
            goal_value=GOAL_HINDSIGHT,
            detail={"best_fixed_route": best.value, "simulated_minutes": minutes},
        ),
    ]


def _shares(run: Run, minutes: range) -> dict[str, float]:
    total: Counter[ProviderName] = Counter()
    for minute in minutes:
        total.update(run.by_minute[minute])
    count = sum(total.values()) or 1
    return {p.value: round(n / count, 4) for p, n in sorted(total.items())}


if __name__ == "__main__":
    for figure in measure(quick="--quick" in sys.argv):
        print(figure.as_json())
