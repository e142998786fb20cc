"""What a dispatcher works with, as one frozen object: the ports it reads and writes, the policies it follows and
the clock its rate limits count on.

One object instead of fifteen keyword parameters: `dispatch_pack` and every mode it hands a pack to
(`recovery`) take the same `DispatchDeps`, the handler builds it once per pack from its wiring, and a test builds
one from in-memory fakes and overrides a field with `dataclasses.replace`. What changes from one pack to the next
(the pack, `now`, whether this is its last attempt) stays a parameter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from globesms.dispatch.circuit_breaker import BreakerPolicy
from globesms.dispatch.permissions import CountryPermissions, PermissionsReader
from globesms.dispatch.unknown_outcomes import UnknownOutcomeAction, UnknownOutcomePolicy
from globesms.guardrails.charges import Prices
from globesms.guardrails.ports import DispatchSpend
from globesms.ports import (
    CircuitBreakers,
    MessageStore,
    PackClaims,
    PackQueues,
    Provider,
    RateLimiter,
    ReceiptStore,
    WebhookQueue,
)
from globesms.reconcile.deadline import DeadlinePolicy
from globesms.routing.templates import TemplateRegistry
from globesms.stats.ports import RouteStatsStore

if TYPE_CHECKING:
    from globesms.config import DispatchSettings
    from globesms.dispatch.summary import ProviderCalls

logger = logging.getLogger(__name__)  # a child of the Powertools logger "globesms": its handler writes these too


@dataclass(frozen=True, slots=True)
class DispatchPolicies:
    """The operator's choices a dispatcher follows (`from_settings`: the function's GLOBESMS_* variables)."""

    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    unknown_outcomes: UnknownOutcomePolicy = field(default_factory=UnknownOutcomePolicy)
    receipt_deadlines: DeadlinePolicy = field(default_factory=DeadlinePolicy)

    @classmethod
    def from_settings(cls, settings: DispatchSettings) -> DispatchPolicies:
        # Built here rather than by the settings model: config stays below the stages whose policies it configures.
        return cls(
            breaker=BreakerPolicy(settings.breaker_failures, settings.breaker_cooldown_seconds),
            unknown_outcomes=UnknownOutcomePolicy(
                settings.unknown_outcome_window_seconds, UnknownOutcomeAction(settings.unknown_outcome_policy)
            ),
            receipt_deadlines=DeadlinePolicy.from_settings(settings),
        )


@dataclass(frozen=True, slots=True)
class DispatchDeps:
    provider: Provider  # the one provider this dispatcher sends through
    store: MessageStore
    claims: PackClaims
    queues: PackQueues
    receipts: ReceiptStore
    webhooks: WebhookQueue
    #: Without one every call is made at once; with one, calls stay within the providers' rate limits.
    limiter: RateLimiter | None = None
    #: Without them no provider is ever taken for down (no circuit-breaker skip, no failover for being down).
    breakers: CircuitBreakers | None = None
    policies: DispatchPolicies = field(default_factory=DispatchPolicies)
    templates: TemplateRegistry | None = None  # None: the packaged registry (failover renders templates again)
    clock: Callable[[], float] = time.time  # wall-clock seconds, for the rate limits' per-second windows
    #: On `clock`: when this invocation must stop calling the provider (its end, less the time recording takes);
    #: None: no bound. Only the rate-limited sending reads it (`sending.send_within_limits`).
    calls_end_by: float | None = None
    #: Without it no reservation is given back (guardrails/release.py) and nothing charged (guardrails/charges.py):
    #: the counters keep what accept reserved.
    spend: DispatchSpend | None = None
    #: The price table, read when a recipient fails over or a resend is sent (it is priced for its new provider);
    #: None, or a read that fails: it keeps the estimate it carried.
    prices: Callable[[], Prices] | None = None
    #: The country permissions in force, read before every pack's calls (`dispatch.permissions`); None, or a read
    #: that fails: nobody is refused for a country at dispatch (accept checked every recipient).
    permissions: PermissionsReader | None = None
    #: Without it the outcomes of receipts held until the SUBMITTED write are not counted (docs/routing-scores.md).
    route_stats: RouteStatsStore | None = None
    #: Told what the provider's calls said when the pack fails after its round of calls (counting the breaker,
    #: requeueing, recording): no summary or RetryPack then carries them, and the provider's alarms read them (the
    #: dispatch handler emits them).
    report_unfinished_calls: Callable[[ProviderCalls], None] | None = None

    def price_table(self) -> Prices | None:
        """The price table as `prices` reads it now, or None (none given, or its read failed: logged)."""
        if self.prices is None:
            return None
        try:
            return self.prices()
        except Exception:
            logger.exception("price table unreadable: failed-over and resent messages keep their estimates")
            return None

    def country_permissions(self, *, fresh: bool = False) -> CountryPermissions | None:
        """The country permissions as `permissions` reads them now (`fresh`: past every cache), or None (none
        given, or its read failed: logged)."""
        if self.permissions is None:
            return None
        try:
            return self.permissions(fresh=fresh)
        except Exception:
            logger.exception("country permissions unreadable%s", " past the cache" if fresh else "")
            return None


@dataclass(frozen=True, slots=True)
class Recorders:
    """What recording a pack's outcomes takes, without what sending it takes (the provider, the rate limiter, the
    breakers): a dispatcher that cannot be built (its provider's credentials unreadable, an invalid
    GLOBESMS_RATE_LIMITS) still records the pack it dead-letters (`dispatch.service.dead_letter_unbuilt`)."""

    store: MessageStore
    claims: PackClaims
    receipts: ReceiptStore
    webhooks: WebhookQueue
    spend: DispatchSpend | None
    policies: DispatchPolicies
    route_stats: RouteStatsStore | None = None

    @classmethod
    def of(cls, deps: DispatchDeps) -> Recorders:
        return cls(deps.store, deps.claims, deps.receipts, deps.webhooks, deps.spend, deps.policies, deps.route_stats)

    def sending_with(
        self,
        provider: Provider,
        queues: PackQueues,
        limiter: RateLimiter | None,
        breakers: CircuitBreakers | None,
        report_unfinished_calls: Callable[[ProviderCalls], None] | None = None,
        calls_end_by: float | None = None,
        prices: Callable[[], Prices] | None = None,
        permissions: PermissionsReader | None = None,
    ) -> DispatchDeps:
        """The whole dispatcher: these recorders and what sending takes."""
        return DispatchDeps(
            provider=provider,
            store=self.store,
            claims=self.claims,
            queues=queues,
            receipts=self.receipts,
            webhooks=self.webhooks,
            limiter=limiter,
            breakers=breakers,
            policies=self.policies,
            spend=self.spend,
            route_stats=self.route_stats,
            report_unfinished_calls=report_unfinished_calls,
            calls_end_by=calls_end_by,
            prices=prices,
            permissions=permissions,
        )
