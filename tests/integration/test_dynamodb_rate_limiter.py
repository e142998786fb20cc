"""The shared rate limiter on the messages table (moto, the table as template.yaml declares it), and the limit
holding across dispatchers running at the same time."""

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError

from globesms.aws import clients
from globesms.aws.dynamodb_claims import DynamoDBPackClaims
from globesms.aws.dynamodb_rate_limiter import COUNTER_TTL_SECONDS, DynamoDBRateLimiter, counter_key
from globesms.aws.dynamodb_receipts import DynamoDBReceiptStore
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.dispatch.service import DispatchDeps, dispatch_pack
from globesms.domain.clock import utc_now
from globesms.domain.status import Status
from globesms.models.outbound import OutboundSms, ProviderName
from globesms.models.packs import DispatchPack
from tests.fakes import MemoryQueues, MemoryWebhooks, ScriptedProvider

SECOND = 1_800_000_000


def test_permits_are_taken_up_to_the_limit_and_no_further(stack) -> None:  # type: ignore[no-untyped-def]
    limiter = DynamoDBRateLimiter(stack.table_name, {"Op": 3})
    assert limiter.free(["Op"], second=SECOND) == {"Op": 3}
    assert limiter.acquire({"Op": 2}, second=SECOND)
    assert not limiter.acquire({"Op": 2}, second=SECOND)  # 2 + 2 > 3: nothing taken
    assert limiter.free(["Op"], second=SECOND) == {"Op": 1}
    assert limiter.acquire({"Op": 1}, second=SECOND)
    assert not limiter.acquire({"Op": 1}, second=SECOND)
    assert limiter.acquire({"Op": 3}, second=SECOND + 1)  # every second starts afresh
    assert not limiter.acquire({"Op": 4}, second=SECOND + 2)  # more than a whole second's permits: never
    assert limiter.free(["Op"], second=SECOND + 2) == {"Op": 3}


def test_a_counter_is_one_item_per_operation_and_second_that_expires(stack) -> None:  # type: ignore[no-untyped-def]
    limiter = DynamoDBRateLimiter(stack.table_name, {"SendMultiGlobalSms": 10})
    assert limiter.acquire({"SendMultiGlobalSms": 4}, second=SECOND)
    item = stack.dynamodb.get_item(TableName=stack.table_name, Key=counter_key("SendMultiGlobalSms", SECOND))["Item"]
    assert item["pk"] == {"S": f"L#SendMultiGlobalSms#{SECOND}"}
    assert item["sk"] == {"S": "#"}
    assert (item["used"], item["expires_at"]) == ({"N": "4"}, {"N": str(SECOND + COUNTER_TTL_SECONDS)})


def test_permits_of_two_operations_are_taken_both_or_neither(stack) -> None:  # type: ignore[no-untyped-def]
    limiter = DynamoDBRateLimiter(stack.table_name, {"BatchSendMessageToGlobe": 1, "SendMessageToGlobe": 5})
    assert limiter.acquire({"BatchSendMessageToGlobe": 1}, second=SECOND)
    # SendMessageToGlobe is taken first (sorted order), then the batch permit is short: the singles are given back.
    assert not limiter.acquire({"SendMessageToGlobe": 2, "BatchSendMessageToGlobe": 1}, second=SECOND)
    assert limiter.free(["SendMessageToGlobe", "BatchSendMessageToGlobe"], second=SECOND) == {
        "BatchSendMessageToGlobe": 0,
        "SendMessageToGlobe": 5,
    }
    assert limiter.acquire({"SendMessageToGlobe": 5}, second=SECOND)


def test_an_operation_without_a_rate_is_an_error(stack) -> None:  # type: ignore[no-untyped-def]
    limiter = DynamoDBRateLimiter(stack.table_name, {"Op": 1})
    with pytest.raises(KeyError, match="no rate limit configured for provider operation 'Other'"):
        limiter.acquire({"Other": 1}, second=SECOND)


# ---------------------------------------------------------------------------------------------------------------
# Concurrent dispatchers


class Serialized:
    """DynamoDB applies each (conditional) write to an item atomically; moto in-process takes no lock, so the
    threads' DynamoDB calls are made one at a time here. The dispatchers still interleave between calls."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


class CallLog:
    """What a provider saw: calls per wall-clock second (as the providers and the emulators count them) and how
    often each message was sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.per_second: Counter[int] = Counter()
        self.sent: Counter[str] = Counter()

    def answer(self, message: OutboundSms) -> None:
        with self._lock:
            self.per_second[int(time.time())] += 1
            self.sent[message.message_id] += 1


