"""Scored routes: which provider carries a message, from recent delivery statistics (a pure function).

For one country and message type, each provider that can carry the message gets a score from the stats snapshot:

    score = delivery rate (lower confidence bound) - PRICE_WEIGHT x (its price per delivered message / the lowest - 1)
            - LATENCY_WEIGHT x min(1, median receipt latency / LATENCY_SCALE)

- The rate is the Wilson lower bound (z = `confidence_z`), not the raw ratio: a provider seen 40 times at 98 % does
  not outrank one seen 4,000 times at 95 % on luck; and a provider with fewer than `min_samples` outcomes in the
  window has no score at all (it is ranked after the scored ones, in the table's order). With no scored provider the
  table's order decides.
- Hysteresis: every provider whose score is within `hysteresis` of the best is good enough, and of those the one
  that carried the most messages in the window keeps the traffic. Two near-equal providers therefore do not take
  turns on noise; a provider that falls clearly behind loses the traffic at once.
- Exploration: an `exploration_share` of message ids (by a hash of the id, not a random draw) goes to one of the
  other providers, so their numbers stay fresh and a recovered provider is noticed.
- Failing providers: a scored provider whose delivery rate is, with the same confidence, below `failing_rate` (the
  Wilson *upper* bound under it) is ranked after the providers without a score. Without this a provider that
  delivered nothing kept the traffic whenever the others had too few outcomes to be scored: they only get the
  exploration share, which at a few hundred messages per window never reaches `min_samples`. An untried provider is
  the better bet than one known to lose most messages; with no other candidate the failing one is still used.

Deterministic: the same snapshot, prices and message id give the same route, in every process.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from hashlib import blake2b
from typing import Final

from globesms.models.outbound import ProviderName
from globesms.stats.tally import Tally, quantile_seconds

_HASH_RANGE: Final = 1 << 64


@dataclass(frozen=True, slots=True)
class ScoringPolicy:
    min_samples: int = 30  # outcomes in the window before a provider's numbers are trusted
    exploration_share: float = 0.06  # of message ids sent to another provider than the chosen one
    hysteresis: float = 0.03  # in delivery-rate points: how far behind the best is still good enough
    confidence_z: float = 1.96  # the Wilson bound's z (1.96: a 97.5 % one-sided bound)
    price_weight: float = 0.1  # a 10 % higher price per delivered message costs 1 point of delivery rate
    latency_weight: float = 0.02  # at most 2 points for a slow median receipt ...
    latency_scale_seconds: float = 120.0  # ... reached at this median
    failing_rate: float = 0.5  # a provider surely delivering less than this ranks after the unscored ones


DEFAULT_POLICY: Final = ScoringPolicy()


@dataclass(frozen=True, slots=True)
class ProviderScore:
    provider: ProviderName
    samples: int
    score: float | None  # None: fewer than min_samples outcomes
    rate_bound: float | None = None
    cost_per_delivered: float | None = None
    failing: bool = False  # its delivery rate's upper bound is under the policy's failing_rate


@dataclass(frozen=True, slots=True)
class ScoredRoute:
    """The ranking for one snapshot: `order[0]` carries the traffic, the others are explored and failed over to."""

    order: tuple[ProviderName, ...]
    scores: tuple[ProviderScore, ...]
    exploration_share: float

    def route_for(self, message_id: str) -> tuple[ProviderName, ...]:
        """The route of one message: its first provider (the chosen one, or an explored one for a share of ids),
        then the others in rank order."""
        if len(self.order) < 2:
            return self.order
        draw = _unit(message_id, "explore")
        if draw >= self.exploration_share:
            return self.order
        others = self.order[1:]
        pick = others[int(_unit(message_id, "which") * len(others))]
        return (pick, *(p for p in self.order if p is not pick))


def _unit(message_id: str, purpose: str) -> float:
    """A number in [0, 1) from the id: uniform over ids, the same in every process (blake2b, not `hash`)."""
    digest = blake2b(message_id.encode(), digest_size=8, person=purpose.encode()[:16]).digest()
    return int.from_bytes(digest, "big") / _HASH_RANGE


def wilson_lower_bound(successes: int, trials: int, z: float) -> float:
    if trials == 0:
        return 0.0
    centre, margin, denominator = _wilson(successes, trials, z)
    return max(0.0, (centre - margin) / denominator)


def wilson_upper_bound(successes: int, trials: int, z: float) -> float:
    if trials == 0:
        return 1.0
    centre, margin, denominator = _wilson(successes, trials, z)
    return min(1.0, (centre + margin) / denominator)


def _wilson(successes: int, trials: int, z: float) -> tuple[float, float, float]:
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = p + z * z / (2 * trials)
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return centre, margin, denominator


def rank(
    candidates: Sequence[ProviderName],
    counts: Mapping[ProviderName, Tally],
    prices: Mapping[ProviderName, Decimal | None],
    policy: ScoringPolicy = DEFAULT_POLICY,
) -> ScoredRoute:
    """`candidates`: the providers that can carry the message, in the table's order; `counts`: their outcomes in
    the scoring window; `prices`: price per SMS part (None: unknown). A provider whose cost is unknown while others'
    are known is scored as twice the dearest of them: with no price term it won on price alone, and under a spend
    limit every recipient sent its way was refused PRICE_UNKNOWN (a review: 95 of 100); as the dearest itself, its
    penalty was none beside one priced provider, and within the hysteresis beside two priced alike. Twice the
    dearest is a penalty of at least the price weight (0.1), over the hysteresis (0.03): it carries the traffic only
    by delivering clearly better. With no price known, no price term for anyone."""
    costs = {p: _cost_per_delivered(counts.get(p), prices.get(p), policy) for p in candidates}
    known = [c for c in costs.values() if c is not None]
    cheapest, dearest = (min(known), max(known)) if known else (None, None)
    scores = tuple(_score(p, counts.get(p), costs[p], (cheapest, dearest), policy) for p in candidates)
    unscored = [s.provider for s in scores if s.score is None]
    scored = [s for s in scores if s.score is not None and not (s.failing and unscored)]
    failing = [s for s in scores if s.score is not None and s.failing and unscored]
    by_score = sorted(failing, key=lambda s: (-(s.score or 0.0), candidates.index(s.provider)))
    if not scored:
        return ScoredRoute((*unscored, *(s.provider for s in by_score)), scores, policy.exploration_share)
    best = max(s.score for s in scored if s.score is not None)
    good_enough = [s for s in scored if s.score is not None and s.score >= best - policy.hysteresis]
    # Of the good enough: the one carrying the traffic now (most outcomes), then the better score, then table order.
    chosen = max(good_enough, key=lambda s: (s.samples, s.score, -candidates.index(s.provider))).provider
    ranked = sorted(scored, key=lambda s: (-(s.score or 0.0), candidates.index(s.provider)))
    rest = [s.provider for s in ranked if s.provider is not chosen]
    rest += [*unscored, *(s.provider for s in by_score)]
    return ScoredRoute((chosen, *rest), scores, policy.exploration_share)


def _cost_per_delivered(tally: Tally | None, price: Decimal | None, policy: ScoringPolicy) -> float | None:
    if tally is None or price is None or tally.outcomes < policy.min_samples or not tally.delivered:
        return None
    return float(price) * tally.parts / tally.delivered


def _score(
    provider: ProviderName,
    tally: Tally | None,
    cost: float | None,
    known: tuple[float | None, float | None],
    policy: ScoringPolicy,
) -> ProviderScore:
    """`known`: the cheapest and the dearest of the candidates' known costs (an unknown cost is scored as twice the
    dearest)."""
    samples = tally.outcomes if tally is not None else 0
    if tally is None or samples < policy.min_samples:
        return ProviderScore(provider, samples, None)
    bound = wilson_lower_bound(tally.delivered, samples, policy.confidence_z)
    score = bound
    cheapest, dearest = known
    if cost is None and dearest is not None:
        # Twice the dearest: a term of at least the price weight, also when the cheapest is free (a price of 0,
        # where a ratio means nothing and the term was dropped for everyone, a review).
        score -= policy.price_weight * (2 * dearest / cheapest - 1 if cheapest else 1.0)
    elif cost is not None and cheapest:
        score -= policy.price_weight * (cost / cheapest - 1)
    median = quantile_seconds(tally.latency, 0.5)
    if median is not None:
        score -= policy.latency_weight * min(1.0, median / policy.latency_scale_seconds)
    failing = wilson_upper_bound(tally.delivered, samples, policy.confidence_z) < policy.failing_rate
    return ProviderScore(provider, samples, score, bound, cost, failing)
