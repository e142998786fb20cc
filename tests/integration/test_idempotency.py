"""Idempotency keys: the API's `Idempotency-Key` header and the SQS intake's `idempotency_key`, end to end through
the real handlers, on moto tables and queues built from template.yaml (IdempotencyTable included)."""

import json
import time
from pathlib import Path
from typing import Any

import pytest

from globesms.accept.idempotency import MAX_REPLAYED_ERRORS, AnswerSerializer
from globesms.domain.ids import FIRST_MESSAGE_ID
from globesms.models.errors import RecipientError
from globesms.models.outbound import ProviderName
from globesms.models.views import AcceptResponse

EVENTS = Path(__file__).resolve().parents[2] / "events"
BODY = {"to": ["+85251234567", "+6591234567"], "text": "Your parcel is on its way", "client_ref": "order-42"}


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return loaded


def post(
    api: Any,
    lambda_context: Any,
    body: Any,
    key: str | list[str] | None,
    *,
    header: str = "Idempotency-Key",
    api_key_id: str = "local-api-key",
) -> dict[str, Any]:
    request = event("send_api_post_idempotent")
    for name in [n for n in request["headers"] if n.lower() == "idempotency-key"]:
        del request["headers"][name], request["multiValueHeaders"][name]
    if key is not None:
        values = key if isinstance(key, list) else [key]
        request["headers"][header] = values[-1]
        request["multiValueHeaders"][header] = values
    request["requestContext"]["identity"]["apiKeyId"] = api_key_id
    request["body"] = json.dumps(body)
    response: dict[str, Any] = api.lambda_handler(request, lambda_context)
    return response


def sqs_event(*bodies: Any, first_id: int = 1) -> dict[str, Any]:
    template = event("intake_batch")["Records"][0]
    records = []
    for offset, body in enumerate(bodies):
        record = json.loads(json.dumps(template))
        record["messageId"] = f"00000000-0000-0000-0000-{first_id + offset:012d}"
        record["receiptHandle"] = f"handle-{first_id + offset}"
        record["body"] = body if isinstance(body, str) else json.dumps(body)
        records.append(record)
    return {"Records": records}


def batch_ids(stack: Any) -> list[str]:
    items = stack.dynamodb.scan(TableName=stack.table_name)["Items"]
    return sorted(item["pk"]["S"].removeprefix("B#") for item in items if item["sk"]["S"] == "#")


def header(stack: Any, batch_id: str) -> dict[str, Any]:
    item: dict[str, Any] = stack.dynamodb.get_item(
        TableName=stack.table_name, Key={"pk": {"S": f"B#{batch_id}"}, "sk": {"S": "#"}}
    )["Item"]
    return item


def drain_packs(stack: Any) -> list[dict[str, Any]]:
    packs: list[dict[str, Any]] = []
    for provider in ProviderName:
        while received := stack.receive(provider):  # received packs stay invisible (visibility timeout)
            packs.extend(received)
    return packs


def recipients(packs: list[dict[str, Any]]) -> list[str]:
    return sorted(r["to"] for pack in packs for r in pack["recipients"])


def idempotency_table(stack: Any) -> str:
    name: str = stack.deployed.context.refs["IdempotencyTable"]
    return name


