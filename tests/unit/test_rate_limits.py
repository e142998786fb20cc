"""The configured rates, the window a call may start in, which calls to make (Alibaba: batch or singles), and
taking permits all or none."""

import json
import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from globesms.dispatch.rate_limits import (
    MAX_DEFER_SECONDS,
    SECOND_MARGIN,
    Choice,
    acquire_calls,
    choose_calls,
    configured_rate_limits,
    defer_delay,
    window,
)
from globesms.dispatch.rate_table import DEFAULT_RATE_LIMITS, parse_rate_limits
from globesms.ports import PlannedCall
from globesms.providers.aliyun import queries as aliyun_queries
from globesms.providers.aliyun import rules
from globesms.providers.huawei.client import OPERATION as HUAWEI_OPERATION
from globesms.providers.tencent import queries as tencent_queries
from globesms.providers.tencent import wire
from tests.fakes import MemoryRateLimiter

SINGLE, BATCH = rules.SEND_ONE, rules.SEND_BATCH


def batch(*indexes: int) -> PlannedCall:
    return PlannedCall(BATCH, tuple(indexes), SINGLE)


def single(index: int) -> PlannedCall:
    return PlannedCall(SINGLE, (index,))


# ---------------------------------------------------------------------------------------------------------------
# Configured rates


def test_defaults_are_the_documented_rates_under_the_names_the_clients_and_emulators_use() -> None:
    assert DEFAULT_RATE_LIMITS == {
        rules.SEND_ONE: 2000,
        rules.SEND_BATCH: 1,
        wire.ACTION: 10,
        HUAWEI_OPERATION: 1,
        aliyun_queries.QUERY_MESSAGE: 300,
        tencent_queries.PULL_BY_PHONE_NUMBER: 10,
    }


def test_overrides_replace_only_the_operations_they_name() -> None:
    limits = parse_rate_limits('{"BatchSendMessageToGlobe": 2, "batchSendDiffSms": 20}')
    assert limits == {**DEFAULT_RATE_LIMITS, "BatchSendMessageToGlobe": 2, "batchSendDiffSms": 20}
    assert parse_rate_limits(None) == parse_rate_limits("  ") == parse_rate_limits("{}") == DEFAULT_RATE_LIMITS
    assert configured_rate_limits({"GLOBESMS_RATE_LIMITS": '{"SendMultiGlobalSms": 5}'})["SendMultiGlobalSms"] == 5
    assert configured_rate_limits({}) == DEFAULT_RATE_LIMITS


@pytest.mark.parametrize("value", [0, -1, 2.5, "10", True, None, [1]])
def test_a_bad_value_is_an_error_naming_the_operation(value: object) -> None:
    with pytest.raises(ValueError) as refused:
        parse_rate_limits(json.dumps({"SendMultiGlobalSms": value, "SendMessageToGlobe": 100}))
    message = str(refused.value)
    assert message.startswith("GLOBESMS_RATE_LIMITS: SendMultiGlobalSms: ")
    assert "whole number of calls per second, at least 1" in message
    assert "SendMessageToGlobe" not in message.split("SendMultiGlobalSms: ")[1]  # only the bad one is named


def test_an_unknown_operation_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"SendSms: not a rate-limited provider operation \(known: SendMessageToGlobe"):
        parse_rate_limits('{"SendSms": 10}')


@pytest.mark.parametrize("text", ["[1, 2]", "10", "not json", '"SendSms"'])
def test_anything_but_a_json_object_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="GLOBESMS_RATE_LIMITS: "):
        parse_rate_limits(text)


# ---------------------------------------------------------------------------------------------------------------
# The window a call may start in


def test_calls_start_in_the_current_second_while_enough_of_it_is_left() -> None:
    slot = window(1000.25)
    assert (slot.second, slot.starts_in, slot.deadline) == (1000, 0.0, 1000 + 1 - SECOND_MARGIN)


