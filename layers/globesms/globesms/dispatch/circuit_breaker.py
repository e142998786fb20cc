"""When a provider counts as down, from what its packs got back (pure; the state lives in `ports.CircuitBreakers`).

A pack *failed* when the provider answered none of the calls it made: every outcome of a call is a transient error
(`retryable`: 5xx, connection refused) or an unknown outcome (a timeout). It *answered* when at least one call
came back with anything else — a message id, a refusal of a number or of our request, even `throttled` (a provider
that throttles is up). Messages refused before any call (`INVALID_REQUEST`) say nothing about the provider.

`failures_to_open` failed packs in a row (summed over every dispatcher) open the breaker for `cooldown_seconds`:
meanwhile dispatchers move the recipients that have another provider in their route without calling this one,
and still send those that have none (so each of them reaches a final status through its own attempts). After the
cooldown packs are sent again; one failure re-opens the breaker at once, one answer closes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from globesms.errors import ErrorCategory
from globesms.models.outbound import SendOutcome

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
