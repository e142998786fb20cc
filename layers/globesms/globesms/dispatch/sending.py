"""How a pack's messages reach the provider: each message checked against the provider's rules, the calls made,
and — with a `RateLimiter` — the calls kept within every provider operation's calls per second (summed over all
dispatchers), what finds no permit in time left unsent for the caller to put back on the queue."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from globesms.dispatch.rate_limits import (
    MAX_CALLS_PER_ROUND,
    RECORDING_RESERVE_SECONDS,
    SEND_BUDGET_SECONDS,
    acquire_calls,
    defer_delay,
    window,
)
from globesms.dispatch.validity import validity_left
from globesms.errors import DispatchCode, ErrorCategory, InvalidProviderRequest, ProviderError
from globesms.models.outbound import MessageType, OutboundSms, SendOutcome
from globesms.models.packs import DispatchPack, PackContent
from globesms.ports import PlannedCall, Provider, RateLimiter

INVALID_REQUEST = DispatchCode.INVALID_REQUEST

# A child of the Powertools logger "globesms" (globesms.observability), whose handler writes these lines too.
logger = logging.getLogger(__name__)


class RateLimiterUnavailable(RuntimeError):
    """The rate limiter failed before any call was made: the pack's claim is released and SQS delivers it again."""


class WatchedProvider:
    """A provider that notes whether a call was started (`send`): until one is, nothing can have reached it, so an
    error leaves the pack unsent rather than its outcome unknown."""

    def __init__(self, provider: Provider) -> None:
        self.name = provider.name
        self.max_recipients_per_call = provider.max_recipients_per_call
        self.longest_call_seconds = provider.longest_call_seconds
        self.called = False
        self._provider = provider

    def check(self, message: OutboundSms) -> InvalidProviderRequest | None:
        return self._provider.check(message)

    def plan(self, messages: Sequence[OutboundSms]) -> list[PlannedCall]:
        return self._provider.plan(messages)

    def send(self, messages: Sequence[OutboundSms], *, plan: Sequence[PlannedCall] | None = None) -> list[SendOutcome]:
        self.called = True
        return self._provider.send(messages) if plan is None else self._provider.send(messages, plan=plan)


def outbound_messages(pack: DispatchPack, now: datetime | None = None) -> list[OutboundSms]:
    """The pack's messages. With `now`, a message's validity is what is left of it then (`validity.validity_left`):
    a provider told the whole of it (Alibaba's ValidityPeriod) would keep trying past it, after a message waited in
    the gateway (deferred, retried, held through quiet hours)."""
    # What a content gives its recipients' messages, worked out once per content (a pack of 1,000 has one or two).
    shared = [_content_fields(content, pack.created_at, now) for content in pack.contents]
    return [OutboundSms(recipient.id, recipient.to, *shared[recipient.c]) for recipient in pack.recipients]


#: `OutboundSms`'s fields after `message_id` and `to`, in its order (type, text, template_id, template_params,
#: sender_id, validity_seconds).
_ContentFields = tuple[MessageType, str | None, str | None, tuple[str, ...], str | None, int | None]


def _content_fields(content: PackContent, created_at: str, now: datetime | None) -> _ContentFields:
    """What this content sets of each of its recipients' messages."""
    validity = content.validity_seconds if now is None else validity_left(content, created_at, now)
    return (
        MessageType(content.type),
        content.text,
        content.template_id,
        # Only a provider template takes params; a rendered text keeps them for failover alone.
        tuple(content.template_params.values()) if content.template_params and content.template_id else (),
        content.sender_id,
        validity,
    )