def idempotency_items(stack: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = stack.dynamodb.scan(TableName=idempotency_table(stack))["Items"]
    return items


def make_in_progress(stack: Any, *, expires_in_ms: int) -> None:
    """What a run still going on (or one that died) leaves behind: its record INPROGRESS, no answer."""
    (item,) = idempotency_items(stack)
    stack.dynamodb.update_item(
        TableName=idempotency_table(stack),
        Key={"id": item["id"]},
        UpdateExpression="SET #s = :s, in_progress_expiration = :e REMOVE #d",
        ExpressionAttributeNames={"#s": "status", "#d": "data"},
        ExpressionAttributeValues={
            ":s": {"S": "INPROGRESS"},
            ":e": {"N": str(int(time.time() * 1000) + expires_in_ms)},
        },
    )


# ---------------------------------------------------------------- POST /v1/messages


def test_an_attempt_that_failed_after_queueing_is_resumed_by_the_retry_not_sent_again(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    """The first attempt queues its packs, then fails before its answer is kept (its idempotency record is
    released): the client's retry with the same key resumes the same batch — the same records and pack ids, which
    the dispatchers' claims send once — instead of accepting a second batch."""
    api = load_handler("send_api")
    finish_fails_once(monkeypatch)
    with pytest.raises(RuntimeError):
        post(api, lambda_context, BODY, "order-42-retry")
    first_packs = drain_packs(stack)
    response = post(api, lambda_context, BODY, "order-42-retry")
    assert response["statusCode"] == 202
    [batch] = batch_ids(stack)
    assert json.loads(response["body"])["batch_id"] == batch
    assert header(stack, batch)["state"]["S"] == "QUEUED"
    again = drain_packs(stack)
    assert sorted(p["pack_id"] for p in again) == sorted(p["pack_id"] for p in first_packs)  # the same packs


def test_the_same_key_twice_is_one_batch_one_set_of_packs_and_the_first_answer(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context
) -> None:
    api = load_handler("send_api")
    first = post(api, lambda_context, BODY, "order-42-attempt")
    assert first["statusCode"] == 202, first["body"]
    assert "Idempotent-Replayed" not in (first.get("multiValueHeaders") or {})
    assert recipients(drain_packs(stack)) == ["+6591234567", "+85251234567"]

    again = post(api, lambda_context, BODY, "order-42-attempt")
    assert again["statusCode"] == 202
    assert json.loads(again["body"]) == json.loads(first["body"])  # same batch_id, same ids, same statuses
    assert again["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
    assert drain_packs(stack) == []
    assert batch_ids(stack) == [json.loads(first["body"])["batch_id"]]

    # the record: keyed on the scope and key (not on the body), expiring after 24 h, holding the answer
    (item,) = idempotency_items(stack)
    assert item["id"]["S"].startswith("globesms.accept#") and item["status"]["S"] == "COMPLETED"
    assert 86_000 < int(item["expiration"]["N"]) - time.time() <= 86_400
    assert json.loads(item["data"]["S"])["batch_id"] == json.loads(first["body"])["batch_id"]


def test_a_retry_after_send_at_passed_gets_the_first_answer_and_new_work_is_refused(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    # "In the future" was a schema rule, checked before the key: a client whose answer was lost, retrying after
    # send_at, got 422 and might resend under a new key (sent twice). It is checked for new work only now.
    from datetime import UTC, datetime, timedelta

    import globesms.api.send as send_route
    import globesms.models.api as api_models

    api = load_handler("send_api")
    now = datetime.now(UTC)
    body = {**BODY, "send_at": (now + timedelta(minutes=5)).isoformat()}
    first = post(api, lambda_context, body, "scheduled-order-9")
    assert first["statusCode"] == 202, first["body"]
    later = now + timedelta(minutes=6)
    monkeypatch.setattr(api_models, "utc_now", lambda: later)
    monkeypatch.setattr(send_route, "utc_now", lambda: later)
    again = post(api, lambda_context, body, "scheduled-order-9")
    assert again["statusCode"] == 202 and json.loads(again["body"]) == json.loads(first["body"])
    new = post(api, lambda_context, body, "scheduled-order-10")  # new work: refused, naming the field and the rule
    assert new["statusCode"] == 422, new["body"]
    (field,) = json.loads(new["body"])["error"]["fields"]
    assert field["field"] == "send_at" and "in the future" in field["rule"] and "in the past" in field["rule"]


def test_a_key_used_again_after_its_window_replays_its_batch_as_it_stands(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context
) -> None:
    # The batch id follows from the key and the body, so once the key's record has expired the same key and body
    # name the finished batch: it was answered 202 as if new (every recipient QUEUED, no replay header), and nothing
    # was sent. Texting again could text somebody twice: it is a replay of the batch now, with its real statuses.
    api = load_handler("send_api")
    first = post(api, lambda_context, BODY, "daily-reminder")
    assert first["statusCode"] == 202 and drain_packs(stack)
    (item,) = idempotency_items(stack)
    stack.dynamodb.update_item(  # 24 h later: Powertools takes the record as expired (the TTL then deletes it)
        TableName=idempotency_table(stack),
        Key={"id": item["id"]},
        UpdateExpression="SET expiration = :e",
        ExpressionAttributeValues={":e": {"N": str(int(time.time()) - 1)}},
    )
    again = post(api, lambda_context, BODY, "daily-reminder")
    assert again["statusCode"] == 202 and again["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
    assert json.loads(again["body"]) == json.loads(first["body"])
    assert drain_packs(stack) == []


def test_the_shipped_event_carries_a_key_and_is_accepted_once(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    first = api.lambda_handler(event("send_api_post_idempotent"), lambda_context)
    again = api.lambda_handler(event("send_api_post_idempotent"), lambda_context)
    assert (first["statusCode"], again["statusCode"]) == (202, 202)
    assert json.loads(again["body"]) == json.loads(first["body"])
    assert len(drain_packs(stack)) == 1


def test_the_header_name_is_case_insensitive(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    first = post(api, lambda_context, BODY, "k-1", header="Idempotency-Key")
    again = post(api, lambda_context, BODY, "k-1", header="idempotency-key")
    assert json.loads(again["body"])["batch_id"] == json.loads(first["body"])["batch_id"]
    assert len(batch_ids(stack)) == 1


def test_the_same_key_with_another_body_is_409_and_writes_nothing(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    first = post(api, lambda_context, BODY, "k-2")
    drain_packs(stack)
    other = post(api, lambda_context, {**BODY, "text": "Another text"}, "k-2")
    assert other["statusCode"] == 409
    assert json.loads(other["body"])["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert batch_ids(stack) == [json.loads(first["body"])["batch_id"]]
    assert drain_packs(stack) == []
    # and the key still answers its own body
    assert json.loads(post(api, lambda_context, BODY, "k-2")["body"]) == json.loads(first["body"])


# A provider's own template id (not in the registry: sent to Tencent as the values in the order given) and the
# registered `example-otp` (each provider gets its params by name, in its own order), each with its params written
# in two orders.
OWN = {"to": ["+85251234567"], "template": {"id": "1234567", "params": {"a": "111", "b": "5"}}}
OWN_SWAPPED = {"to": ["+85251234567"], "template": {"id": "1234567", "params": {"b": "5", "a": "111"}}}
REGISTERED = {"to": ["+85251234567"], "template": {"id": "example-otp", "params": {"code": "111", "minutes": "5"}}}
REGISTERED_SWAPPED = {
    "to": ["+85251234567"],
    "template": {"id": "example-otp", "params": {"minutes": "5", "code": "111"}},
}


def test_a_provider_templates_params_in_another_order_are_another_body(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    """Powertools compares payloads with their keys sorted: a provider's own template's params reordered (another
    message: the values go out in the order given) were taken for the same body and answered with the first
    body's answer, sending nothing."""
    api = load_handler("send_api")
    first = post(api, lambda_context, OWN, "k-own")
    assert first["statusCode"] == 202, first["body"]
    [pack] = drain_packs(stack)
    assert list(pack["contents"][0]["template_params"].values()) == ["111", "5"]
    other = post(api, lambda_context, OWN_SWAPPED, "k-own")
    assert other["statusCode"] == 409, other["body"]
    assert json.loads(other["body"])["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    again = post(api, lambda_context, OWN, "k-own")
    assert json.loads(again["body"]) == json.loads(first["body"])


def test_a_registered_templates_params_in_another_order_are_the_same_body(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch
) -> None:
    """Within the key's 24 h a replay; and a retry after an attempt that failed after queueing resumes its batch
    (the batch id hashed the params in the order written: a second batch, everybody texted twice)."""
    api = load_handler("send_api")
    first = post(api, lambda_context, REGISTERED, "k-registered")
    assert first["statusCode"] == 202, first["body"]
    replay = post(api, lambda_context, REGISTERED_SWAPPED, "k-registered")
    assert replay["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
    assert json.loads(replay["body"]) == json.loads(first["body"])
    drain_packs(stack)

    finish_fails_once(monkeypatch)
    with pytest.raises(RuntimeError):
        post(api, lambda_context, REGISTERED, "k-retried")
    first_packs = drain_packs(stack)
    retry = post(api, lambda_context, REGISTERED_SWAPPED, "k-retried")
    assert retry["statusCode"] == 202, retry["body"]
    assert len(batch_ids(stack)) == 2  # the first key's batch and this one's: no third
    assert sorted(p["pack_id"] for p in drain_packs(stack)) == sorted(p["pack_id"] for p in first_packs)


def test_without_a_key_each_request_is_a_batch(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    first = post(api, lambda_context, BODY, None)
    second = post(api, lambda_context, BODY, None)
    assert (first["statusCode"], second["statusCode"]) == (202, 202)
    assert json.loads(first["body"])["batch_id"] != json.loads(second["body"])["batch_id"]
    assert len(batch_ids(stack)) == 2
    assert len(recipients(drain_packs(stack))) == 4
    assert idempotency_items(stack) == []


def test_keys_are_scoped_per_api_key(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    ours = post(api, lambda_context, BODY, "shared-key", api_key_id="key-a")
    theirs = post(api, lambda_context, BODY, "shared-key", api_key_id="key-b")
    assert json.loads(ours["body"])["batch_id"] != json.loads(theirs["body"])["batch_id"]
    assert len(batch_ids(stack)) == 2


@pytest.mark.parametrize("key", ["", "x" * 129, " leading-space", "caf\u00e9", "tab\tinside", ["one", "two"]])
def test_a_bad_key_is_422_naming_the_header_and_writes_nothing(stack, load_handler, lambda_context, key) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    response = post(api, lambda_context, BODY, key)
    assert response["statusCode"] == 422, response["body"]
    error = json.loads(response["body"])["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [f["field"] for f in error["fields"]] == ["Idempotency-Key"]
    assert "printable" in error["fields"][0]["rule"]
    assert batch_ids(stack) == [] and idempotency_items(stack) == []


def test_a_bad_key_and_a_bad_body_are_reported_together(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    response = post(api, lambda_context, {"to": "+85251234567"}, "x" * 129)
    fields = {f["field"] for f in json.loads(response["body"])["error"]["fields"]}
    assert response["statusCode"] == 422 and "Idempotency-Key" in fields and len(fields) > 1


def test_the_longest_key_is_accepted(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    assert post(api, lambda_context, BODY, "k" * 127 + "~")["statusCode"] == 202


def test_a_refusal_is_not_the_keys_answer_a_corrected_retry_runs(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    too_many = {
        "messages": [
            {"to": [f"+8525{i:07d}" for i in range(5_001)], "text": "x"},
            {"to": [f"+6591{i:06d}" for i in range(5_000)], "text": "y"},
        ]
    }
    refused = post(api, lambda_context, too_many, "k-3")
    assert refused["statusCode"] == 413
    assert idempotency_items(stack) == []  # released, not stored
    corrected = post(api, lambda_context, BODY, "k-3")
    assert corrected["statusCode"] == 202
    assert json.loads(post(api, lambda_context, BODY, "k-3")["body"]) == json.loads(corrected["body"])
    assert len(batch_ids(stack)) == 1


def test_a_key_still_in_progress_is_409_and_a_dead_runs_key_is_free_again(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    post(api, lambda_context, BODY, "k-4")
    drain_packs(stack)
    make_in_progress(stack, expires_in_ms=60_000)
    busy = post(api, lambda_context, BODY, "k-4")
    assert busy["statusCode"] == 409
    assert json.loads(busy["body"])["error"]["code"] == "IDEMPOTENCY_KEY_IN_PROGRESS"
    assert busy["multiValueHeaders"]["Retry-After"] == ["2"]
    assert drain_packs(stack) == [] and len(batch_ids(stack)) == 1

    # The run holding the key died (its invocation's time is up): the key runs again. Its batch was finished (by
    # the first post here), so the answer is that batch, as a replay; the batch, not a key record, keeps it.
    make_in_progress(stack, expires_in_ms=-1)
    again = post(api, lambda_context, BODY, "k-4")
    assert again["statusCode"] == 202 and again["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
    assert drain_packs(stack) == [] and idempotency_items(stack) == []


def test_a_large_answer_is_stored_compressed_and_given_back_whole(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    api = load_handler("send_api")
    body = {"to": [f"+85251{i:06d}" for i in range(1_000)], "text": "Your parcel is on its way"}
    first = post(api, lambda_context, body, "k-large")
    assert first["statusCode"] == 202 and len(first["body"]) > 64 * 1024
    (item,) = idempotency_items(stack)
    assert set(json.loads(item["data"]["S"])) == {"zlib"}
    again = post(api, lambda_context, body, "k-large")
    assert json.loads(again["body"]) == json.loads(first["body"])
    assert len(recipients(drain_packs(stack))) == 1_000


def test_an_answer_too_large_even_compressed_keeps_exact_counts_and_the_first_errors() -> None:
    import random
    import string

    rng = random.Random(7)
    errors = [
        RecipientError(
            index=i,
            to="".join(rng.choice(string.ascii_letters + string.digits) for _ in range(32)),
            code="INVALID_NUMBER",
            message="must be in international format starting with '+' (E.164)",
        )
        for i in range(10_000)
    ]
    answer = AcceptResponse(batch_id="b", accepted=0, rejected=10_000, messages=[], errors=errors)
    serializer = AnswerSerializer()
    stored = serializer.to_dict(answer)
    assert len(json.dumps(stored)) < 350 * 1024  # fits a DynamoDB item with room to spare
    replayed = serializer.from_dict(stored)
    assert (replayed.batch_id, replayed.rejected) == ("b", 10_000)
    assert replayed.errors == errors[:MAX_REPLAYED_ERRORS]


# ---------------------------------------------------------------- SQS intake


def test_intake_the_same_key_under_another_message_id_succeeds_and_sends_nothing_new(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context
) -> None:
    intake = load_handler("intake")
    body = {**BODY, "idempotency_key": "order-42-sqs"}
    assert intake.lambda_handler(sqs_event(body, first_id=1), lambda_context) == {"batchItemFailures": []}
    [first] = batch_ids(stack)
    assert first.startswith("k")  # named by the key and body, not by the SQS message
    assert recipients(drain_packs(stack)) == ["+6591234567", "+85251234567"]

    # the client sent it again (a new SQS message), and SQS delivered that one twice in one batch
    again = sqs_event(body, body, first_id=2)
    assert intake.lambda_handler(again, lambda_context) == {"batchItemFailures": []}
    assert batch_ids(stack) == [first]
    assert drain_packs(stack) == []


def test_intake_without_a_key_keeps_the_batch_id_as_the_idempotency_key(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    intake = load_handler("intake")
    assert intake.lambda_handler(sqs_event(BODY, BODY, first_id=1), lambda_context) == {"batchItemFailures": []}
    assert len(batch_ids(stack)) == 2  # two messages, two batches: sqs-<MessageId> each
    named = {**BODY, "batch_id": "order-42-batch"}
    assert intake.lambda_handler(sqs_event(named, named, first_id=3), lambda_context) == {"batchItemFailures": []}
    assert len(batch_ids(stack)) == 3
    assert len(recipients(drain_packs(stack))) == 6
    assert idempotency_items(stack) == []


def test_intake_the_same_key_with_another_body_is_refused_and_recorded(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    intake = load_handler("intake")
    intake.lambda_handler(sqs_event({**BODY, "idempotency_key": "k-5"}, first_id=1), lambda_context)
    drain_packs(stack)
    request = sqs_event({**BODY, "text": "Another text", "idempotency_key": "k-5"}, first_id=2)
    response = intake.lambda_handler(request, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": request["Records"][0]["messageId"]}]}
    refused = header(stack, "sqs-00000000-0000-0000-0000-000000000002")
    assert refused["state"]["S"] == "REJECTED"
    assert refused["refusal"]["M"]["code"]["S"] == "IDEMPOTENCY_KEY_REUSED"
    assert drain_packs(stack) == []


def test_intake_a_bad_key_is_a_validation_refusal_naming_the_field(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    intake = load_handler("intake")
    request = sqs_event({**BODY, "idempotency_key": "x" * 129}, first_id=1)
    response = intake.lambda_handler(request, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": request["Records"][0]["messageId"]}]}
    refusal = header(stack, "sqs-00000000-0000-0000-0000-000000000001")["refusal"]["M"]
    assert refusal["code"]["S"] == "VALIDATION_ERROR"
    assert [f["M"]["field"]["S"] for f in refusal["fields"]["L"]] == ["idempotency_key"]
    assert idempotency_items(stack) == []


def test_intake_a_key_in_progress_leaves_the_record_for_later_and_writes_nothing(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context
) -> None:
    intake = load_handler("intake")
    body = {**BODY, "idempotency_key": "k-6"}
    intake.lambda_handler(sqs_event(body, first_id=1), lambda_context)
    drain_packs(stack)
    before = batch_ids(stack)
    make_in_progress(stack, expires_in_ms=60_000)
    request = sqs_event(body, first_id=2)
    response = intake.lambda_handler(request, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": request["Records"][0]["messageId"]}]}
    assert batch_ids(stack) == before  # no REJECTED header for a retry
    assert drain_packs(stack) == []


def test_intake_a_refused_body_does_not_use_up_its_key(stack, load_handler, lambda_context) -> None:  # type: ignore[no-untyped-def]
    intake = load_handler("intake")
    too_many = {
        "messages": [
            {"to": [f"+8525{i:07d}" for i in range(5_001)], "text": "x"},
            {"to": [f"+6591{i:06d}" for i in range(5_000)], "text": "y"},
        ],
        "idempotency_key": "k-7",
    }
    request = sqs_event(too_many, first_id=1)
    assert intake.lambda_handler(request, lambda_context)["batchItemFailures"]
    refusal = header(stack, "sqs-00000000-0000-0000-0000-000000000001")["refusal"]["M"]
    assert refusal["code"]["S"] == "TOO_MANY_RECIPIENTS"  # refused inside the idempotent accept: key released
    assert idempotency_items(stack) == []
    fixed = sqs_event({**BODY, "idempotency_key": "k-7"}, first_id=2)
    assert intake.lambda_handler(fixed, lambda_context) == {"batchItemFailures": []}
    assert len(recipients(drain_packs(stack))) == 2


def test_a_redriven_intake_body_is_accepted_as_the_batch_of_its_first_message_id(
    stack, load_handler, lambda_context
) -> None:  # type: ignore[no-untyped-def]
    """`make redrive` sends a dead-lettered body again under a new MessageId, with the first one as an attribute: a
    body naming neither batch_id nor idempotency_key resumes its first batch (nobody texted twice), not a new one."""
    intake = load_handler("intake")
    assert intake.lambda_handler(sqs_event(BODY, first_id=1), lambda_context) == {"batchItemFailures": []}
    [first] = batch_ids(stack)
    assert first == "sqs-00000000-0000-0000-0000-000000000001"
    assert len(recipients(drain_packs(stack))) == 2
    redriven = sqs_event(BODY, first_id=7)
    redriven["Records"][0]["messageAttributes"] = {
        FIRST_MESSAGE_ID: {"stringValue": "00000000-0000-0000-0000-000000000001", "dataType": "String"}
    }
    assert intake.lambda_handler(redriven, lambda_context) == {"batchItemFailures": []}
    assert batch_ids(stack) == [first] and drain_packs(stack) == []  # the first batch's answer, nothing sent again
    # An attribute that is no MessageId (SQS's are UUIDs) is the sender's input: ignored, the record's own id names
    # the batch (a long one would make a batch id over the 64 characters the API and the release read).
    for offset, forged_id in enumerate(("B#x/../y", "a" * 100)):
        forged = sqs_event(BODY, first_id=9 + offset)
        forged["Records"][0]["messageAttributes"] = {FIRST_MESSAGE_ID: {"stringValue": forged_id, "dataType": "String"}}
        assert intake.lambda_handler(forged, lambda_context) == {"batchItemFailures": []}
    own = ["sqs-00000000-0000-0000-0000-000000000009", "sqs-00000000-0000-0000-0000-000000000010"]
    assert batch_ids(stack) == [first, *own]


def finish_fails_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next accept fails after queueing its packs, before its answer is kept (its idempotency record released)."""
    from globesms.aws.dynamodb_store import DynamoDBMessageStore

    finish = DynamoDBMessageStore.finish_batch
    calls = {"n": 0}

    def fails_once(self, batch):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("throttled after queueing")
        return finish(self, batch)

    monkeypatch.setattr(DynamoDBMessageStore, "finish_batch", fails_once)
