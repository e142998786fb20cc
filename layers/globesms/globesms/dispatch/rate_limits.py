"""Provider rate limits that hold across every concurrent dispatcher.

Each provider operation has a rate in calls per second (`dispatch.rate_table`: the defaults, overridable by the
environment variable `GLOBESMS_RATE_LIMITS`, a JSON object operation -> calls per second). The providers (and our
emulators) count calls per operation per wall-clock second, so the permits are too: a shared counter per operation
per epoch second (`ports.RateLimiter`; on DynamoDB, `aws.dynamodb_rate_limiter`) that no dispatcher may take
past the rate.

A dispatcher works in rounds (`dispatch.send_within_limits`): plan the HTTP calls its messages need
(`Provider.plan`), pick the calls the free permits allow (`choose_calls`), take their permits for the current
second all at once (`acquire_calls`), and make them while that second lasts (`Window`). What it cannot send now
goes back on the queue with a short delay (`defer_delay`): a dispatcher never waits for permits.

This module is pure except for `acquire_calls`, which talks to a `RateLimiter`.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from globesms.config import RateLimitSettings, load_settings, settings
from globesms.dispatch.rate_table import parse_rate_limits
from globesms.ports import PlannedCall, RateLimiter

#: A call is started only in the first `1 - SECOND_MARGIN` of the second whose permit it holds, so that it
#: reaches the provider (network latency, a clock a little apart from ours) within that second.
SECOND_MARGIN: Final = 0.2
#: The most calls one round takes permits for. Permits taken but not used before their second ends are lost to
#: everybody, so a dispatcher takes them a few at a time (a client sends its calls one after another).
MAX_CALLS_PER_ROUND: Final = 20
#: A dispatcher stops starting rounds for a pack after this many seconds and puts the rest back on the queue
#: (the function's timeout is 30 s and it receives up to 2 packs).
SEND_BUDGET_SECONDS: Final = 10.0
#: What an invocation keeps, after its last provider call can have ended, for recording the pack's outcomes and
#: their follow-ups (a pack of 1,000: ~40 batched writes, the spend marks, the status events; well under a second
#: on DynamoDB, five to spare for throttling retries) before the function's timeout.
RECORDING_RESERVE_SECONDS: Final = 5.0
#: The longest delay before a pack's unsent remainder is tried again.
MAX_DEFER_SECONDS: Final = 30


# ---------------------------------------------------------------------------------------------------------------
# The configured rates


def configured_rate_limits(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """The rates in force: `rate_table.DEFAULT_RATE_LIMITS` overridden by `GLOBESMS_RATE_LIMITS` (docs/pipeline.md)."""
    configured = settings(RateLimitSettings) if env is None else load_settings(RateLimitSettings, env)
    return parse_rate_limits(configured.rate_limits)


# ---------------------------------------------------------------------------------------------------------------
# Which second, which calls (pure)


@dataclass(frozen=True, slots=True)
class Window:
    """The wall-clock second to take permits in, how long until it starts (0 when it already has), and the moment
    after which no call may be started under its permits."""

    second: int
    starts_in: float
    deadline: float


def window(now: float, *, margin: float = SECOND_MARGIN) -> Window:
    """The current second while enough of it is left to start calls in; else the next one (a wait of at most
    `margin`, never longer)."""
    second = math.floor(now)
    if now - second < 1 - margin:
        return Window(second, 0.0, second + 1 - margin)
    return Window(second + 1, second + 1 - now, second + 2 - margin)


@dataclass(frozen=True)
class Choice:
    """Calls to make now (in input order) and calls that wait; `permits` is what `now` needs, per operation."""

    now: list[PlannedCall]
    later: list[PlannedCall] = field(default_factory=list)

    @property
    def permits(self) -> dict[str, int]:
        return dict(Counter(call.operation for call in self.now))


def choose_calls(calls: Sequence[PlannedCall], free: Mapping[str, int], *, max_calls: int) -> Choice:
    """Which of `calls` to make with `free` permits (operation -> calls), at most `max_calls` of them.

    The most messages per permit first. A call that may go as single calls (`singles`: Alibaba's batch call) goes
    whole if its operation has a permit, the largest such calls first: one BatchSendMessageToGlobe permit (1/s)
    carries up to 1,000 numbers. Every other call goes, in order, if its operation has a permit. Then the
    splittable calls left without one go as single calls, as many of their messages as the singles' operation
    has permits for (SendMessageToGlobe, 2,000/s); the rest of each waits, still as one splittable call. So a
    NOTIFY pack of 1,000 is one batch call when a batch permit is free this second, single calls when only
    single permits are, and waits when neither is; OTP single calls never wait behind a batch's fallback."""
    left = Counter({op: n for op, n in free.items() if n > 0})
    budget = max(0, max_calls)
    chosen: dict[int, list[PlannedCall]] = {}
    waiting: dict[int, PlannedCall] = {}

    def take(operation: str, count: int) -> int:
        nonlocal budget
        granted = min(count, left[operation], budget)
        left[operation] -= granted
        budget -= granted
        return granted

    splittable = sorted((i for i, c in enumerate(calls) if c.singles is not None), key=lambda i: -len(calls[i].indexes))
    short = []
    for i in splittable:
        if take(calls[i].operation, 1):
            chosen[i] = [calls[i]]
        else:
            short.append(i)
    for i, call in enumerate(calls):
        if call.singles is None:
            if take(call.operation, 1):
                chosen[i] = [call]
            else:
                waiting[i] = call
    for i in sorted(short):
        call = calls[i]
        assert call.singles is not None
        count = take(call.singles, len(call.indexes))
        if count:
            chosen[i] = PlannedCall(call.operation, call.indexes[:count], call.singles).as_singles()
        if count < len(call.indexes):
            waiting[i] = PlannedCall(call.operation, call.indexes[count:], call.singles)
    return Choice(
        now=[c for i in sorted(chosen) for c in chosen[i]],
        later=[waiting[i] for i in sorted(waiting)],
    )


def operations_of(calls: Sequence[PlannedCall]) -> list[str]:
    """Every operation these calls may count against (their own and their singles'), in a fixed order."""
    return sorted({c.operation for c in calls} | {c.singles for c in calls if c.singles is not None})


def defer_delay(calls: Sequence[PlannedCall], limits: Mapping[str, int], *, rng: random.Random | None = None) -> int:
    """Seconds before calls that found no permit are tried again: random (so deferred packs do not all come back
    in the same second) up to the seconds these calls need at the full rate, 1 to `MAX_DEFER_SECONDS`."""
    needed = Counter(call.operation for call in calls)
    seconds = max((math.ceil(n / max(1, limits.get(op, 1))) for op, n in needed.items()), default=1)
    return (rng or random).randint(1, max(1, min(MAX_DEFER_SECONDS, seconds)))


# ---------------------------------------------------------------------------------------------------------------
# Taking permits


def acquire_calls(
    limiter: RateLimiter, calls: Sequence[PlannedCall], second: int, *, max_calls: int = MAX_CALLS_PER_ROUND
) -> Choice:
    """The calls to make in `second`, their permits taken; `now` is empty when no permit could be had.

    First as if the whole second were free (one conditional write per operation when it is: the common case);
    when the limiter refuses, read what is free and choose again, a few times (other dispatchers take permits in
    between). The limiter takes a choice's permits all or none, so a refusal leaves nothing taken."""
    operations = operations_of(calls)
    free = {op: limiter.limit(op) for op in operations}
    for _ in range(3):
        choice = choose_calls(calls, free, max_calls=max_calls)
        if not choice.now or limiter.acquire(choice.permits, second=second):
            return choice
        free = limiter.free(operations, second=second)
    return Choice(now=[], later=list(calls))
