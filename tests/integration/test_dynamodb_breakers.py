from datetime import UTC, datetime, timedelta

from globesms.aws.dynamodb_breakers import DynamoDBCircuitBreakers
from globesms.models.outbound import ProviderName
from globesms.ports import BreakerState

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
T, H = ProviderName.TENCENT, ProviderName.HUAWEI


def test_failures_in_a_row_open_the_breaker_for_the_cooldown_and_an_answer_closes_it(stack) -> None:  # type: ignore[no-untyped-def]
    breakers = DynamoDBCircuitBreakers(stack.table_name)
    assert breakers.state(T) == BreakerState()
    for expected in (1, 2):
        state = breakers.record_failure(T, now=NOW, failures_to_open=3, cooldown_seconds=60)
        assert state == BreakerState(expected, 0) and not state.is_open(NOW)
    opened = breakers.record_failure(T, now=NOW, failures_to_open=3, cooldown_seconds=60)
    assert opened.is_open(NOW) and not opened.is_open(NOW + timedelta(seconds=60))
    assert breakers.state(T) == opened
    assert breakers.state(H) == BreakerState()  # one breaker per provider
    breakers.record_success(T)
    assert breakers.state(T) == BreakerState()
