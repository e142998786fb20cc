"""The webhook sender driven by events/webhooks_batch.json against moto built from template.yaml, the webhook queue
adapter on moto, and the local receiver verifying real signed requests over a socket."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import httpx
import pytest
from aws_lambda_powertools.utilities import parameters

from globesms.aws import clients
from globesms.aws.sqs_queues import SqsWebhookQueue
from globesms.models.webhooks import WebhookDelivery
from globesms.secrets import forget_stored_secrets
from globesms.webhooks.sender import WebhookFailed, backoff_ceiling, deliver, new_http_client
from globesms.webhooks.signing import SIGNATURE_HEADER, verify
from local.webhook_receiver import WebhookReceiver, serve
from tests.integration.conftest import MotoStack

EVENTS = Path(__file__).resolve().parents[2] / "events"
SECRET = "whsec_integration"
OK_HOST, FAILING_HOST = "hooks.example.com", "unreachable.example.net"


def batch_event() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "webhooks_batch.json").read_text())
    return event


@pytest.fixture
def webhook_queue(stack: MotoStack) -> str:
    return stack.deployed.context.refs["WebhookQueue"]


@pytest.fixture
def stored_secret(stack: MotoStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The deployed path: no GLOBESMS_WEBHOOK_SECRET, the secret in (moto's) Secrets Manager under the template's
    default name."""
    monkeypatch.delenv("GLOBESMS_WEBHOOK_SECRET", raising=False)
    name = stack.deployed.template.parameters["WebhookSecretName"].default
    boto3.client("secretsmanager").create_secret(
        Name=name, SecretString=json.dumps({"GLOBESMS_WEBHOOK_SECRET": SECRET})
    )
    parameters.clear_caches()
    yield name
    parameters.clear_caches()


def on_the_queue(stack: MotoStack, queue_url: str, event: dict[str, Any]) -> dict[str, Any]:
    """Put the event's bodies on the webhook queue and receive them, so each record has a live receipt handle
    (ChangeMessageVisibility needs one); the event keeps its own attributes (ApproximateReceiveCount)."""
    for record in event["Records"]:
        stack.sqs.send_message(QueueUrl=queue_url, MessageBody=record["body"])
    received = stack.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    by_body = {m["Body"]: m for m in received}
    assert len(by_body) == len(event["Records"])
    for record in event["Records"]:
        message = by_body[record["body"]]
        record["messageId"], record["receiptHandle"] = message["MessageId"], message["ReceiptHandle"]
    return event


def visibility_changes(module: ModuleType) -> list[dict[str, Any]]:
    """Every ChangeMessageVisibility the sender makes, with moto's HTTP status."""
    changes: list[dict[str, Any]] = []
    events = clients.sqs().meta.events

    def before(params: dict[str, Any], **_: Any) -> None:
        changes.append(dict(params))

    def after(http_response: Any, **_: Any) -> None:
        changes[-1]["status"] = http_response.status_code

    events.register("provide-client-params.sqs.ChangeMessageVisibility", before)
    events.register("after-call.sqs.ChangeMessageVisibility", after)
    return changes


def customer(answers: dict[str, int], seen: list[httpx.Request]) -> httpx.Client:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(answers[request.url.host])

    return httpx.Client(transport=httpx.MockTransport(answer))


def use_client(monkeypatch: pytest.MonkeyPatch, sender: ModuleType, client: httpx.Client) -> None:
    """The handler's deliveries go through `client` (a mock transport) instead of a pinned client each."""
    monkeypatch.setattr(sender, "deliver", functools.partial(deliver, http=client))


