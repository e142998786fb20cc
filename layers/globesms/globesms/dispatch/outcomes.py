"""What becomes of each recipient of a sent pack: the outcome policy, and where failover is decided.

By its outcome, per recipient:
- a provider message id: recorded SUBMITTED;
- an unknown outcome (the request may have reached the provider): recorded SENDING with the error kept, never sent
  again blindly (`unknown_outcomes` settles it);
- the dispatcher's own refusal (INVALID_REQUEST) or a final error (recipient, request): recorded FAILED;
- a transient error (retryable, throttled): retried on this provider in a retry pack (`requeue`), unless the
  provider is down or this is the pack's last attempt, when it fails over like a config error;
- a config error (the provider will not take it, now or ever): failed over to the next provider of its route
  (`failover.reroute`); with none, recorded FAILED (a transient one retried while attempts remain).

Failover also happens before any call: while the provider's circuit breaker is open, recipients with another
provider in their route move there without a call (`skipped_for_open_breaker`, reason CIRCUIT_OPEN), the others
are sent regardless.

A pack whose every call got a transient error, with nothing moved elsewhere, is retried as a whole (`RetryPack`):
SQS delivers it again; on its last attempt its recipients are recorded FAILED, and the pack goes to the dead-letter
queue if this was SQS's last receive too (`service`), else it is finished.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from globesms.dispatch.failover import Rerouted, reroute
from globesms.dispatch.sending import INVALID_REQUEST
from globesms.errors import DispatchCode, ErrorCategory, ProviderError
from globesms.guardrails.charges import Prices
from globesms.models.outbound import SendOutcome
from globesms.models.packs import DispatchPack
from globesms.ports import BreakerState
from globesms.routing.templates import TemplateRegistry

TRANSIENT = frozenset({ErrorCategory.RETRYABLE, ErrorCategory.THROTTLED})
#: The reason kept in the history of a recipient moved because the breaker was open.
CIRCUIT_OPEN = DispatchCode.CIRCUIT_OPEN


def skipped_for_open_breaker(
    pack: DispatchPack, breaker: BreakerState, *, now: datetime, templates: TemplateRegistry | None
) -> set[int]:
    """The positions not to send because the provider is down and they can go elsewhere (none if it is up)."""
    if not breaker.is_open(now):
        return set()
    return set(reroute(pack, range(len(pack.recipients)), reasons={}, now=now, templates=templates).moved)


@dataclass(frozen=True)
class OutcomeDecision:
    """What to do with each recipient of a sent pack, by position (those deferred for a permit aside)."""

    record: list[int]  # its outcome is written
    retry: list[int]  # back on this provider's queue, one attempt further on
    moved: Rerouted  # failed over (the packs for the next providers, and the positions they took)
    whole_pack_error: ProviderError | None  # every call got a transient error: the last of them
    last_attempt: bool

    @property
    def retry_whole_pack(self) -> bool:
        """Nothing was accepted and attempts remain: the whole pack comes back, its unsent recipients with it."""
        return self.whole_pack_error is not None and not self.moved.moved and not self.last_attempt

    @property
    def dead_letter(self) -> bool:
        """Nothing was accepted on the last attempt: recorded FAILED, then (on SQS's last receive) to the DLQ."""
        return self.whole_pack_error is not None and not self.moved.moved


def decide(
    pack: DispatchPack,
    outcomes: Mapping[int, SendOutcome],
    *,
    skipped: Collection[int],
    last_attempt: bool,
    provider_down: bool,
    now: datetime,
    templates: TemplateRegistry | None,
    prices: Prices | None = None,
) -> OutcomeDecision:
    """`outcomes`: by position, the recipients sent; `skipped`: those not sent for the open breaker. `prices`: what
    the providers charge, for those that move (`failover.reroute`)."""
    plan = _plan(outcomes, last_attempt=last_attempt, provider_down=provider_down)
    # One reroute of every position that moves, in order: a dispatcher settling this pack after a crash reroutes the
    # same positions (`Requeued.failed_over`) into the same pack ids.
    reasons = {**dict.fromkeys(skipped, CIRCUIT_OPEN), **plan.move_reasons}
    to_move = sorted(reasons)
    moved = (
        reroute(pack, to_move, reasons=reasons, now=now, templates=templates, prices=prices) if to_move else Rerouted()
    )
    unmoved = sorted(set(plan.move) - set(moved.moved))  # no provider left: kept here with their error
    retry = sorted([*plan.retry, *(i for i in unmoved if not last_attempt and _is_transient(outcomes[i]))])
    record = sorted([*plan.record, *(i for i in unmoved if i not in retry)])
    return OutcomeDecision(record, retry, moved, _shared_transient_error(list(outcomes.values())), last_attempt)


@dataclass
class _Plan:
    record: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    move: list[int] = field(default_factory=list)  # to the next provider of its route, if it has one
    move_reasons: dict[int, str] = field(default_factory=dict)


def _plan(outcomes: Mapping[int, SendOutcome], *, last_attempt: bool, provider_down: bool) -> _Plan:
    plan = _Plan()
    for i, outcome in sorted(outcomes.items()):
        error = outcome.error
        if error is None or error.category is ErrorCategory.UNKNOWN_OUTCOME or error.code == INVALID_REQUEST:
            plan.record.append(i)
        elif error.category is ErrorCategory.CONFIG or (
            error.category in TRANSIENT and (provider_down or last_attempt)
        ):
            # Not sendable here (now or ever): the next provider of the route may; if none, see `decide`.
            plan.move.append(i)
            plan.move_reasons[i] = error.code
        elif error.category in TRANSIENT:
            plan.retry.append(i)
        else:
            plan.record.append(i)
    return plan


def _is_transient(outcome: SendOutcome) -> bool:
    return outcome.error is not None and outcome.error.category in TRANSIENT


def _shared_transient_error(outcomes: Sequence[SendOutcome]) -> ProviderError | None:
    # Messages refused before sending are final whatever happened to the call that carried the others.
    errors = [o.error for o in outcomes if o.error is None or o.error.code != INVALID_REQUEST]
    if not errors or any(e is None or e.category not in TRANSIENT for e in errors):
        return None
    return errors[-1]
