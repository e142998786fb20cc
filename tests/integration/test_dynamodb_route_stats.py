"""Route statistics on moto's RouteStatsTable (created from template.yaml): the adapter's atomic adds and window
reads, a receipt push counted once, and GET /v1/stats/routes through the API handler."""

from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from globesms.aws.dynamodb_route_stats import DynamoDBRouteStats
from globesms.models.outbound import MessageType, ProviderName
from globesms.stats.tally import BucketKey, Tally, bucket_of
from tests.integration.test_dispatch_metrics_emitted import emitted
from tests.integration.test_handlers import RECEIPT_TOKENS, ScriptedProvider, event

A, T = ProviderName.ALIYUN, ProviderName.TENCENT
NOW = datetime(2026, 12, 4, 10, 7, tzinfo=UTC)
BUCKET = bucket_of(NOW.timestamp())


def store_of(stack: Any) -> DynamoDBRouteStats:
    return DynamoDBRouteStats(stack.deployed.context.refs["RouteStatsTable"])


def tally(delivered: int, undelivered: int = 0, slot: int = 1) -> Tally:
    counted = Tally(delivered=delivered, undelivered=undelivered, parts=delivered + undelivered)
    counted.latency[slot] = delivered + undelivered
    return counted


def test_adds_are_summed_per_key_and_a_window_reads_one_country(stack) -> None:  # type: ignore[no-untyped-def]
    store = store_of(stack)
    key = BucketKey("SG", A, MessageType.OTP, BUCKET)
    store.add({key: tally(3, 1), BucketKey("SG", T, MessageType.OTP, BUCKET): tally(2)})
    store.add({key: tally(4)})  # another Lambda, the same bucket: ADD, not overwrite
    store.add({BucketKey("SG", A, MessageType.OTP, BUCKET - 3600): tally(9)})  # before the window
    store.add({BucketKey("MY", A, MessageType.OTP, BUCKET): tally(9)})  # another country
    rows = dict(store.buckets("SG", BUCKET - 900, BUCKET))
    assert set(rows) == {key, BucketKey("SG", T, MessageType.OTP, BUCKET)}
    assert (rows[key].delivered, rows[key].undelivered, rows[key].parts, rows[key].latency[1]) == (7, 1, 8, 8)
    item = stack.dynamodb.get_item(
        TableName=stack.deployed.context.refs["RouteStatsTable"],
        Key={"pk": {"S": "SG"}, "sk": {"S": f"{BUCKET:010d}#aliyun#OTP"}},
    )["Item"]
    assert int(item["expires_at"]["N"]) == BUCKET + 14 * 86_400


def stats_request(query: dict[str, str]) -> dict[str, Any]:
    request = event("send_api_get_message")
    request.update(path="/v1/stats/routes", pathParameters=None, resource="/v1/stats/routes")
    request["queryStringParameters"] = query
    request["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    return request


def accepted_pack(stack: Any, load_handler: Any, lambda_context: Any) -> dict[str, Any]:
    """Two Singapore OTP recipients accepted through the API handler: their Alibaba pack as queued."""
    api = load_handler("send_api")
    body = {"to": ["+6591234567", "+6591234568"], "text": "Your code is 123456", "type": "OTP"}
    accepted = api.lambda_handler({**event("send_api_post_messages"), "body": json.dumps(body)}, lambda_context)
    assert accepted["statusCode"] == 202, accepted["body"]
    (pack,) = stack.receive(A)
    return dict(pack)


def dispatched(pack: dict[str, Any], load_handler: Any, lambda_context: Any) -> None:
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="aliyun")
    dispatch._provider = lambda: ScriptedProvider(name=A)
    request = event("dispatch_aliyun")
    request["Records"][0]["body"] = json.dumps(pack)
    assert dispatch.lambda_handler(request, lambda_context) == {"batchItemFailures": []}


def submitted_pack(stack: Any, load_handler: Any, lambda_context: Any) -> dict[str, Any]:
    """`accepted_pack`, dispatched: its two recipients SUBMITTED."""
    pack = accepted_pack(stack, load_handler, lambda_context)
    dispatched(pack, load_handler, lambda_context)
    return pack


def delivered_push(pack: dict[str, Any]) -> dict[str, Any]:
    """Alibaba's push of a DELIVERED receipt for each of the pack's recipients (ScriptedProvider's ids)."""
    push = event("receipts_aliyun")
    reports = json.loads(push["body"])
    push["body"] = json.dumps(
        [{**reports[0], "MessageId": f"pm-{r['id']}", "TaskId": r["id"], "To": r["to"][1:]} for r in pack["recipients"]]
    )
    return push


def receipts_handler(load_handler: Any, monkeypatch: Any) -> Any:
    """The receipts function, with the providers' receipt tokens it checks."""
    for name, value in RECEIPT_TOKENS.items():
        monkeypatch.setenv(name, value)
    return load_handler("receipts")


def second_save_fails(monkeypatch: Any) -> list[str]:
    """DynamoDB fails the receipt stores' second status write (`save_delivery`), and only that one; returns the ids
    of the records each write was for, in order."""
    store_class = importlib.import_module("globesms.aws.dynamodb_receipts").DynamoDBReceiptStore
    save_delivery = store_class.save_delivery
    calls: list[str] = []

    def second_fails(self: Any, record: Any, *, expected_version: int) -> bool:
        calls.append(record.id)
        if len(calls) == 2:
            raise OSError("DynamoDB unavailable")
        return bool(save_delivery(self, record, expected_version=expected_version))

    monkeypatch.setattr(store_class, "save_delivery", second_fails)
    return calls