def test_near_the_end_of_a_second_they_start_in_the_next_one_after_a_wait_of_at_most_the_margin() -> None:
    slot = window(1000.9)
    assert slot.second == 1001
    assert 0 < slot.starts_in <= SECOND_MARGIN
    assert slot.starts_in == pytest.approx(0.1)
    assert slot.deadline == pytest.approx(1002 - SECOND_MARGIN)


# ---------------------------------------------------------------------------------------------------------------
# Which calls: Alibaba's batch or single calls


def test_a_notify_pack_of_1000_is_one_batch_call_when_a_batch_permit_is_free() -> None:
    choice = choose_calls([batch(*range(1000))], {BATCH: 1, SINGLE: 2000}, max_calls=20)
    assert choice == Choice(now=[batch(*range(1000))], later=[])
    assert choice.permits == {BATCH: 1}


def test_without_a_batch_permit_it_goes_as_single_calls_when_the_single_permits_cover_it() -> None:
    choice = choose_calls([batch(*range(1000))], {BATCH: 0, SINGLE: 2000}, max_calls=1000)
    assert choice.now == [single(i) for i in range(1000)]
    assert choice.later == []
    assert choice.permits == {SINGLE: 1000}


def test_without_either_it_waits() -> None:
    choice = choose_calls([batch(*range(1000))], {BATCH: 0, SINGLE: 0}, max_calls=20)
    assert choice == Choice(now=[], later=[batch(*range(1000))])
    assert choice.permits == {}


def test_single_permits_short_of_the_pack_send_what_they_allow_and_the_rest_waits_as_a_batch() -> None:
    choice = choose_calls([batch(*range(10))], {SINGLE: 4}, max_calls=20)
    assert choice.now == [single(i) for i in range(4)]
    assert choice.later == [batch(4, 5, 6, 7, 8, 9)]


def test_the_largest_batch_gets_the_batch_permit() -> None:
    small, large = batch(0, 1), batch(2, 3, 4, 5, 6)
    choice = choose_calls([small, large], {BATCH: 1, SINGLE: 2000}, max_calls=20)
    assert choice.now == [single(0), single(1), large]
    assert choice.permits == {BATCH: 1, SINGLE: 2}


def test_otp_single_calls_come_before_a_batchs_fallback_to_singles() -> None:
    calls = [batch(0, 1, 2), single(3), single(4)]
    choice = choose_calls(calls, {BATCH: 0, SINGLE: 3}, max_calls=20)
    assert choice.now == [single(0), single(3), single(4)]
    assert choice.later == [batch(1, 2)]


def test_calls_that_cannot_be_split_wait_when_their_operation_is_out() -> None:
    calls = [PlannedCall("SendMultiGlobalSms", (0, 1)), PlannedCall("SendMultiGlobalSms", (2,))]
    choice = choose_calls(calls, {"SendMultiGlobalSms": 1}, max_calls=20)
    assert choice == Choice(now=calls[:1], later=calls[1:])


def test_at_most_max_calls_per_choice() -> None:
    calls = [single(i) for i in range(10)]
    choice = choose_calls(calls, {SINGLE: 2000}, max_calls=3)
    assert (choice.now, choice.later) == (calls[:3], calls[3:])


_calls = st.lists(
    st.one_of(
        st.tuples(st.just("batch"), st.integers(1, 6)),
        st.tuples(st.just("single"), st.just(1)),
        st.tuples(st.just("other"), st.integers(1, 6)),
    ),
    max_size=12,
).map(
    lambda shapes: [
        PlannedCall(BATCH, tuple(range(start, start + size)), SINGLE)
        if kind == "batch"
        else PlannedCall(SINGLE if kind == "single" else "Other", tuple(range(start, start + size)))
        for (kind, size), start in zip(shapes, [sum(s for _, s in shapes[:i]) for i in range(len(shapes))], strict=True)
    ]
)