def send_all(provider: Provider, messages: Sequence[OutboundSms]) -> list[SendOutcome]:
    """One outcome per message, in input order. Each message is checked first (`Provider.check`): one that breaks
    a provider rule fails on its own with category `request` and the field and rule it broke, and only the others
    are sent, in calls of the provider's per-call cap. A call the client still refuses as a whole (a call-level
    rule, such as a message id used twice in one call) fails its own messages the same way. Messages refused for a
    key renewed since (`CREDENTIALS_RENEWED`) are sent once more, with the new key: no limiter, no permit to keep
    to (`send_within_limits` plans them again under permits of their own)."""
    outcomes: list[SendOutcome | None] = [None] * len(messages)
    _send_chunks(provider, messages, _checked(provider, messages, outcomes), outcomes)
    renewed = [i for i, o in enumerate(outcomes) if o is not None and _renewed(o)]
    if renewed:
        _send_chunks(provider, messages, renewed, outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def _send_chunks(
    provider: Provider, messages: Sequence[OutboundSms], positions: Sequence[int], outcomes: list[SendOutcome | None]
) -> None:
    step = provider.max_recipients_per_call
    for start in range(0, len(positions), step):
        chunk_positions = positions[start : start + step]
        chunk = [messages[index] for index in chunk_positions]
        for index, outcome in zip(chunk_positions, _sent(provider, chunk), strict=True):
            outcomes[index] = outcome


def _renewed(outcome: SendOutcome) -> bool:
    """Refused for a key renewed since (`providers.RefreshingProvider`): nothing was sent."""
    return outcome.error is not None and outcome.error.code == DispatchCode.CREDENTIALS_RENEWED


@dataclass(frozen=True)
class LimitedSend:
    """What `send_within_limits` did: an outcome per message, None for a message it did not send (no permit in
    time: it goes back on the queue after `delay_seconds`)."""

    outcomes: list[SendOutcome | None]
    delay_seconds: int = 0

    @property
    def unsent(self) -> list[int]:
        return [index for index, outcome in enumerate(self.outcomes) if outcome is None]


def send_within_limits(
    provider: Provider,
    messages: Sequence[OutboundSms],
    limiter: RateLimiter,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    budget_seconds: float = SEND_BUDGET_SECONDS,
    max_calls_per_round: int = MAX_CALLS_PER_ROUND,
    calls_end_by: float | None = None,
) -> LimitedSend:
    """`send_all` within the provider's rate limits, shared with every other dispatcher through `limiter`.

    Messages are checked as in `send_all`. Then, in rounds: the provider plans the calls the unsent messages
    need (`Provider.plan`, per call of at most `max_recipients_per_call`); `rate_limits.acquire_calls` picks the
    calls the free permits of the current wall-clock second allow (Alibaba: batch or single calls) and takes
    their permits; each call is made while that second lasts (`rate_limits.window`), the ones it did not reach
    are planned again in the next round. The rounds stop when no permit is free (never waiting for one: at most
    the last `SECOND_MARGIN` of a second, to start in the next), or after `budget_seconds`; the messages left
    unsent come back as None, with the delay after which to try them again. A limiter that fails before the first
    call raises `RateLimiterUnavailable` (nothing was sent); after it, the rest is left unsent the same way.

    `calls_end_by` (on `clock`): when the invocation must stop calling (its end, less the time recording the
    outcomes takes). No call, and no round, starts that could still be waiting for its answer then
    (`provider.longest_call_seconds`): the budget bounds when the last round starts, not when its call ends, and a
    function that timed out mid-call would leave its pack to be settled as possibly sent (unknown outcomes). What
    was not called goes back on the queue as above."""
    outcomes: list[SendOutcome | None] = [None] * len(messages)
    remaining = _checked(provider, messages, outcomes)
    started = clock()
    calls: list[PlannedCall] = []
    made_a_call = False
    while remaining:
        calls = _plan(provider, messages, remaining, outcomes)
        if not calls or clock() - started >= budget_seconds or not _time_for_a_call(provider, clock, calls_end_by):
            break
        slot = window(clock())
        if slot.starts_in > 0:
            sleep(slot.starts_in)
        try:
            choice = acquire_calls(limiter, calls, slot.second, max_calls=max_calls_per_round)
        except Exception as exc:
            if not made_a_call:
                raise RateLimiterUnavailable(f"{type(exc).__name__}: {exc}") from exc
            logger.exception("rate limiter failed: the unsent recipients go back on the queue")
            break
        if not choice.now:
            break
        for call in choice.now:
            if clock() >= slot.deadline or not _time_for_a_call(provider, clock, calls_end_by):
                break  # this second's permit is not used: its messages are planned again for the next second
            made_a_call = True
            _make_call(provider, messages, call, outcomes)
        remaining = [index for index in remaining if outcomes[index] is None]
    if not remaining:
        return LimitedSend(outcomes)
    waiting = [call for call in calls if any(outcomes[index] is None for index in call.indexes)]
    return LimitedSend(outcomes, defer_delay(waiting, _limits(limiter, waiting)))


def stop_calling_at(now: float, remaining_seconds: float) -> float:
    """`calls_end_by` for an invocation with `remaining_seconds` left at `now` (Lambda's context says)."""
    return now + remaining_seconds - RECORDING_RESERVE_SECONDS


def _time_for_a_call(provider: Provider, clock: Callable[[], float], calls_end_by: float | None) -> bool:
    return calls_end_by is None or clock() + provider.longest_call_seconds <= calls_end_by


def _limits(limiter: RateLimiter, calls: Sequence[PlannedCall]) -> dict[str, int]:
    limits = {}
    for operation in {call.operation for call in calls}:
        try:
            limits[operation] = limiter.limit(operation)
        except KeyError:
            limits[operation] = 1
    return limits


def _checked(provider: Provider, messages: Sequence[OutboundSms], outcomes: list[SendOutcome | None]) -> list[int]:
    """The positions of the messages `provider.check` accepts; the others get their refusal in `outcomes`."""
    sendable: list[int] = []
    for index, message in enumerate(messages):
        problem = provider.check(message)
        if problem is None:
            sendable.append(index)
        else:
            outcomes[index] = SendOutcome(message_id=message.message_id, error=_invalid_request(problem))
    return sendable


def _plan(
    provider: Provider, messages: Sequence[OutboundSms], positions: Sequence[int], outcomes: list[SendOutcome | None]
) -> list[PlannedCall]:
    """The provider's calls for the messages at `positions`, with positions in `messages`. A chunk the provider
    refuses as a whole (a call-level rule) fails its own messages, as in `send_all`."""
    calls: list[PlannedCall] = []
    step = provider.max_recipients_per_call
    for start in range(0, len(positions), step):
        chunk = positions[start : start + step]
        chunk_messages = [messages[index] for index in chunk]
        try:
            planned = provider.plan(chunk_messages)
        except InvalidProviderRequest as exc:
            for index, outcome in zip(chunk, _refused(chunk_messages, exc), strict=True):
                outcomes[index] = outcome
            continue
        calls.extend(
            PlannedCall(call.operation, tuple(chunk[i] for i in call.indexes), call.singles) for call in planned
        )
    return calls


def _make_call(
    provider: Provider, messages: Sequence[OutboundSms], call: PlannedCall, outcomes: list[SendOutcome | None]
) -> None:
    """One HTTP call: the provider sends exactly `call`, its messages given on their own."""
    chunk = [messages[index] for index in call.indexes]
    own = PlannedCall(call.operation, tuple(range(len(chunk))), call.singles)
    for index, outcome in zip(call.indexes, _sent(provider, chunk, [own]), strict=True):
        if _renewed(outcome):
            continue  # unsent: planned again with a permit of its own
        outcomes[index] = outcome


def _sent(
    provider: Provider, chunk: Sequence[OutboundSms], plan: Sequence[PlannedCall] | None = None
) -> list[SendOutcome]:
    """The provider's outcomes for one call (or the calls it plans for `chunk`); a call it refuses as a whole (a
    call-level rule) fails its own messages with the field and rule."""
    try:
        return provider.send(chunk) if plan is None else provider.send(chunk, plan=plan)
    except InvalidProviderRequest as exc:
        return _refused(chunk, exc)


def _invalid_request(problem: InvalidProviderRequest) -> ProviderError:
    return ProviderError(ErrorCategory.REQUEST, INVALID_REQUEST, f"{problem.field}: {problem.rule}")


def _refused(messages: Sequence[OutboundSms], problem: InvalidProviderRequest) -> list[SendOutcome]:
    error = _invalid_request(problem)
    return [SendOutcome(message_id=m.message_id, error=error) for m in messages]