def failures(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


# ---------------------------------------------------------------- the sender handler


def test_one_delivered_one_failed_and_backed_off(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, webhook_queue, stored_secret, monkeypatch, caplog
) -> None:
    sender = load_handler("webhooks")
    seen: list[httpx.Request] = []
    use_client(monkeypatch, sender, customer({OK_HOST: 204, FAILING_HOST: 500}, seen))
    changes = visibility_changes(sender)
    event = on_the_queue(stack, webhook_queue, batch_event())
    ok, failing = event["Records"]

    with caplog.at_level(logging.INFO):
        response = sender.lambda_handler(event, lambda_context)

    assert failures(response) == [failing["messageId"]]
    assert sorted(r.url.host for r in seen) == [OK_HOST, FAILING_HOST]
    for request in seen:  # signed with the secret from Secrets Manager, over the exact bytes sent
        assert verify(SECRET, request.headers[SIGNATURE_HEADER], request.content, now=time.time())
        assert WebhookDelivery.model_validate_json(ok["body"] if request.url.host == OK_HOST else failing["body"])
    (change,) = changes
    assert change["QueueUrl"] == webhook_queue
    assert change["ReceiptHandle"] == failing["receiptHandle"]
    receives = int(failing["attributes"]["ApproximateReceiveCount"])
    assert 1 <= change["VisibilityTimeout"] <= backoff_ceiling(receives) == 120
    assert change["status"] == 200

    assert not [r for r in caplog.records if r.name.startswith("httpx")]  # it would log full URLs
    logged = " ".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    assert "01JDEXAMPLEBATCH0000000000.00001.undelivered" in logged and FAILING_HOST in logged
    assert "HTTP 500" in logged
    for secret_or_personal in (SECRET, "+6591234567", "+85251234567", "account=acme", "carrier rejected"):
        assert secret_or_personal not in logged


def test_the_environment_secret_is_used_when_set(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, webhook_queue, monkeypatch
) -> None:
    monkeypatch.setenv("GLOBESMS_WEBHOOK_SECRET", "whsec_local")
    sender = load_handler("webhooks")
    seen: list[httpx.Request] = []
    use_client(monkeypatch, sender, customer({OK_HOST: 200, FAILING_HOST: 200}, seen))
    response = sender.lambda_handler(on_the_queue(stack, webhook_queue, batch_event()), lambda_context)
    assert failures(response) == []
    assert all(verify("whsec_local", r.headers[SIGNATURE_HEADER], r.content, now=time.time()) for r in seen)


def test_without_a_secret_nothing_is_sent_and_every_record_is_retried(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, webhook_queue, monkeypatch
) -> None:
    monkeypatch.delenv("GLOBESMS_WEBHOOK_SECRET", raising=False)
    parameters.clear_caches()  # no secret stored in moto under the template's name
    forget_stored_secrets()  # nor read good earlier by this process
    sender = load_handler("webhooks")
    seen: list[httpx.Request] = []
    use_client(monkeypatch, sender, customer({OK_HOST: 200, FAILING_HOST: 200}, seen))
    changes = visibility_changes(sender)
    event = on_the_queue(stack, webhook_queue, batch_event())
    response = sender.lambda_handler(event, lambda_context)
    assert sorted(failures(response)) == sorted(r["messageId"] for r in event["Records"])
    assert seen == []
    assert len(changes) == 2 and all(c["status"] == 200 for c in changes)


def test_bodies_and_urls_that_can_never_work_are_not_backed_off(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, webhook_queue, stored_secret, monkeypatch
) -> None:
    monkeypatch.delenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", raising=False)
    sender = load_handler("webhooks")
    seen: list[httpx.Request] = []
    use_client(monkeypatch, sender, customer({}, seen))
    changes = visibility_changes(sender)
    event = batch_event()
    event["Records"][0]["body"] = '{"url": "https://hooks.example.com", "event": "+85251234567"}'
    plain_http = json.loads(event["Records"][1]["body"])
    plain_http["url"] = "http://hooks.example.com/globesms"
    event["Records"][1]["body"] = json.dumps(plain_http)
    response = sender.lambda_handler(on_the_queue(stack, webhook_queue, event), lambda_context)
    assert len(failures(response)) == 2
    assert seen == [] and changes == []  # back after the queue's visibility timeout, then the DLQ


def test_the_last_receive_is_left_for_the_dead_letter_queue(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, webhook_queue, stored_secret, monkeypatch, caplog
) -> None:
    sender = load_handler("webhooks")
    use_client(monkeypatch, sender, customer({OK_HOST: 503, FAILING_HOST: 503}, []))
    changes = visibility_changes(sender)
    event = batch_event()
    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = str(sender.MAX_RECEIVE_COUNT)
    with caplog.at_level(logging.INFO):
        response = sender.lambda_handler(on_the_queue(stack, webhook_queue, event), lambda_context)
    assert len(failures(response)) == 2
    assert changes == []
    assert sum("dead-letter" in r.getMessage() for r in caplog.records) == 2


def test_a_delivery_that_outlasts_the_invocation_is_reported_failed_in_time(  # type: ignore[no-untyped-def]
    stack, load_handler, webhook_queue, stored_secret, monkeypatch, lambda_context, caplog
) -> None:
    sender = load_handler("webhooks")

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == FAILING_HOST:
            time.sleep(6)  # a receiver that holds the connection past the invocation's budget
        return httpx.Response(200)

    slow = httpx.Client(transport=httpx.MockTransport(answer))
    use_client(monkeypatch, sender, slow)
    # 4 s left: a budget of 2.5 s (what remains minus the safety margin), ample for the fast delivery on a busy
    # machine, short of the slow one.
    monkeypatch.setattr(lambda_context, "get_remaining_time_in_millis", lambda: 4_000, raising=False)
    event = on_the_queue(stack, webhook_queue, batch_event())
    with caplog.at_level(logging.INFO):
        response = sender.lambda_handler(event, lambda_context)
    assert failures(response) == [event["Records"][1]["messageId"]]
    reasons = [getattr(r, "reason", None) for r in caplog.records if r.getMessage().startswith("webhook failed")]
    assert reasons == ["timeout (invocation deadline)"]


def role_statements(resources: dict[str, Any], function_id: str) -> list[dict[str, Any]]:
    """The statements of the function's explicit role (template.yaml gives every function its own)."""
    role_id = resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    return [s for p in resources[role_id]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def test_template_wiring(stack) -> None:  # type: ignore[no-untyped-def]
    raw = stack.deployed.template.raw
    resources = raw["Resources"]
    sender = resources["WebhookSenderFunction"]["Properties"]
    queue = resources["WebhookQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * sender["Timeout"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]},
        "maxReceiveCount": int(sender["Environment"]["Variables"]["GLOBESMS_WEBHOOK_MAX_RECEIVE_COUNT"]),
    }
    assert queue["SqsManagedSseEnabled"] is True
    statements = role_statements(resources, "WebhookSenderFunction")
    assert {
        "Effect": "Allow",
        "Action": "sqs:ChangeMessageVisibility",
        "Resource": {"Fn::GetAtt": ["WebhookQueue", "Arn"]},
    } in statements
    source = stack.deployed.template.event_sources_of("WebhookSenderFunction")[0]
    assert (source.queue_id, source.batch_size, source.report_batch_item_failures) == ("WebhookQueue", 10, True)
    for dispatcher in ("AliyunDispatchFunction", "TencentDispatchFunction", "HuaweiDispatchFunction"):
        statements = role_statements(resources, dispatcher)
        assert any(
            s["Action"] == "sqs:SendMessage"
            and {"Fn::GetAtt": ["WebhookQueue", "Arn"]}
            in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
            for s in statements
        ), dispatcher
    for function in stack.deployed.template.functions.values():
        assert (
            stack.deployed.function_environment(function)["GLOBESMS_WEBHOOK_QUEUE_URL"]
            == stack.deployed.context.refs["WebhookQueue"]
        )
    outputs = stack.deployed.outputs()
    assert outputs["WebhookQueueUrl"] == stack.deployed.context.refs["WebhookQueue"]
    assert outputs["WebhookDeadLetterQueueUrl"] == stack.deployed.context.refs["WebhookDeadLetterQueue"]


# ---------------------------------------------------------------- the queue adapter on moto


def test_the_webhook_queue_adapter_puts_one_message_per_delivery(stack, webhook_queue) -> None:  # type: ignore[no-untyped-def]
    deliveries = [WebhookDelivery.model_validate_json(r["body"]) for r in batch_event()["Records"]] * 12
    SqsWebhookQueue(webhook_queue).send_webhooks(deliveries)
    bodies: list[str] = []
    while batch := stack.sqs.receive_message(QueueUrl=webhook_queue, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [m["Body"] for m in batch]
    assert sorted(WebhookDelivery.model_validate_json(b).event.id for b in bodies) == sorted(
        d.event.id for d in deliveries
    )


# ---------------------------------------------------------------- the local receiver, over a socket


@pytest.fixture
def receiver_url() -> Iterator[Callable[..., tuple[str, WebhookReceiver, list[str]]]]:
    servers = []

    def start(fail_first: int = 0, secrets: tuple[str, ...] = (SECRET,)) -> tuple[str, WebhookReceiver, list[str]]:
        printed: list[str] = []
        receiver = WebhookReceiver(secrets, fail_first=fail_first)
        server = serve(receiver, 0, printed.append)
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/hooks", receiver, printed

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_receiver_verifies_real_signed_requests(receiver_url, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from globesms.domain.clock import utc_now

    monkeypatch.setenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", "true")
    url, _, printed = receiver_url(fail_first=1)
    delivery = WebhookDelivery.model_validate_json(batch_event()["Records"][0]["body"]).model_copy(update={"url": url})
    with new_http_client() as http:
        with pytest.raises(WebhookFailed, match="HTTP 500"):
            deliver(delivery, http=http, secret=SECRET, now=utc_now())
        deliver(delivery, http=http, secret=SECRET, now=utc_now())
        deliver(delivery, http=http, secret=SECRET, now=utc_now())  # a repeat: acknowledged, marked duplicate
        with pytest.raises(WebhookFailed, match="HTTP 401"):
            deliver(delivery, http=http, secret="whsec_wrong", now=utc_now())
        listing = http.get(url.replace("/hooks", "/_receiver/events")).json()
    event_id = "01JDEXAMPLEBATCH0000000000.00000.delivered"
    assert listing == {
        "events": [
            {"id": event_id, "type": "message.delivered", "status": "DELIVERED", "attempts": 3, "acknowledged": True}
        ]
    }
    assert [line.split()[0] for line in printed] == ["FAILING", "VERIFIED", "DUPLICATE", "REFUSED"]
    assert event_id in printed[1] and "status=DELIVERED" in printed[1]


def test_the_sender_handler_delivers_to_the_receiver_and_retries(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, webhook_queue, receiver_url, monkeypatch
) -> None:
    """The path `make run` takes (minus the poller): queue -> WebhookSenderFunction -> http://127.0.0.1 receiver."""
    monkeypatch.setenv("GLOBESMS_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", "true")
    url, receiver, _ = receiver_url(fail_first=1)
    sender = load_handler("webhooks")
    event = batch_event()
    for record in event["Records"]:
        delivery = json.loads(record["body"])
        delivery["url"] = url
        record["body"] = json.dumps(delivery)
    first = sender.lambda_handler(on_the_queue(stack, webhook_queue, json.loads(json.dumps(event))), lambda_context)
    assert len(failures(first)) == 2  # --fail-first 1
    second = sender.lambda_handler(on_the_queue(stack, webhook_queue, event), lambda_context)
    assert failures(second) == []
    assert {(e["id"], e["attempts"], e["acknowledged"]) for e in receiver.listing()} == {
        ("01JDEXAMPLEBATCH0000000000.00000.delivered", 2, True),
        ("01JDEXAMPLEBATCH0000000000.00001.undelivered", 2, True),
    }
