"""When a provider counts as down, from what its packs got back (the state lives in `ports.CircuitBreakers`;
`record_pack` counts a pack there, the rest is pure).

A pack *failed* when the provider answered none of the calls it made: every outcome of a call is a transient error
(`retryable`: 5xx, connection refused) or an unknown outcome (a timeout). It *answered* when at least one call
came back with anything else — a message id, a refusal of a number or of our request, even `throttled` (a provider
that throttles is up). Messages refused before any call (`INVALID_REQUEST`) say nothing about the provider.

`failures_to_open` failed packs in a row (summed over every dispatcher) open the breaker for `cooldown_seconds`:
meanwhile dispatchers move the recipients that have another provider in their route without calling this one,
and still send those that have none (so each of them reaches a final status through its own attempts). After the
cooldown packs are sent again; one failure re-opens the breaker at once, one answer closes it.

Two choices, each noted by a review (2026-12-07) and kept:
- An answer closes the breaker during its cooldown too. The packs still sent meanwhile (recipients with no other
  provider) are its probes: one answered (a message id, a refusal, even `throttled`) shows the provider is up, and
  the traffic that moved away may come back to it.
- "In a row" is as each dispatcher saw it: an answered pack resets the count only when the state it read at its
  start had failures (so the common pack writes nothing). Failures counted by other dispatchers while an answered
  pack was in flight stay counted, so under concurrency failures between answers can add up and open the breaker a
  little early: for one cooldown the recipients with another provider move there (nobody is texted twice or lost).
  Resetting on every answer would cost a write per answered pack, a one-recipient OTP's included.

What an open breaker does to a pack (the recipients moved without a call) is decided in `outcomes`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from globesms.dispatch.sending import INVALID_REQUEST
from globesms.errors import ErrorCategory
from globesms.models.outbound import ProviderName, SendOutcome
from globesms.ports import BreakerState, CircuitBreakers

#: Outcomes that say the provider did not answer (anything else, error or not, is an answer).
NO_ANSWER = frozenset({ErrorCategory.RETRYABLE, ErrorCategory.UNKNOWN_OUTCOME})


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failures_to_open: int = 5
    cooldown_seconds: int = 60


class PackHealth(Enum):
    ANSWERED = "answered"
    FAILED = "failed"
    NOT_CALLED = "not_called"


def pack_health(outcomes: Iterable[SendOutcome], *, local_refusal_code: str) -> PackHealth:
    called = [o for o in outcomes if o.error is None or o.error.code != local_refusal_code]
    if not called:
        return PackHealth.NOT_CALLED
    if all(o.error is not None and o.error.category in NO_ANSWER for o in called):
        return PackHealth.FAILED
    return PackHealth.ANSWERED


@dataclass(frozen=True, slots=True)
class BreakerUpdate:
    state: BreakerState  # after this pack
    #: This pack's failure turned the breaker open: it was not open when the pack started, and is now (the first
    #: opening, or a re-opening after a cooldown). Two dispatchers that fail at the same moment may both say so.
    opened: bool = False


def record_pack(
    breakers: CircuitBreakers,
    provider: ProviderName,
    outcomes: Iterable[SendOutcome],
    *,
    before: BreakerState,
    policy: BreakerPolicy,
    now: datetime,
) -> BreakerUpdate:
    """Counts one sent pack in the provider's breaker (`before`: its state when the pack started)."""
    health = pack_health(outcomes, local_refusal_code=INVALID_REQUEST)
    if health is PackHealth.FAILED:
        after = breakers.record_failure(
            provider, now=now, failures_to_open=policy.failures_to_open, cooldown_seconds=policy.cooldown_seconds
        )
        return BreakerUpdate(after, opened=after.is_open(now) and not before.is_open(now))
    if health is PackHealth.ANSWERED and (before.failures or before.open_until):
        breakers.record_success(provider)  # written only on a change: the common case costs no write
        return BreakerUpdate(BreakerState())
    return BreakerUpdate(before)
