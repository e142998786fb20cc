"""aws/batch_reads.py: BatchGetItem in requests of at most 100 keys, unprocessed keys asked again after a pause, and
a read that fails rather than spin when DynamoDB keeps leaving keys unprocessed."""

from typing import Any

import pytest

from globesms.aws import batch_reads
from globesms.aws.batch_reads import READ_ATTEMPTS, batch_get


class ThrottledClient:
    """Answers each request with its first key's item; leaves the rest unprocessed `throttled` times in all."""

    def __init__(self, throttled: int) -> None:
        self.throttled = throttled
        self.requests: list[dict[str, Any]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # boto3's parameter name
        self.requests.append(RequestItems)
        wanted = RequestItems["t"]
        keys = wanted["Keys"]
        answer: dict[str, Any] = {"Responses": {"t": [{"pk": {"S": k["pk"]["S"]}} for k in keys]}}
        if self.throttled and len(keys) > 1:
            self.throttled -= 1
            answer = {
                "Responses": {"t": [{"pk": {"S": keys[0]["pk"]["S"]}}]},
                "UnprocessedKeys": {"t": {**wanted, "Keys": keys[1:]}},
            }
        return answer


def keys(count: int) -> list[dict[str, Any]]:
    return [{"pk": {"S": f"k{n}"}} for n in range(count)]


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(batch_reads.time, "sleep", slept.append)
    return slept


def test_every_key_is_read_once_in_requests_of_at_most_100(pauses: list[float]) -> None:
    client = ThrottledClient(throttled=0)
    found = [item["pk"]["S"] for item in batch_get(client, "t", keys(250), projection="sk", names={"#s": "status"})]
    assert sorted(found) == sorted(k["pk"]["S"] for k in keys(250))
    assert [len(r["t"]["Keys"]) for r in client.requests] == [100, 100, 50]
    assert client.requests[0]["t"]["ConsistentRead"] is True
    assert client.requests[0]["t"]["ProjectionExpression"] == "sk"
    assert pauses == []


def test_unprocessed_keys_are_asked_again_after_a_growing_pause(pauses: list[float]) -> None:
    client = ThrottledClient(throttled=3)
    found = [item["pk"]["S"] for item in batch_get(client, "t", keys(10), consistent=False)]
    assert sorted(found) == sorted(k["pk"]["S"] for k in keys(10))
    assert [len(r["t"]["Keys"]) for r in client.requests] == [10, 9, 8, 7]
    assert "ConsistentRead" not in client.requests[0]["t"]
    assert len(pauses) == 3 and pauses[0] < 0.1 and all(0 < p <= 2.0 for p in pauses)


def test_a_read_left_unprocessed_every_time_fails_rather_than_spin(pauses: list[float]) -> None:
    client = ThrottledClient(throttled=10**6)
    with pytest.raises(RuntimeError, match="unprocessed after retries"):
        list(batch_get(client, "t", keys(READ_ATTEMPTS + 5)))
    assert len(client.requests) == READ_ATTEMPTS