@given(_calls, st.dictionaries(st.sampled_from([BATCH, SINGLE, "Other"]), st.integers(0, 8)), st.integers(0, 10))
def test_choices_never_take_more_than_is_free_and_lose_no_message(
    calls: list[PlannedCall], free: dict[str, int], max_calls: int
) -> None:
    choice = choose_calls(calls, free, max_calls=max_calls)
    assert all(n <= free.get(op, 0) for op, n in choice.permits.items())
    assert len(choice.now) <= max_calls
    carried = sorted(i for call in choice.now + choice.later for i in call.indexes)
    assert carried == sorted(i for call in calls for i in call.indexes)
    assert all(call.operation != BATCH or call.singles == SINGLE for call in choice.now + choice.later)
    assert all(len(call.indexes) == 1 for call in choice.now if call.operation == SINGLE)


def test_defer_delay_is_random_within_what_the_rest_needs_at_full_rate() -> None:
    rng = random.Random(7)
    assert {defer_delay([batch(0)], {BATCH: 1}, rng=rng) for _ in range(50)} == {1}
    waits = {defer_delay([single(i) for i in range(10)], {SINGLE: 2}, rng=rng) for _ in range(200)}
    assert waits == {1, 2, 3, 4, 5}  # 10 calls at 2/s: up to 5 s
    assert max(defer_delay([single(i) for i in range(1000)], {SINGLE: 1}, rng=rng) for _ in range(50)) <= 30
    assert MAX_DEFER_SECONDS == 30


# ---------------------------------------------------------------------------------------------------------------
# Taking permits


def test_when_the_second_is_free_one_acquisition_takes_the_permits() -> None:
    limiter = MemoryRateLimiter({BATCH: 1, SINGLE: 2000})
    choice = acquire_calls(limiter, [batch(0, 1, 2)], 100)
    assert choice.now == [batch(0, 1, 2)]
    assert limiter.granted == [(100, {BATCH: 1})]
    assert limiter.refused == []


def test_when_another_dispatcher_took_the_batch_permit_the_pack_goes_as_singles() -> None:
    limiter = MemoryRateLimiter({BATCH: 1, SINGLE: 2000})
    assert limiter.acquire({BATCH: 1}, second=100)  # somebody else's batch call this second
    choice = acquire_calls(limiter, [batch(0, 1, 2)], 100)
    assert choice.now == [single(0), single(1), single(2)]
    assert limiter.refused == [(100, {BATCH: 1})]
    assert limiter.used[(SINGLE, 100)] == 3
    assert acquire_calls(limiter, [batch(0, 1, 2)], 101).now == [batch(0, 1, 2)]  # the next second is free again


def test_when_nothing_is_free_nothing_is_taken() -> None:
    limiter = MemoryRateLimiter({BATCH: 1, SINGLE: 2})
    assert limiter.acquire({BATCH: 1, SINGLE: 2}, second=100)
    choice = acquire_calls(limiter, [batch(0, 1), single(2)], 100)
    assert choice == Choice(now=[], later=[batch(0, 1), single(2)])
    assert limiter.used == Counter({(BATCH, 100): 1, (SINGLE, 100): 2})


def test_a_choice_spanning_two_operations_takes_both_or_neither() -> None:
    limiter = MemoryRateLimiter({BATCH: 1, SINGLE: 1})
    assert limiter.acquire({SINGLE: 1}, second=100)
    choice = acquire_calls(limiter, [batch(0, 1), single(2)], 100)
    assert choice.now == [batch(0, 1)]  # the single permit is gone: the OTP call waits, the batch goes
    assert choice.later == [single(2)]
    assert limiter.used == Counter({(BATCH, 100): 1, (SINGLE, 100): 1})


def test_every_default_operation_can_be_overridden() -> None:
    assert parse_rate_limits(json.dumps(dict.fromkeys(DEFAULT_RATE_LIMITS, 3))) == dict.fromkeys(DEFAULT_RATE_LIMITS, 3)
