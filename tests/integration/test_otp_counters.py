"""The OTP guard's counters on the messages table (moto, the table as template.yaml declares it): per-number velocity
never over its limit under concurrent writers, a batch chunk commits once, countries counted and released, and the
number of AWS requests per request (not per recipient)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from globesms.aws.dynamodb_otp import DynamoDBOtpCounters, country_key
from globesms.errors import RecipientCode
from globesms.guardrails import otp_guard
from globesms.guardrails.limits import LimitsDoc
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.records import MessageRecord, message_id
from tests.integration.racing import child_main, moto_messages_table, race_in_child

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
LIMITS = LimitsDoc.model_validate({"version": 1})  # 5 per hour, 10 per day; floor 20 per 5 minutes


def records(batch_id: str, numbers: list[str], country: str = "HK") -> list[MessageRecord]:
    return [
        MessageRecord(
            id=message_id(batch_id, i),
            batch_id=batch_id,
            to=number,
            provider=ProviderName.ALIYUN,
            type=MessageType.OTP,
            status="ACCEPTED",
            text="code 1",
            country=country,
            created_at="2026-12-03T09:00:00Z",
            updated_at="2026-12-03T09:00:00Z",
        )
        for i, number in enumerate(numbers)
    ]


def screen(guard: otp_guard.OtpGuard, batch_id: str, numbers: list[str], **kwargs: Any) -> list[Any]:
    at = kwargs.pop("now", NOW)
    return otp_guard.screen(
        guard, records(batch_id, numbers), LIMITS, batch_id=batch_id, owner=None, now=at, expires_at=2_000_000_000,
        **kwargs,
    )  # fmt: skip


class CountingClient:
    """The boto3 client, counting the requests made through it."""

    def __init__(self, client: Any) -> None:
        self.client, self.calls = client, []

    def __getattr__(self, name: str) -> Any:
        def call(**kwargs: Any) -> Any:
            self.calls.append(name)
            return getattr(self.client, name)(**kwargs)

        return call


def test_a_request_of_many_recipients_costs_a_few_requests_not_one_each(stack) -> None:  # type: ignore[no-untyped-def]
    counting = CountingClient(stack.dynamodb)
    guard = otp_guard.OtpGuard(DynamoDBOtpCounters(stack.table_name, client_factory=lambda: counting))
    numbers = [f"+8525123{n:04d}" for n in range(150)]
    refused = screen(guard, "big", numbers)
    assert len(refused) == 130 and {e.code for e in refused} == {RecipientCode.FRAUD_SUSPECTED}
    # 151 keys: 2 BatchGetItem; 150 numbers: 2 transactions (99 + 51, each with its marker); 1 country: 1 update.
    assert sorted(counting.calls) == ["batch_get_item"] * 2 + ["transact_write_items"] * 2 + ["update_item"]
    one = CountingClient(stack.dynamodb)
    guard = otp_guard.OtpGuard(DynamoDBOtpCounters(stack.table_name, client_factory=lambda: one))
    screen(guard, "one", ["+6591234567"], now=NOW + timedelta(hours=1))
    assert one.calls == ["batch_get_item", "transact_write_items", "update_item"]


def test_one_otp_number_in_thousands_of_specs_is_refused_per_recipient(stack) -> None:  # type: ignore[no-untyped-def]
    # A chunk's marker keeps the chunk's refusals, and every record of a number is in one chunk: 6,000 OTP to one
    # number would make a marker past DynamoDB's 400 KB item, a failed transaction (a 5xx, a dead-lettered intake
    # message). Accept refuses the repeats before the guard, so its marker holds one number's refusals at most.
    from globesms.accept.service import accept
    from globesms.models.api import MessageSpec
    from tests.fakes import MemoryQueues, MemoryStore

    guard = otp_guard.OtpGuard(DynamoDBOtpCounters(stack.table_name))
    body = [MessageSpec.model_validate({"to": "+85251234567", "text": "Your code is 1", "type": "OTP"})] * 6_000
    store, queues = MemoryStore(), MemoryQueues()
    answer = accept(
        body, batch_id="B1", source="api", now=NOW, retention_days=90, store=store, queues=queues, otp=guard
    )
    assert (answer.accepted, answer.rejected) == (1, 5_999)
    assert {e.code for e in answer.errors} == {RecipientCode.DUPLICATE_RECIPIENT}


def test_velocity_a_retried_batch_a_dry_run_and_a_release(stack) -> None:  # type: ignore[no-untyped-def]
    counters = DynamoDBOtpCounters(stack.table_name)
    guard = otp_guard.OtpGuard(counters)
    number = "+85251234567"
    assert screen(guard, "a", [number] * 4) == []
    assert [e.index for e in screen(guard, "b", [number] * 3, dry_run=True)] == [1, 2]  # counted nothing
    assert [e.index for e in screen(guard, "b", [number] * 3)] == [1, 2]
    assert [e.index for e in screen(guard, "b", [number] * 3)] == [1, 2]  # the same batch again: its first answer
    numbers, _ = counters.read([number], [])
    assert sum(numbers[number].five_minutes.values()) == 5
    burst = [f"+8525123{n:04d}" for n in range(40)]
    assert len(screen(guard, "c", burst)) == 40 - 13  # 7 offered earlier (velocity refusals too) + 13 = the floor
    counters.release_country("HK", until=int((NOW + timedelta(hours=1)).timestamp()))
    assert screen(guard, "d", [f"+8525124{n:04d}" for n in range(30)], now=NOW + timedelta(minutes=1)) == []
    item = stack.dynamodb.get_item(TableName=stack.table_name, Key=country_key("HK"))["Item"]
    assert {k for k in item if k[0] in "mh" and k[1:].isdigit()} == {f"m{int(NOW.timestamp()) // 60}",
        f"m{int(NOW.timestamp()) // 60 + 1}", f"h{int(NOW.timestamp()) // 3600}"}  # fmt: skip


def test_the_operator_command_shows_and_releases_a_held_country(
    stack: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from globesms.guardrails.limits import LimitsDoc
    from tools import pumping

    watched = LimitsDoc.model_validate({"version": 1, "pumping": {"prefixes": ["+4470"]}})
    monkeypatch.setattr(pumping, "current_limits", lambda: watched)

    guard = otp_guard.OtpGuard(DynamoDBOtpCounters(stack.table_name))
    now = datetime.now(UTC)
    screen(guard, "burst", [f"+8525123{n:04d}" for n in range(30)], now=now)
    assert pumping.main(["status", "hk", "--table", stack.table_name]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["country"] == "HK" and shown["recent"] == 30 and shown["held"] is True
    assert pumping.main(["release", "HK", "--minutes", "30", "--table", stack.table_name]) == 0
    released = json.loads(capsys.readouterr().out)  # says where: STACK falls back to globesms-dev (a review)
    assert (released["table"], released["stack"], released["country"]) == (stack.table_name, None, "HK")
    assert screen(guard, "after", [f"+8525124{n:04d}" for n in range(30)], now=now) == []
    pumping.main(["status", "HK", "--table", stack.table_name])
    assert json.loads(capsys.readouterr().out)["held"] is False
    assert pumping.main(["release", "+4470", "--minutes", "5", "--table", stack.table_name]) == 0  # a listed prefix
    assert json.loads(capsys.readouterr().out)["country"] == "+4470"
    with pytest.raises(SystemExit):
        pumping.main(["release", "4470", "--table", stack.table_name])  # neither a country nor an E.164 prefix


def test_concurrent_writers_never_let_more_than_the_limit_through() -> None:
    # Through the moto server `make run` starts (a child process: library-mode moto is not safe under concurrent
    # transactions), as concurrent Lambdas reach DynamoDB: each writer its own client, all at once.
    answer = race_in_child(__file__)
    assert answer["passed"] == {n: 5 for n in answer["numbers"]}  # exactly the hourly limit per number, no more
    assert answer["counted"] == {n: 5 for n in answer["numbers"]}  # the counters agree with what passed
    assert answer["requests"] == 8 * 6


def _race(writers: int = 8, requests: int = 6) -> dict[str, Any]:
    import boto3

    with moto_messages_table() as url:
        # Every request asks for one OTP to each of the same 3 numbers (each number 48 times against a limit of 5);
        # the pumping floor is raised so that only the velocity limit decides.
        numbers = ["+85251234567", "+85251234568", "+85251234569"]
        limits = LimitsDoc.model_validate({"version": 1, "pumping": {"floor": 10_000}})
        passed = dict.fromkeys(numbers, 0)
        done: list[int] = []
        lock = threading.Lock()
        start = threading.Barrier(writers)

        def writer(n: int) -> None:
            client = boto3.client("dynamodb", endpoint_url=url)
            guard = otp_guard.OtpGuard(DynamoDBOtpCounters("messages", client_factory=lambda: client))
            start.wait()
            for i in range(requests):
                batch = f"w{n}-{i}"
                refused = otp_guard.screen(
                    guard, records(batch, numbers), limits, batch_id=batch, owner=None, now=NOW, expires_at=0
                )
                with lock:
                    done.append(1)
                    for index, number in enumerate(numbers):
                        passed[number] += index not in {e.index for e in refused}

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        reader = DynamoDBOtpCounters("messages", client_factory=lambda: boto3.client("dynamodb", endpoint_url=url))
        counts, _ = reader.read(numbers, [])
        counted = {n: sum(counts[n].five_minutes.values()) for n in numbers}
        return {"numbers": numbers, "passed": passed, "counted": counted, "requests": len(done)}


if __name__ == "__main__":
    child_main(_race)


def test_the_pumping_status_with_an_unusable_limits_parameter_is_one_line_not_a_traceback(  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """An invalid guardrails parameter with no good one read raises DocumentUnavailable (no falling back to the
    shipped rule): the tool said it in a traceback (found by a review)."""
    import boto3
    from aws_lambda_powertools.utilities.parameters import base
    from moto import mock_aws

    from globesms.config import settings
    from globesms.guardrails import limits
    from local.aws import create_messages_like_table
    from tools import pumping

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("GLOBESMS_GUARDRAILS_PARAMETERS", "/g")
    settings.cache_clear()
    limits._limits.reset()
    base.DEFAULT_PROVIDERS.clear()
    try:
        with mock_aws():
            create_messages_like_table(boto3.client("dynamodb"))
            boto3.client("ssm").put_parameter(Name="/g/limits", Value="{not json", Type="String")
            code = pumping.main(["status", "HK", "--table", "messages"])
        assert code != 0 and "Traceback" not in capsys.readouterr().err
    finally:
        settings.cache_clear()
        limits._limits.reset()
        base.DEFAULT_PROVIDERS.clear()