def aliyun_in_singapore(load_handler: Any, lambda_context: Any) -> dict[str, Any]:
    """Alibaba's row of GET /v1/stats/routes?country=SG&window=1h."""
    answer = load_handler("send_api").lambda_handler(stats_request({"country": "SG", "window": "1h"}), lambda_context)
    assert answer["statusCode"] == 200, answer["body"]
    shown = json.loads(answer["body"])
    assert shown["currency"] == "USD"
    (aliyun,) = shown["providers"]
    return dict(aliyun)


def test_a_receipt_push_is_counted_once_and_the_api_reports_it(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    pack = submitted_pack(stack, load_handler, lambda_context)
    receipts = receipts_handler(load_handler, monkeypatch)
    push = delivered_push(pack)
    for _ in range(2):  # a repeated push counts nothing more
        assert receipts.lambda_handler(push, lambda_context)["statusCode"] == 200

    aliyun = aliyun_in_singapore(load_handler, lambda_context)
    assert (aliyun["provider"], aliyun["sent"], aliyun["delivered"], aliyun["delivered_rate"]) == ("aliyun", 2, 2, 1.0)
    assert aliyun["cost_per_delivered"] is not None


def test_a_push_reports_its_receipts_and_outcomes_per_provider(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ReceiptsPushed` counts every receipt that matched one of the provider's messages, early (held) and repeated
    ones included: the receipts-stopped alarm reads it. The outcomes count once (the delivery-rate alarm)."""
    pack = accepted_pack(stack, load_handler, lambda_context)
    receipts = receipts_handler(load_handler, monkeypatch)
    capsys.readouterr()
    assert receipts.lambda_handler(delivered_push(pack), lambda_context)["statusCode"] == 200  # held
    dispatched(pack, load_handler, lambda_context)
    assert receipts.lambda_handler(delivered_push(pack), lambda_context)["statusCode"] == 200  # duplicates now
    lines = emitted(capsys.readouterr().out)
    aliyun = {"service": "globesms", "provider": "aliyun"}
    pushed = [line["values"]["ReceiptsPushed"] for line in lines if "ReceiptsPushed" in line["values"]]
    assert pushed == [2, 2] and all(
        line["dimensions"] == aliyun for line in lines if "ReceiptsPushed" in line["values"]
    )
    delivered = [line["values"]["RecipientsDelivered"] for line in lines if "RecipientsDelivered" in line["values"]]
    assert sorted(delivered) == [0, 0, 2]  # each push none, the dispatcher that applied the held ones two


def test_receipts_that_beat_the_submitted_write_are_counted_by_the_dispatcher_that_applies_them(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    pack = accepted_pack(stack, load_handler, lambda_context)
    receipts = receipts_handler(load_handler, monkeypatch)
    assert receipts.lambda_handler(delivered_push(pack), lambda_context)["statusCode"] == 200  # held
    dispatched(pack, load_handler, lambda_context)  # SUBMITTED written, then the held receipts applied

    aliyun = aliyun_in_singapore(load_handler, lambda_context)
    assert (aliyun["sent"], aliyun["delivered"]) == (2, 2)


def test_a_push_whose_follow_ups_fail_is_counted_when_it_comes_again(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    pack = submitted_pack(stack, load_handler, lambda_context)
    receipts = receipts_handler(load_handler, monkeypatch)
    callbacks = importlib.import_module("globesms.callbacks.receipts")
    queue_follow_ups = callbacks._queue_follow_ups

    def queue_down(result: Any) -> None:
        raise OSError("SQS down")

    monkeypatch.setattr(callbacks, "_queue_follow_ups", queue_down)
    with pytest.raises(OSError):  # the provider is answered an error and pushes again
        receipts.lambda_handler(delivered_push(pack), lambda_context)
    monkeypatch.setattr(callbacks, "_queue_follow_ups", queue_follow_ups)
    assert receipts.lambda_handler(delivered_push(pack), lambda_context)["statusCode"] == 200  # duplicates now

    aliyun = aliyun_in_singapore(load_handler, lambda_context)
    assert (aliyun["sent"], aliyun["delivered"]) == (2, 2)  # counted by the first push, whose statuses were written


def test_bad_query_parameters_are_422_naming_the_field(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    for query, field in (
        ({"country": "SG", "window": "3d"}, "window"),
        ({"country": "SG", "window": "soon"}, "window"),
        ({"country": "sg"}, "country"),
        ({"window": "1h"}, "country"),
        ({"country": "SG", "type": "SPAM"}, "type"),
    ):
        answer = api.lambda_handler(stats_request(query), lambda_context)
        assert answer["statusCode"] == 422, (query, answer["body"])
        assert field in answer["body"], (query, answer["body"])


def test_a_push_that_fails_midway_counts_the_reports_it_applied(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    pack = submitted_pack(stack, load_handler, lambda_context)
    receipts = receipts_handler(load_handler, monkeypatch)
    second_save_fails(monkeypatch)
    with pytest.raises(OSError):  # answered an error: the provider pushes again
        receipts.lambda_handler(delivered_push(pack), lambda_context)
    assert receipts.lambda_handler(delivered_push(pack), lambda_context)["statusCode"] == 200

    aliyun = aliyun_in_singapore(load_handler, lambda_context)
    assert (aliyun["sent"], aliyun["delivered"]) == (2, 2)  # the first by the failed push, the second by the repeat
