"""The dispatch handler bounds each pack's provider calls by what is left of its invocation (Lambda's context):
a call that could still be waiting for its answer when the function times out is not started, and its recipients
go back on the queue, never to be settled as possibly sent."""

import json
from pathlib import Path
from typing import Any

from globesms.aws.dynamodb_claims import DynamoDBPackClaims
from globesms.dispatch.rate_limits import RECORDING_RESERVE_SECONDS
from globesms.models.outbound import ProviderName
from tests.fakes import ScriptedProvider

EVENTS = Path(__file__).resolve().parents[2] / "events"
PACK_ID = json.loads(json.loads((EVENTS / "dispatch_aliyun.json").read_text())["Records"][0]["body"])["pack_id"]


def dispatch_with(load_handler: Any, lambda_context: Any, monkeypatch: Any, remaining: float) -> ScriptedProvider:
    monkeypatch.setattr(lambda_context, "get_remaining_time_in_millis", lambda: int(remaining * 1000), raising=False)
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="aliyun")
    scripted = ScriptedProvider(name=ProviderName.ALIYUN)
    scripted.longest_call_seconds = 13.0  # the default timeouts: 3 s to connect, 10 s for the answer
    dispatch._provider = lambda: scripted
    event = json.loads((EVENTS / "dispatch_aliyun.json").read_text())
    assert dispatch.lambda_handler(event, lambda_context) == {"batchItemFailures": []}
    return scripted


def test_a_pack_with_too_little_of_the_invocation_left_for_a_call_is_put_back_unsent(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    scripted = dispatch_with(load_handler, lambda_context, monkeypatch, remaining=RECORDING_RESERVE_SECONDS + 12.0)
    assert scripted.calls == []
    # Queued again with a delay, as recipients without a rate-limit permit are (noted on the pack's claim first).
    assert DynamoDBPackClaims(stack.table_name).notes(PACK_ID).requeued.deferred == (0, 1)


def test_a_pack_with_time_for_its_call_is_sent(stack, load_handler, lambda_context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # 13 s for the call, and room for what comes before it on a loaded machine (with 1 s of room it was flaky: the
    # claim, the limiter's round trips and the wait for a usable second took it under).
    scripted = dispatch_with(load_handler, lambda_context, monkeypatch, remaining=RECORDING_RESERVE_SECONDS + 20.0)
    assert len(scripted.calls) == 1
