"""What dispatching one pack reports: a `DispatchSummary` when the pack is done with, or one of two exceptions when
SQS must deliver it again (`RetryPack`, `PackBusy`). The dispatch handler turns both into metrics.

`ProviderCalls` is what the provider's calls said, for the provider's alarms; it rides on the summary and on
`RetryPack` alike, since a pack that failed as a whole raises and returns no summary, and a pack that fails
otherwise after its round of calls hands it to `DispatchDeps.report_unfinished_calls`. (Calls a round made before
it failed part-way, with no round to count, are not reported.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from globesms.errors import ErrorCategory, ProviderError
from globesms.models.outbound import SendOutcome


@dataclass(frozen=True)
class ProviderCalls:
    #: Recipients whose outcome a provider call decided (or the dispatcher's own refusal, INVALID_REQUEST, of a
    #: message that breaks the provider's rules); not those deferred for a permit or skipped for an open breaker.
    attempted: int = 0
    #: Of those, the ones whose outcome was an error, by category.
    errors: Mapping[ErrorCategory, int] = field(default_factory=dict)
    #: This pack's failure turned the provider's breaker open (from closed, or again after a cooldown).
    breaker_opened: bool = False

    @classmethod
    def of(cls, outcomes: Iterable[SendOutcome], *, breaker_opened: bool) -> ProviderCalls:
        outcomes = list(outcomes)
        errors = Counter(o.error.category for o in outcomes if o.error is not None)
        return cls(attempted=len(outcomes), errors=dict(errors), breaker_opened=breaker_opened)


@dataclass(frozen=True)
class DispatchSummary:
    submitted: int
    failed: int
    unknown: int
    retried: int = 0  # recipients put back on the queue in a retry pack
    skipped: int = 0  # recipients of a pack already done (a repeated delivery)
    webhooks_not_queued: int = 0
    deferred: int = 0  # recipients put back on the queue for want of a rate-limit permit (not an attempt)
    failed_over: int = 0  # recipients moved to the next provider of their route
    expired: int = 0  # unknown outcomes that no receipt settled in the window, now FAILED
    lapsed: int = 0  # recipients whose validity ran out before they reached a provider: EXPIRED, never sent
    quiet: int = 0  # MKT recipients reached inside their quiet hours: back on the queue until they end (quiet.py)
    # Recipients a receipt held until the records' write moved to DELIVERED, or UNDELIVERED / EXPIRED / REJECTED:
    # with the receipts handler's, the delivery-rate metrics see every receipt's outcome.
    delivered: int = 0
    undelivered: int = 0
    route_stats_not_written: int = 0  # 1: the outcomes of receipts held for the pack are not in the route statistics
    calls: ProviderCalls = field(default_factory=ProviderCalls)


class RetryPack(RuntimeError):
    """Every call of the pack got a transient error and nothing moved elsewhere: SQS delivers the pack again (or,
    after its last attempt, with its recipients recorded FAILED, moves it to the dead-letter queue)."""

    def __init__(
        self, error: ProviderError, calls: ProviderCalls | None = None, *, recorded: DispatchSummary | None = None
    ) -> None:
        super().__init__(f"{error.category}: {error.code}")
        self.error = error
        self.calls = calls or ProviderCalls()
        #: On the last receive: the records written before the pack goes to the dead-letter queue (None: a retry).
        self.recorded = recorded


class PackBusy(RuntimeError):
    """Another dispatcher holds this pack's claim: SQS delivers it again later, when it is done or abandoned."""
