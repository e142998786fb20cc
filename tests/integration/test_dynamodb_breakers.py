import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from globesms.aws.dynamodb_breakers import DynamoDBCircuitBreakers
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.config import AcceptSettings, settings
from globesms.models.outbound import ProviderName
from globesms.ports import BreakerState

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
T, H = ProviderName.TENCENT, ProviderName.HUAWEI
EVENTS = Path(__file__).resolve().parents[2] / "events"


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


def _intake(load_handler: Any, lambda_context: Any, batch_id: str) -> dict[str, Any]:
    request = json.loads((EVENTS / "intake_batch.json").read_text())
    send_at = (datetime.now(UTC) + timedelta(hours=3)).isoformat()  # held: the cancel then cancels it
    body = {"batch_id": batch_id, "to": "+85251234567", "text": "hello", "send_at": send_at}
    request["Records"] = [{**request["Records"][0], "body": json.dumps(body)}]
    answer: dict[str, Any] = load_handler("intake").lambda_handler(request, lambda_context)
    return answer


def _call(load_handler: Any, lambda_context: Any, method: str, batch_id: str) -> tuple[int, dict[str, Any]]:
    api = load_handler("send_api")
    request = json.loads((EVENTS / "send_api_get_batch.json").read_text())
    request.update(httpMethod=method, path=f"/v1/batches/{batch_id}", pathParameters={"id": batch_id})
    request["requestContext"]["httpMethod"] = method
    request["requestContext"]["identity"]["apiKeyId"] = settings(AcceptSettings).intake_owner
    response = api.lambda_handler(request, lambda_context)
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize("provider", list(ProviderName))
def test_a_batch_named_like_a_provider_is_not_its_breaker(stack, load_handler, lambda_context, provider) -> None:  # type: ignore[no-untyped-def]
    # The breakers were kept at `B#<provider>`, `#`: the header key of the batch of that id. Every pack sent
    # rewrote it, so polling or cancelling batch "aliyun" failed (502: a breaker is no header) and an intake body
    # naming it failed on every receive, into the dead-letter queue.
    breakers = DynamoDBCircuitBreakers(stack.table_name)
    breakers.record_success(provider)
    breakers.record_failure(provider, now=NOW, failures_to_open=1, cooldown_seconds=60)
    assert [_call(load_handler, lambda_context, m, provider)[0] for m in ("GET", "DELETE")] == [404, 404]
    assert _intake(load_handler, lambda_context, provider) == {"batchItemFailures": []}
    assert breakers.state(provider).is_open(NOW)  # accepting the batch left its breaker as it was
    status, batch = _call(load_handler, lambda_context, "GET", provider)
    assert (status, batch["batch_id"], batch["accepted"]) == (200, provider, 1)
    status, canceled = _call(load_handler, lambda_context, "DELETE", provider)
    assert status == 200, canceled
    breakers.record_success(provider)
    assert _call(load_handler, lambda_context, "GET", provider)[1]["state"] == batch["state"]


def test_a_breaker_left_at_a_header_key_by_an_older_version_is_no_batch(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    # Upgraded tables keep the old breaker items (nothing reads them); the batch of that id is still unknown, and
    # may be accepted (its header replaces the orphan).
    orphan = {"pk": {"S": "B#tencent"}, "sk": {"S": "#"}, "failures": {"N": "0"}}
    stack.dynamodb.put_item(TableName=stack.table_name, Item=orphan)
    store = DynamoDBMessageStore(stack.table_name)
    assert store.get_batch("tencent") is None
    assert _call(load_handler, lambda_context, "GET", "tencent")[0] == 404
    assert _intake(load_handler, lambda_context, "tencent") == {"batchItemFailures": []}
    header = store.get_batch("tencent")
    assert header is not None and (header.state, header.accepted) == ("QUEUED", 1)
