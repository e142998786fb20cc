"""Scheduled sends against moto built from template.yaml, through the real handlers: the API holds a send_at
request (SCHEDULED), the sweep turns its index bucket into a release message, SchedulerFunction releases it onto the
provider queue; a cancel before the release leaves it CANCELED and nothing on any provider queue."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from globesms.aws.dynamodb_claims import DynamoDBPackClaims
from globesms.aws.dynamodb_schedule import DynamoDBScheduleStore
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.aws.sqs_releases import SqsReleaseQueue
from globesms.models.outbound import ProviderName
from globesms.models.records import BatchRecord
from globesms.ports import Claim, SweepCursor
from globesms.scheduling.sweep import sweep
from globesms.scheduling.timing import bucket_of, parse_iso
from tests.integration.conftest import MotoStack
from tests.integration.gateway import InProcessApi

EVENTS = Path(__file__).resolve().parents[2] / "events"


@pytest.fixture
def api(load_handler, lambda_context) -> InProcessApi:  # type: ignore[no-untyped-def]
    return InProcessApi(load_handler("send_api").lambda_handler, lambda_context)


def _release_queue(stack: MotoStack) -> str:
    return stack.deployed.context.refs["ReleaseQueue"]


def _releases(stack: MotoStack) -> list[dict[str, Any]]:
    got = stack.sqs.receive_message(QueueUrl=_release_queue(stack), MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def _release_event(*bodies: dict[str, Any]) -> dict[str, Any]:
    template = json.loads((EVENTS / "scheduler_release.json").read_text())["Records"][0]
    return {"Records": [{**template, "messageId": f"m-{i}", "body": json.dumps(b)} for i, b in enumerate(bodies)]}


def _all_packs(stack: MotoStack) -> list[dict[str, Any]]:
    return [pack for provider in ProviderName for pack in stack.receive(provider)]


def test_a_far_send_at_is_indexed_swept_and_released(  # type: ignore[no-untyped-def]
    stack: MotoStack, api: InProcessApi, load_handler, lambda_context, monkeypatch: pytest.MonkeyPatch, counted
) -> None:
    send_at = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    sent = api.call(
        "POST",
        "/v1/messages",
        body={"to": ["+6591234567", "+85251234567"], "text": "sale", "send_at": send_at.isoformat()},
    )
    assert sent.status == 202, sent.body
    answer = sent.json()
    assert {(m["status"], parse_iso(m["send_at"])) for m in answer["messages"]} == {("SCHEDULED", send_at)}
    assert _all_packs(stack) == [] and _releases(stack) == []  # held in the table, indexed: nothing queued yet
    message = api.call("GET", f"/v1/messages/{answer['messages'][0]['id']}").json()
    assert (message["status"], parse_iso(message["send_at"])) == ("SCHEDULED", send_at)

    store = DynamoDBScheduleStore(stack.table_name)
    releases = SqsReleaseQueue(_release_queue(stack))
    assert store.advance_sweep_cursor(None, SweepCursor(bucket_of(send_at - timedelta(minutes=40))))  # as left by
    # the sweeps since the deployment (its first starts six hours back: timing.FIRST_SWEEP_BACK)
    assert sweep(store, releases, now=send_at - timedelta(minutes=30)).releases == 0
    assert sweep(store, releases, now=send_at + timedelta(seconds=1)).releases == 1  # delay 0: due already
    (body,) = _releases(stack)
    assert body == {"batch_id": answer["batch_id"], "send_at": answer["messages"][0]["send_at"]}

    scheduler = load_handler("scheduler")
    monkeypatch.setattr(scheduler, "utc_now", lambda: send_at + timedelta(seconds=1))  # the release is due
    assert scheduler.lambda_handler(_release_event(body), lambda_context) == {"batchItemFailures": []}
    (pack,) = _all_packs(stack)
    assert sorted(r["to"] for r in pack["recipients"]) == ["+6591234567", "+85251234567"]
    assert pack["pack_id"].startswith(f"{answer['batch_id']}@")
    counted[0].read()  # the status counts read the release's moves from the stream
    batch = api.call("GET", f"/v1/batches/{answer['batch_id']}").json()
    assert batch["counts"] == {"QUEUED": 2}
    # Released, but no dispatcher holds its pack yet: still cancelable. The pack on the queue is then skipped.
    late = api.call("DELETE", f"/v1/batches/{answer['batch_id']}").json()
    assert late == {"canceled": sorted(m["id"] for m in answer["messages"]), "not_cancelable": []}
    claims = DynamoDBPackClaims(stack.table_name)
    assert claims.claim(pack["pack_id"], now=send_at, lease_seconds=120) is Claim.CANCELED


def test_a_cancel_before_the_release_sends_nothing(  # type: ignore[no-untyped-def]
    stack: MotoStack, api: InProcessApi, load_handler, lambda_context
) -> None:
    send_at = datetime.now(UTC) + timedelta(minutes=5)  # within the direct window: a delayed release message
    answer = api.call(
        "POST",
        "/v1/messages",
        body={"to": ["+6591234567", "+6591234568"], "text": "hi", "send_at": send_at.isoformat()},
    ).json()
    first, second = (m["id"] for m in answer["messages"])
    assert api.call("GET", "/v1/usage").json()["deployment"]["spent"] != "0"  # reserved at accept
    one = api.call("DELETE", f"/v1/messages/{first}")
    assert (one.status, one.json()) == (200, {"canceled": [first], "not_cancelable": []})
    rest = api.call("DELETE", f"/v1/batches/{answer['batch_id']}").json()
    assert rest == {"canceled": [first, second], "not_cancelable": []}
    assert api.call("GET", f"/v1/messages/{first}").json()["status"] == "CANCELED"
    assert api.call("GET", f"/v1/messages/{first}").json()["events"][-1]["status"] == "CANCELED"
    assert api.call("GET", "/v1/usage").json()["deployment"]["spent"] == "0"  # given back: never to be charged
    # The release, whenever it comes, finds nothing left to send.
    scheduler = load_handler("scheduler")
    release = {"batch_id": answer["batch_id"], "send_at": answer["messages"][0]["send_at"]}
    stamp = parse_iso(release["send_at"])
    assert stamp > datetime.now(UTC)  # still ahead: the handler queues it again for then
    scheduler.lambda_handler(_release_event(release), lambda_context)
    assert _all_packs(stack) == []
    store = DynamoDBScheduleStore(stack.table_name)
    assert [r.status for r in store.cancel_scheduled([first], now=stamp)[0]] == []


def test_a_cancel_while_the_batch_is_being_accepted_is_answered_409_to_retry(
    api: InProcessApi, stack: MotoStack
) -> None:
    batch_id = "01JDSTILLACCEPTING00000000"
    header = BatchRecord(
        batch_id=batch_id, source="api", state="ACCEPTING", created_at="2026-12-06T00:00:00.000000Z", accepted=2
    )  # its accept about to write its two records
    assert DynamoDBMessageStore(stack.table_name).begin_batch(header) is None
    answer = api.call("DELETE", f"/v1/batches/{batch_id}")
    assert (answer.status, answer.json()["error"]["code"]) == (409, "BATCH_STILL_ACCEPTING")
    assert answer.header("Retry-After") == "2"


def test_the_cancel_routes_answer_404_and_send_at_422(api: InProcessApi) -> None:
    assert api.call("DELETE", "/v1/messages/nope.00000").status == 404
    assert api.call("DELETE", "/v1/batches/nope").status == 404
    refused = api.call("POST", "/v1/messages", body={"to": "+6591234567", "text": "hi", "send_at": "2001-01-01T00:00Z"})
    assert refused.status == 422
    assert [f["field"] for f in refused.json()["error"]["fields"]] == ["send_at"]


def test_the_scheduler_handles_its_events_files(stack: MotoStack, load_handler, lambda_context, capsys) -> None:  # type: ignore[no-untyped-def]
    scheduler = load_handler("scheduler")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Powertools warns when a flush has no metric: a sweep always has one
        swept = scheduler.lambda_handler(json.loads((EVENTS / "scheduler_sweep.json").read_text()), lambda_context)
    assert swept["releases"] == 0
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert [m.get("ScheduledReleasesQueued") for m in emitted] == [[0.0]]
    answer = scheduler.lambda_handler(json.loads((EVENTS / "scheduler_release.json").read_text()), lambda_context)
    # The first names a batch with nothing held (nothing to do); the second is no release body: it fails alone.
    assert answer == {"batchItemFailures": [{"itemIdentifier": "00000000-0000-0000-0000-000000000002"}]}


def test_the_release_index_is_read_a_page_at_a_time_and_the_cursor_keeps_its_place_inside_a_bucket(
    stack: MotoStack,
) -> None:
    """The DynamoDB adapter's pages (Limit, ExclusiveStartKey) and the cursor's `within`, which a cursor written by
    a version without it lacks (the condition reads its absence)."""
    from globesms.ports import ReleaseRef

    store = DynamoDBScheduleStore(stack.table_name)
    bucket = "202612050000"
    refs = [ReleaseRef(f"b{n}", "2026-12-05T00:00:30.000000Z") for n in range(5)]
    for ref in reversed(refs):
        store.index_release(bucket, ref, expires_at=0)
    first, more = store.indexed_releases(bucket, limit=2)
    second, _ = store.indexed_releases(bucket, after=first[-1], limit=2)
    rest, last = store.indexed_releases(bucket, after=second[-1], limit=10)
    assert (first + second + rest, more, last) == (refs, True, False)

    stack.dynamodb.put_item(  # as an older version left it
        TableName=stack.table_name,
        Item={"pk": {"S": "SCHED#CURSOR"}, "sk": {"S": "#"}, "bucket": {"S": "202612042359"}},
    )
    old = store.sweep_cursor()
    assert old == SweepCursor("202612042359")
    partway = SweepCursor("202612042359", refs[1])
    assert store.advance_sweep_cursor(old, partway) and store.sweep_cursor() == partway
    assert not store.advance_sweep_cursor(old, SweepCursor(bucket))  # moved since `old` was read
    assert store.advance_sweep_cursor(partway, SweepCursor(bucket)) and store.sweep_cursor() == SweepCursor(bucket)
