"""Which provider carries a recipient, and which providers could carry it after that one (its route).

The preferences are data (`route_table`: per country, kind of message and message type, an ordered list of
providers with optional weights); what each provider *can* carry stays here, in code:
- Alibaba carries free text only (a registered template reaches it as the template's text, rendered at accept);
- Tencent and Huawei carry templates only, by their own template ids (Tencent's are numeric, Huawei's 1-32
  characters);
- the Chinese mainland (+86) is reached only through Huawei.

For one recipient the table's list is filtered by those capabilities (and, for a registered template, by which
providers the registry has it for). The first provider is drawn by weight, deterministically from the message id
(the same request sends each recipient through the same provider however often it is repeated); the route is the
drawn provider followed by the other eligible ones in the table's order, the order a failover would try them in.
A `provider` pin bypasses the table: it wins if it can carry the message, and is then the whole route.

What no provider can carry is refused with a code that says why (docs/pipeline.md, "Routing and templates").
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import TYPE_CHECKING

from globesms.models.outbound import MessageType, ProviderName
from globesms.routing import route_scores
from globesms.routing.capabilities import (
    CAPABILITIES,
    MAINLAND_CHINA,
    NO_ROUTE,
    PROVIDER_CANNOT_CARRY,
    TEMPLATE_UNKNOWN_FOR_PROVIDER,
    Kind,
)
from globesms.routing.scoring import ScoredRoute, rank

if TYPE_CHECKING:
    from globesms.routing.route_scores import ScoreSource
    from globesms.routing.route_table import RouteTable
    from globesms.routing.templates import ProviderTemplates


@dataclass(frozen=True, slots=True)
class RouteRefusal:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Routed:
    provider: ProviderName
    route: tuple[ProviderName, ...]  # `provider` first, then the others a failover may try, in order


def draw(message_id: str, cumulative: tuple[int, ...]) -> int:
    """Index of the weighted choice for this message id: uniform over ids, the same every time for one id (and in
    every process: blake2b of the id, not Python's salted `hash`)."""
    digest = blake2b(message_id.encode(), digest_size=8).digest()
    return bisect_right(cumulative, int.from_bytes(digest, "big") % cumulative[-1])


@dataclass(frozen=True, slots=True)
class _Choice:
    options: tuple[Routed, ...]  # one per provider that can be drawn first
    cumulative: tuple[int, ...] | None = None  # running sums of their weights; None: always options[0]

    def pick(self, message_id: str) -> Routed:
        cumulative = self.cumulative
        if cumulative is None:
            return self.options[0]
        return self.options[draw(message_id, cumulative)]


def _choice(eligible: list[tuple[ProviderName, int | None]]) -> _Choice:
    providers = tuple(p for p, _ in eligible)

    def routed(first: ProviderName) -> Routed:
        return Routed(first, (first, *(p for p in providers if p is not first)))

    weighted = [(p, w) for p, w in eligible if w]
    if not weighted or len(weighted) == 1:
        first = weighted[0][0] if weighted else providers[0]
        return _Choice((routed(first),))
    cumulative: list[int] = []
    total = 0
    for _, weight in weighted:
        total += weight
        cumulative.append(total)
    return _Choice(tuple(routed(p) for p, _ in weighted), tuple(cumulative))


@dataclass(frozen=True, slots=True)
class _ScoredChoice:
    ranked: ScoredRoute

    def pick(self, message_id: str) -> Routed:
        route = self.ranked.route_for(message_id)
        return Routed(route[0], route)


@dataclass(slots=True)
class SpecRouter:
    """Routes the recipients of one message spec. What depends only on the spec and the recipient's country is
    worked out once per country (a dict lookup per recipient after that)."""

    table: RouteTable
    kind: Kind
    message_type: MessageType
    pin: ProviderName | None = None
    template_id: str | None = None
    registered: ProviderTemplates | None = None  # the registry's versions of template_id, when it has it
    scores: ScoreSource | None = None  # for scored routes; None: the one installed for the process, if any
    _cache: dict[tuple[str | None, bool], _Choice | _ScoredChoice | RouteRefusal] = field(default_factory=dict)

    def route(self, region: str | None, country_code: int, message_id: str) -> Routed | RouteRefusal:
        key = (region, country_code == MAINLAND_CHINA)
        choice = self._cache.get(key)
        if choice is None:
            choice = self._cache[key] = self._choose(region, country_code)
        return choice if isinstance(choice, RouteRefusal) else choice.pick(message_id)

    def _why_not(self, provider: ProviderName, mainland: bool) -> str | None:
        capability = CAPABILITIES[provider]
        if self.kind == "text" and not capability.free_text:
            return f"{provider} carries template messages only"
        if self.kind == "template" and self.registered is None:
            if not capability.templates:
                return f"{provider} does not carry template messages"
            ids = capability.template_ids
            if ids is not None and self.template_id is not None and not ids.allow(self.template_id):
                return f"{provider} template ids are {ids.described}"
        if mainland and not capability.mainland_china:
            return f"{provider} does not deliver to the Chinese mainland (+86)"
        return None

    def _unregistered(self, provider: ProviderName) -> RouteRefusal:
        return RouteRefusal(
            TEMPLATE_UNKNOWN_FOR_PROVIDER, f"template {self.template_id!r} has no {provider} version in the registry"
        )

    def _scored(self, able: list[tuple[ProviderName, int | None]], region: str | None) -> _Choice | _ScoredChoice:
        """A scored route's choice from the country's statistics (routing/scoring.py); without statistics (no
        source, unreadable, no region), the table's order."""
        source = self.scores or route_scores.current()
        found = source.snapshot(region) if source is not None and region else None
        if source is None or found is None or region is None:
            return _choice([(p, None) for p, _ in able])
        providers = [p for p, _ in able]
        counts = {p: found.of(p, self.message_type) for p in providers}
        prices = {p: source.price_of(p, region, self.message_type) for p in providers}
        return _ScoredChoice(rank(providers, counts, prices))

    def _choose(self, region: str | None, country_code: int) -> _Choice | _ScoredChoice | RouteRefusal:
        mainland = country_code == MAINLAND_CHINA
        if self.pin is not None:
            reason = self._why_not(self.pin, mainland)
            if reason:
                return RouteRefusal(PROVIDER_CANNOT_CARRY, reason)
            if self.registered is not None and self.pin not in self.registered:
                return self._unregistered(self.pin)
            return _Choice((Routed(self.pin, (self.pin,)),))
        listed = self.table.lookup(region, self.kind, self.message_type)
        weights = listed.weights or (None,) * len(listed.providers)
        able = [(p, w) for p, w in zip(listed.providers, weights, strict=True) if self._why_not(p, mainland) is None]
        if not able:
            what = "free-text" if self.kind == "text" else "template"
            where = "the Chinese mainland (+86)" if mainland else f"+{country_code}"
            return RouteRefusal(NO_ROUTE, f"no provider carries {what} messages to {where}")
        if self.kind == "template" and self.registered is None:
            # A provider's own template id means something to one provider only: the first that takes its format.
            first = able[0][0]
            return _Choice((Routed(first, (first,)),))
        if self.registered is not None:
            having = [(p, w) for p, w in able if p in self.registered]
            if not having:
                names = ", ".join(p for p, _ in able)
                return RouteRefusal(
                    TEMPLATE_UNKNOWN_FOR_PROVIDER,
                    f"template {self.template_id!r} has no version for any provider routing it here ({names})",
                )
            able = having
        return self._scored(able, region) if listed.scored else _choice(able)