def a_pack(n: int, size: int) -> DispatchPack:
    return DispatchPack.model_validate(
        {
            "pack_id": f"B{n}:aliyun:0",
            "batch_id": f"B{n}",
            "provider": "aliyun",
            "created_at": "2026-11-26T09:59:00.000000Z",
            "contents": [{"type": "OTP", "text": "code 1", "sender_id": "Acme"}],
            "recipients": [{"id": f"B{n}.{i:05d}", "to": f"+852512{n:02d}{i:03d}", "c": 0} for i in range(size)],
        }
    )


def test_a_give_back_whose_answer_is_lost_is_not_applied_twice(stack) -> None:  # type: ignore[no-untyped-def]
    """The give-back is a plain decrement: botocore's retry after a lost answer (a read timeout, a reset) would
    apply it again, leaving the second one permit more than its limit for every later dispatcher."""
    limits = {"BatchSendMessageToGlobe": 1, "SendMessageToGlobe": 1}
    side = boto3.client("dynamodb")  # lands the write whose answer is then lost
    lost: list[str] = []

    def land_then_lose_the_answer(request: Any, **_: Any) -> None:
        if b":minus" in request.body and not lost:
            side.update_item(**json.loads(request.body))
            lost.append("give-back")
            raise ReadTimeoutError(endpoint_url=request.url)

    for client in (clients.dynamodb(), clients.dynamodb_once()):
        client.meta.events.register_first("before-send.dynamodb.UpdateItem", land_then_lose_the_answer)
    limiter = DynamoDBRateLimiter(stack.table_name, limits)
    assert limiter.acquire({"SendMessageToGlobe": 1}, second=SECOND)
    # Takes the batch permit, finds no single one, gives the batch permit back: the answer to that is lost.
    assert not limiter.acquire({"BatchSendMessageToGlobe": 1, "SendMessageToGlobe": 1}, second=SECOND)
    assert lost == ["give-back"]
    assert limiter.free(["BatchSendMessageToGlobe"], second=SECOND) == {"BatchSendMessageToGlobe": 1}
    granted = [limiter.acquire({"BatchSendMessageToGlobe": 1}, second=SECOND) for _ in range(2)]
    assert granted == [True, False]  # the one batch permit of the second, once


def test_the_limit_holds_across_concurrent_dispatchers_and_no_recipient_is_lost(stack) -> None:  # type: ignore[no-untyped-def]
    dispatchers, pack_size, limit = 4, 3, 2
    client = Serialized(clients.dynamodb())
    store = DynamoDBMessageStore(stack.table_name, lambda: client)
    claims = DynamoDBPackClaims(stack.table_name, lambda: client)
    receipts = DynamoDBReceiptStore(stack.table_name, lambda: client)
    limiter = DynamoDBRateLimiter(stack.table_name, {"Op": limit}, lambda: client)
    log = CallLog()
    provider = ScriptedProvider(operation="Op", one_call_per_message=True, answer=log.answer)  # type: ignore[arg-type]
    packs = [a_pack(n, pack_size) for n in range(dispatchers)]
    left: dict[int, list[DispatchPack]] = {}
    deferrals: Counter[int] = Counter()
    failures: list[BaseException] = []
    deadline = time.monotonic() + 30

    def dispatcher(n: int) -> None:
        queue = [packs[n]]  # this dispatcher's queue: its pack, then whatever it puts back
        try:
            while queue and time.monotonic() < deadline:
                queues = MemoryQueues()
                deps = DispatchDeps(
                    provider=provider,
                    store=store,
                    claims=claims,
                    queues=queues,
                    receipts=receipts,
                    webhooks=MemoryWebhooks(),
                    limiter=limiter,
                )
                summary = dispatch_pack(queue.pop(0), deps, now=utc_now(), last_attempt=False)
                queue.extend(queues.sent[ProviderName.ALIYUN])
                if summary.deferred:
                    deferrals[n] += 1
                    time.sleep(0.05)  # SQS would hold it back for `DelaySeconds`; shortened for the test
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        left[n] = queue

    threads = [threading.Thread(target=dispatcher, args=(n,)) for n in range(dispatchers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert log.per_second and max(log.per_second.values()) <= limit, log.per_second
    assert sum(deferrals.values()) > 0  # the packs did wait for permits: the limit was in play
    assert all(n == 1 for n in log.sent.values())  # nobody was texted twice
    requeued = {r.id for queue in left.values() for p in queue for r in p.recipients}
    for p in packs:
        for recipient in p.recipients:
            found = store.get_message(recipient.id)
            submitted = found is not None and found[0].status is Status.SUBMITTED
            assert submitted or recipient.id in requeued, recipient.id
            assert submitted == (log.sent[recipient.id] == 1)
