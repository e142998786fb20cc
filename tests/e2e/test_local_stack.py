"""End to end through the local stack: HTTP or the SQS intake queue in, provider emulators out, status API back.

The `local_stack` fixture (conftest.py) runs the whole stack (`python -m local.run`) on free ports, once for the
module, and always stops it.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e

MOBILES = ["+85251234567", "+6591234567", "+447911123456"]  # Hong Kong, Singapore, UK: all valid mobiles


# ---------------------------------------------------------------- scenarios


def batch_where(stack: RunningStack, batch_id: str, done: Any) -> dict[str, Any]:
    """Poll GET /v1/batches/{id} until `done(batch)` holds."""

    def probe() -> dict[str, Any] | None:
        response = stack.api.get(f"/v1/batches/{batch_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        batch: dict[str, Any] = response.json()
        return batch if done(batch) else None

    return stack.wait_for(f"batch {batch_id}", probe)


# The emulators push a receipt about a second after each send, so a message may be past SUBMITTED by the time the
# batch is read: "submitted" here means the provider accepted it (SUBMITTED or a delivery outcome after it).
SENT = {"SUBMITTED", "DELIVERED", "UNDELIVERED", "EXPIRED", "REJECTED"}


def all_submitted(count: int) -> Any:
    return lambda batch: sum(n for status, n in batch["counts"].items() if status in SENT) == count


def assert_each_message_submitted(stack: RunningStack, batch: dict[str, Any], provider: str) -> None:
    for message in batch["messages"]:
        response = stack.api.get(f"/v1/messages/{message['id']}")
        assert response.status_code == 200, response.text
        view = response.json()
        assert view["status"] in SENT
        assert (view["provider"], view["batch_id"]) == (provider, batch["batch_id"])
        assert view["provider_message_id"]


def test_free_text_request_through_the_api_ends_submitted(local_stack: RunningStack) -> None:
    response = local_stack.api.post("/v1/messages", json={"to": MOBILES, "text": "hello from e2e"})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["accepted"] == len(MOBILES) and accepted["rejected"] == 0

    batch = batch_where(local_stack, accepted["batch_id"], all_submitted(len(MOBILES)))
    assert sorted(m["to"] for m in batch["messages"]) == sorted(MOBILES)
    assert_each_message_submitted(local_stack, batch, "aliyun")


def test_every_function_host_starts_without_a_runtime_warning(local_stack: RunningStack) -> None:
    # A host forked from the preloaded interpreter runs its module as __main__ once, as `python -m` does: runpy
    # warned at each host's start when the preloaded copy was left in sys.modules (local/host_forks.py).
    # The API's host logs when it accepts a request: one is sent, whichever test runs first.
    accepted = local_stack.api.post("/v1/messages", json={"to": MOBILES[0], "text": "hello from e2e"})
    assert accepted.status_code == 202, accepted.text

    def log_with_the_api_host() -> str | None:
        text = local_stack.log_path.read_text(errors="replace")
        return text if "SendApiFunction" in text else None

    log = local_stack.wait_for("the API's host in the log", log_with_the_api_host)
    assert "RuntimeWarning" not in log, local_stack.log_tail()


def test_requests_without_the_api_key_are_forbidden_like_api_gateway(local_stack: RunningStack) -> None:
    body = {"to": MOBILES[0], "text": "hello"}
    without_key = httpx.post(f"{local_stack.api.base_url}/v1/messages", json=body)
    wrong_key = local_stack.api.post("/v1/messages", json=body, headers={"x-api-key": "not-the-key"})
    for response in (without_key, wrong_key):
        assert (response.status_code, response.json()) == (403, {"message": "Forbidden"})
    unknown = local_stack.api.get("/v1/nothing-here")
    assert (unknown.status_code, unknown.json()) == (403, {"message": "Missing Authentication Token"})


def test_intake_queue_message_ends_submitted(local_stack: RunningStack) -> None:
    batch_id = f"e2e-intake-{uuid.uuid4().hex[:12]}"
    body = {"batch_id": batch_id, "to": MOBILES[:2], "text": "hello through SQS"}
    local_stack.sqs.send_message(QueueUrl=local_stack.outputs["IntakeQueueUrl"], MessageBody=json.dumps(body))

    batch = batch_where(local_stack, batch_id, all_submitted(2))
    assert batch["source"] == "sqs"
    assert_each_message_submitted(local_stack, batch, "aliyun")


def test_malformed_intake_body_is_rejected_and_dead_lettered_while_its_neighbour_is_sent(
    local_stack: RunningStack,
) -> None:
    # Sent together so they usually share one Lambda batch: only the bad record may fail (ReportBatchItemFailures).
    good_batch_id = f"e2e-neighbour-{uuid.uuid4().hex[:12]}"
    good = {"batch_id": good_batch_id, "to": MOBILES[2], "text": "hello"}
    sent = local_stack.sqs.send_message_batch(
        QueueUrl=local_stack.outputs["IntakeQueueUrl"],
        Entries=[{"Id": "good", "MessageBody": json.dumps(good)}, {"Id": "bad", "MessageBody": "{not json"}],
    )
    message_ids = {entry["Id"]: entry["MessageId"] for entry in sent["Successful"]}

    rejected = batch_where(local_stack, f"sqs-{message_ids['bad']}", lambda b: b["state"] == "REJECTED")
    assert rejected["refusal"]["code"] == "MALFORMED_JSON"
    batch_where(local_stack, good_batch_id, all_submitted(1))

    dead_lettered: set[str] = set()

    def bad_body_dead_lettered() -> bool | None:
        received = local_stack.sqs.receive_message(
            QueueUrl=local_stack.outputs["IntakeDeadLetterQueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        dead_lettered.update(m["MessageId"] for m in received.get("Messages", []))
        return True if message_ids["bad"] in dead_lettered else None

    local_stack.wait_for("the malformed body in the intake dead-letter queue", bad_body_dead_lettered)
    assert message_ids["good"] not in dead_lettered


# Tencent wants the numeric id of an approved template; Huawei a template id of up to 32 characters.
PINNED_TEMPLATES = [("tencent", "1234567"), ("huawei", "8ff55eac1d0b478ab3c06c3c6a492300")]


@pytest.mark.parametrize(("provider", "template_id"), PINNED_TEMPLATES, ids=[p for p, _ in PINNED_TEMPLATES])
def test_template_message_pinned_to_a_provider_ends_submitted(
    local_stack: RunningStack, provider: str, template_id: str
) -> None:
    if importlib.util.find_spec(f"local.emulators.{provider}") is None:
        pytest.skip(f"local/emulators/{provider}.py does not exist yet: nothing would answer for {provider}")
    body = {"to": MOBILES[0], "template": {"id": template_id, "params": {"code": "123456"}}, "provider": provider}
    response = local_stack.api.post("/v1/messages", json=body)
    assert response.status_code == 202, response.text

    batch = batch_where(local_stack, response.json()["batch_id"], all_submitted(1))
    assert_each_message_submitted(local_stack, batch, provider)
