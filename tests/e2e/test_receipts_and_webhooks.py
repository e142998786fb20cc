"""End to end: delivery receipts pushed by the provider emulators, and the signed status webhooks they cause.

One local stack for the module (conftest.py). Before each test every emulator's knobs go back to their defaults
(through `POST /_emulator/knobs`) with a short receipt delay, so a message reaches its final status within about a
second of being sent, by the provider's own receipt push to `/v1/receipts/<provider>/<token>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import boto3
import httpx
import pytest

from globesms.aws.dynamodb_receipts import held_item_key
from globesms.models.outbound import ProviderName
from local.emulators.common import Knobs
from local.settings import EMULATOR_PORTS
from local.webhook_receiver import Answer, WebhookReceiver, secrets_from_environment, serve
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e

# The provider clients give up on an answer after 3 s (default 10 s): an unknown outcome is quick to provoke.
READ_TIMEOUT_SECONDS = 3.0
LOCAL_STACK_ENV = {"GLOBESMS_HTTP_READ_TIMEOUT": str(READ_TIMEOUT_SECONDS)}  # read by conftest.local_stack
RECEIPT_DELAY_SECONDS = 0.5
NEVER_SECONDS = 3600.0  # a receipt delay that outlives the stack: the test pushes the receipts itself
FINAL_STATUS_DEADLINE_SECONDS = 20
WEBHOOK_DEADLINE_SECONDS = 20
MOBILE = "+85251234567"  # Hong Kong: every provider carries it
FINAL = {"DELIVERED", "UNDELIVERED", "EXPIRED", "REJECTED", "FAILED"}

# A message for each provider: Alibaba gets free text by routing, Tencent and Huawei are pinned with a template
# (Tencent wants the numeric id of an approved template; Huawei a template id of up to 32 characters).
SPECS: dict[str, dict[str, Any]] = {
    "aliyun": {"text": "hello from the receipts e2e"},
    "tencent": {"template": {"id": "1234567", "params": {"code": "123456"}}, "provider": "tencent"},
    "huawei": {
        "template": {"id": "8ff55eac1d0b478ab3c06c3c6a492300", "params": {"code": "123456"}},
        "provider": "huawei",
    },
}
# What each provider's receipt says, as it says it: (raw status, carrier code on the message's `error`).
RAW_OUTCOMES: dict[tuple[str, str], tuple[str, str | None]] = {
    ("aliyun", "DELIVERED"): ("1", None),
    ("aliyun", "UNDELIVERED"): ("2", "UNDELIV"),
    ("aliyun", "EXPIRED"): ("6", "EXPIRED"),
    ("tencent", "DELIVERED"): ("SUCCESS", None),
    ("tencent", "UNDELIVERED"): ("FAIL", "UNDELIV"),
    ("tencent", "EXPIRED"): ("FAIL", "EXPIRED"),
    ("huawei", "DELIVERED"): ("DELIVRD", None),
    ("huawei", "UNDELIVERED"): ("UNDELIV", "UNDELIV"),
    ("huawei", "EXPIRED"): ("EXPIRED", "EXPIRED"),
}


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def receipt_urls(local_stack: RunningStack) -> dict[str, str]:
    """Each emulator's receipt callback URL as the runner configured it (`POST /_emulator/knobs {}` answers the
    current knobs): `http://127.0.0.1:<api>/v1/receipts/<provider>/<token>`."""
    urls = {}
    for provider in EMULATOR_PORTS:
        knobs = httpx.post(f"{local_stack.emulator_url(provider)}/_emulator/knobs", json={}, timeout=5).json()
        assert knobs["receipt_callback_url"], f"{provider}'s emulator was started without a receipt URL"
        urls[provider] = knobs["receipt_callback_url"]
    return urls


def set_knobs(stack: RunningStack, provider: str, **changes: Any) -> None:
    response = httpx.post(f"{stack.emulator_url(provider)}/_emulator/knobs", json=changes, timeout=5)
    assert response.status_code == 200, response.text


@pytest.fixture(autouse=True)
def default_knobs(local_stack: RunningStack, receipt_urls: dict[str, str]) -> None:
    reset_knobs(local_stack, receipt_urls)


def reset_knobs(local_stack: RunningStack, receipt_urls: dict[str, str]) -> None:
    """Every emulator back to the default knobs, pushing receipts to the stack after RECEIPT_DELAY_SECONDS."""
    for provider in EMULATOR_PORTS:
        defaults = asdict(
            Knobs(receipt_callback_url=receipt_urls[provider], receipt_delay_seconds=RECEIPT_DELAY_SECONDS)
        )
        set_knobs(local_stack, provider, **defaults)
        assert httpx.post(f"{local_stack.emulator_url(provider)}/_emulator/reset", timeout=5).status_code == 200


class CustomerEndpoint(WebhookReceiver):
    """local.webhook_receiver's logic (verifies the signature, lists what arrived, fails on purpose with
    `fail_first`) that also keeps every request as it arrived."""

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__(secrets_from_environment(os.environ), fail_first=fail_first)  # what the stack signs with
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    def receive(self, headers: Mapping[str, str], body: bytes) -> Answer:
        self.requests.append((dict(headers), body))
        return super().receive(headers, body)

    def verified(self) -> dict[str, dict[str, Any]]:
        return {event["id"]: event for event in self.listing()}


@pytest.fixture
def customer_endpoint() -> Iterator[Callable[..., CustomerEndpoint]]:
    """Starts CustomerEndpoints in this process, each on a free loopback port (`.url` is its status_callback);
    `customer_endpoint(fail_first=1)` is `python -m local.webhook_receiver --fail-first 1`. All stopped after."""
    servers = []

    def start(fail_first: int = 0) -> CustomerEndpoint:
        endpoint = CustomerEndpoint(fail_first)
        server = serve(endpoint, 0, out=lambda line: None)
        servers.append(server)
        endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
        return endpoint

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


# ------------------------------------------------------------------------------------------------- helpers


def send(stack: RunningStack, provider: str, **extra: Any) -> str:
    """Send one message through `provider` (SPECS); returns its message id."""
    response = stack.api.post("/v1/messages", json={"to": MOBILE, **SPECS[provider], **extra})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["accepted"] == 1, accepted
    return str(accepted["messages"][0]["id"])


def message(stack: RunningStack, message_id: str) -> dict[str, Any]:
    response = stack.api.get(f"/v1/messages/{message_id}")
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def message_where(
    stack: RunningStack,
    message_id: str,
    done: Callable[[dict[str, Any]], bool],
    what: str,
    deadline_seconds: float = FINAL_STATUS_DEADLINE_SECONDS,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        view = message(stack, message_id)
        return view if done(view) else None

    return stack.wait_for(f"{message_id} {what}", probe, deadline_seconds, interval=0.2)


def final(stack: RunningStack, message_id: str) -> dict[str, Any]:
    return message_where(stack, message_id, lambda view: view["status"] in FINAL, "to reach a final status")


def submitted(stack: RunningStack, message_id: str) -> dict[str, Any]:
    return message_where(stack, message_id, lambda view: view["status"] == "SUBMITTED", "to be SUBMITTED")


def receipts(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [event for event in view["events"] if event["type"] == "receipt"]


def stack_receiver_events(stack: RunningStack) -> dict[str, dict[str, Any]]:
    """What the stack's own webhook receiver (local.webhook_receiver, started by `local.run`) verified."""
    response = httpx.get(f"{stack.webhook_receiver_url}/_receiver/events", timeout=5)
    assert response.status_code == 200, response.text
    return {event["id"]: event for event in response.json()["events"]}


def wait_for_event(
    stack: RunningStack,
    events: Callable[[], dict[str, dict[str, Any]]],
    event_id: str,
    done: Callable[[dict[str, Any]], bool] = lambda event: event["acknowledged"],
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        event = events().get(event_id)
        return event if event is not None and done(event) else None

    return stack.wait_for(f"webhook event {event_id}", probe, WEBHOOK_DEADLINE_SECONDS, interval=0.2)


def seconds_between(earlier: str, later: str) -> float:
    """Seconds from one of the API's timestamps (`2026-11-26T10:00:09.000000Z`) to another."""
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


def readme_verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """docs/webhooks.md's "how a receiver verifies it", verbatim: an implementation independent of globesms.webhooks."""
    pairs = [item.strip().partition("=")[::2] for item in header.split(",")]
    t = next((value for key, value in pairs if key == "t"), "")
    if not t.isdigit() or abs(time.time() - int(t)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest().encode()
    return any(key == "v1" and hmac.compare_digest(value.encode(), expected) for key, value in pairs)


def alibaba_report(provider_message_id: str, *, status: str = "2", task_id: str | None = None) -> dict[str, str]:
    """One report in Alibaba's push format (global API)."""
    report = {
        "To": MOBILE.lstrip("+"),
        "Status": status,
        "MessageId": provider_message_id,
        "SmsSize": "1",
        "SendDate": "Thu, 26 Nov 2026 10:27:00 +0800",
        "ReceiveDate": "Thu, 26 Nov 2026 10:27:05 +0800",
        "ErrorCode": "UNDELIV" if status == "2" else "success",
        "ErrorDescription": "The message could not be delivered to the handset." if status == "2" else "success",
    }
    if task_id is not None:
        report["TaskId"] = task_id
    return report


def push(stack: RunningStack, path: str, content: bytes, content_type: str = "application/json") -> httpx.Response:
    """A provider's push: no API key (providers cannot send one), the token is in the path."""
    return httpx.post(f"{stack.api_url}{path}", content=content, headers={"content-type": content_type}, timeout=30)


# ----------------------------------------------------------------------------------------------- receipts


@pytest.mark.parametrize("provider", list(SPECS))
def test_message_reaches_delivered_from_the_providers_own_receipt(local_stack: RunningStack, provider: str) -> None:
    message_id = send(local_stack, provider)

    view = final(local_stack, message_id)

    assert (view["status"], view["provider"], view["error"]) == ("DELIVERED", provider, None)
    (receipt,) = receipts(view)
    raw_status, _ = RAW_OUTCOMES[(provider, "DELIVERED")]
    assert (receipt["status"], receipt["raw_status"]) == ("DELIVERED", raw_status)
    assert receipt["provider_time"]  # the provider's own timestamp, kept as sent
    assert [e["status"] for e in view["events"] if e["type"] == "status"] == ["ACCEPTED", "SUBMITTED"]


FAILURES = [("aliyun", "UNDELIVERED"), ("tencent", "UNDELIVERED"), ("huawei", "UNDELIVERED"), ("tencent", "EXPIRED")]


@pytest.mark.parametrize(("provider", "outcome"), FAILURES, ids=[f"{p}-{o}" for p, o in FAILURES])
def test_failed_delivery_ends_with_the_carriers_code_and_its_event(
    local_stack: RunningStack, provider: str, outcome: str
) -> None:
    set_knobs(local_stack, provider, receipt_mix={outcome: 1.0})
    message_id = send(local_stack, provider, status_callback=f"{local_stack.webhook_receiver_url}/hooks")

    view = final(local_stack, message_id)

    raw_status, code = RAW_OUTCOMES[(provider, outcome)]
    assert view["status"] == outcome
    assert view["error"]["code"] == code and view["error"]["category"] == "recipient", view["error"]
    assert view["error"]["message"]  # the provider's description
    (receipt,) = receipts(view)
    assert (receipt["status"], receipt["raw_status"], receipt["error_code"]) == (outcome, raw_status, code)
    status = outcome.lower()
    event = wait_for_event(local_stack, lambda: stack_receiver_events(local_stack), f"{message_id}.{status}")
    assert (event["type"], event["status"]) == (f"message.{status}", outcome)


def test_batch_counts_messages_by_final_status(local_stack: RunningStack) -> None:
    set_knobs(local_stack, "aliyun", receipt_mix={"UNDELIVERED": 1.0})
    specs = [{"to": MOBILE, **SPECS[p]} for p in ("aliyun", "tencent", "huawei")]
    response = local_stack.api.post("/v1/messages", json={"messages": specs})
    assert response.status_code == 202, response.text
    batch_id = response.json()["batch_id"]

    def counts_final() -> dict[str, Any] | None:
        batch = local_stack.api.get(f"/v1/batches/{batch_id}").json()
        return batch if sum(batch["counts"].get(s, 0) for s in FINAL) == len(specs) else None

    batch = local_stack.wait_for(f"batch {batch_id} final", counts_final, FINAL_STATUS_DEADLINE_SECONDS, 0.2)
    assert batch["counts"] == {"DELIVERED": 2, "UNDELIVERED": 1}


def test_receipt_that_arrives_before_the_submitted_write_is_kept_and_applied(local_stack: RunningStack) -> None:
    """The emulators accept the send, push the receipt at once, and only then answer (2 s later, within the
    client's read timeout): the receipt finds a message that has no provider id yet. It is held, and applied
    when dispatch writes SUBMITTED."""
    early = ("aliyun", "tencent")  # Huawei's emulator answers before it schedules receipts
    for provider in early:
        set_knobs(local_stack, provider, receipt_delay_seconds=0.0, timeout_rate=1.0, timeout_seconds=2.0)
    message_ids = {provider: send(local_stack, provider) for provider in early}

    for provider, message_id in message_ids.items():
        view = final(local_stack, message_id)
        assert view["status"] == "DELIVERED", (provider, view)
        assert [e["status"] for e in view["events"]] == ["ACCEPTED", "SUBMITTED", "DELIVERED"], provider
        # It really came early: recorded well within the 2 s the send call took (submitted_at is when dispatch
        # started that call).
        (receipt,) = receipts(view)
        assert seconds_between(view["submitted_at"], receipt["at"]) < 1.5, (provider, view)


@pytest.fixture(scope="module")
def unknown_outcomes(local_stack: RunningStack, receipt_urls: dict[str, str]) -> dict[str, str]:
    """Two sends whose answers never come in time (each emulator holds its answer past the client's read timeout),
    though the provider accepted them: Alibaba pushes its receipt at once, before dispatch records the unknown
    outcome ("early"); Tencent a second after it ("late"). Sent together, once for the tests that need them;
    returns the message ids once dispatch has recorded both outcomes (the requesting test's `default_knobs` then
    resets the knobs)."""
    timing = {"early": ("aliyun", 0.0), "late": ("tencent", READ_TIMEOUT_SECONDS + 1)}
    # Set up before the requesting test's own `default_knobs`, so the knobs the test before left are still on: with
    # pytest-xdist's default distribution (not `make test`'s loadscope) that can be the aliyun-UNDELIVERED case of
    # test_failed_delivery_ends_with_the_carriers_code_and_its_event, and the early receipt came back UNDELIVERED.
    reset_knobs(local_stack, receipt_urls)
    for provider, delay in timing.values():
        # The test never waits for the held answer: the client gives up first.
        set_knobs(local_stack, provider, receipt_delay_seconds=delay, timeout_rate=1.0, timeout_seconds=30.0)
    message_ids = {when: send(local_stack, provider) for when, (provider, _) in timing.items()}
    for message_id in message_ids.values():
        view = message_where(local_stack, message_id, lambda v: v["status"] != "QUEUED", "to leave QUEUED")
        assert view["status"] in {"SENDING", *FINAL}, view  # final already: a receipt applied at once
        if view["status"] == "SENDING":
            assert view["error"]["category"] == "unknown_outcome", view["error"]
    return message_ids


def test_unknown_outcome_is_settled_by_the_receipt(local_stack: RunningStack, unknown_outcomes: dict[str, str]) -> None:
    """The receipt arrives after dispatch recorded SENDING (no provider id: the answer timed out); it is found
    through our id echoed in SessionContext and settles the message."""
    view = final(local_stack, unknown_outcomes["late"])

    assert view["status"] == "DELIVERED", view
    assert view["provider_message_id"]  # learnt from the receipt
    assert [e["status"] for e in receipts(view)] == ["DELIVERED"]


def test_message_settled_after_an_unknown_outcome_shows_no_error_and_keeps_the_sending_step(
    local_stack: RunningStack, unknown_outcomes: dict[str, str]
) -> None:
    view = final(local_stack, unknown_outcomes["late"])

    assert view["status"] == "DELIVERED", view
    assert [e["status"] for e in view["events"]] == ["ACCEPTED", "SENDING", "DELIVERED"], view["events"]
    assert view["error"] is None, view["error"]


def test_unknown_outcome_is_settled_by_a_receipt_that_came_before_the_timeout(
    local_stack: RunningStack, unknown_outcomes: dict[str, str]
) -> None:
    # Held receipts are applied right after the SENDING write, or never: a few seconds tell.
    view = message_where(
        local_stack, unknown_outcomes["early"], lambda v: v["status"] in FINAL, "to be settled", deadline_seconds=3
    )

    assert view["status"] == "DELIVERED", view


def test_duplicate_receipts_are_applied_once(
    local_stack: RunningStack, customer_endpoint: Callable[..., CustomerEndpoint]
) -> None:
    """Every emulator pushes each receipt twice. The second push of a final receipt queues the final event again
    (in case queueing failed the first time), so the receiver hearing `.delivered` twice shows that both pushes
    were processed; the message still holds the receipt once."""
    endpoint = customer_endpoint()
    for provider in SPECS:
        # A little later than elsewhere: a receipt that beats the SUBMITTED write is held, and its duplicate is
        # then absorbed by the hold (no second event to wait for).
        set_knobs(local_stack, provider, receipt_duplicate_rate=1.0, receipt_delay_seconds=1.0)
    message_ids = {provider: send(local_stack, provider, status_callback=endpoint.url) for provider in SPECS}

    for provider, message_id in message_ids.items():
        wait_for_event(local_stack, endpoint.verified, f"{message_id}.delivered", lambda e: e["attempts"] >= 2)
        view = message(local_stack, message_id)
        assert view["status"] == "DELIVERED", provider
        assert len(receipts(view)) == 1, (provider, view["events"])


def test_huawei_long_message_is_delivered_when_every_part_is_whatever_the_order(
    local_stack: RunningStack, receipt_urls: dict[str, str]
) -> None:
    """Reports for a 2-part message, part 2 first, in both of Huawei's shapes (JSON batch, then a form)."""
    set_knobs(local_stack, "huawei", receipt_delay_seconds=NEVER_SECONDS)  # only the reports pushed here
    message_id = send(local_stack, "huawei")
    provider_message_id = submitted(local_stack, message_id)["provider_message_id"]
    path = urlsplit(receipt_urls["huawei"]).path

    def report(sequence: int) -> dict[str, str]:
        return {
            "smsMsgId": provider_message_id,
            "total": "2",
            "sequence": str(sequence),
            "status": "DELIVRD",
            "statusDesc": "The user has received the SMS.",
            "source": "2",
            "updateTime": f"2026-11-26T10:00:0{sequence}Z",
            "orgCode": "000",
        }

    second = push(local_stack, path, json.dumps({"statusReportList": [report(2)]}).encode())
    assert second.status_code == 200, second.text
    assert message(local_stack, message_id)["status"] == "SUBMITTED"  # one part of two
    first = push(local_stack, path, urlencode(report(1)).encode(), "application/x-www-form-urlencoded")
    assert first.status_code == 200, first.text
    view = message(local_stack, message_id)
    assert view["status"] == "DELIVERED"
    assert [(e["part"], e["parts"]) for e in receipts(view)] == [(2, 2), (1, 2)]


def test_forged_token_is_refused_and_unreadable_body_is_400_and_neither_changes_anything(
    local_stack: RunningStack, receipt_urls: dict[str, str]
) -> None:
    set_knobs(local_stack, "aliyun", receipt_delay_seconds=NEVER_SECONDS)  # only the receipts pushed here
    message_id = send(local_stack, "aliyun")
    before = submitted(local_stack, message_id)
    body = json.dumps([alibaba_report(before["provider_message_id"], task_id=message_id)]).encode()
    right_path = urlsplit(receipt_urls["aliyun"]).path

    forged = push(local_stack, "/v1/receipts/aliyun/wrong-token", body)
    assert forged.status_code == 403, forged.text
    assert forged.json()["error"]["code"] == "FORBIDDEN"  # the function's answer, not API Gateway's
    no_token = push(local_stack, "/v1/receipts/aliyun", body)
    assert no_token.status_code == 403, no_token.text  # no such route without a token (API Gateway's answer)
    not_json = push(local_stack, right_path, b"To=85251234567&Status=2")
    assert not_json.status_code == 400, not_json.text
    assert not_json.json()["error"]["code"] == "UNREADABLE_RECEIPTS"
    assert message(local_stack, message_id) == before

    # The same body with the right token is a valid receipt: what the forged push would have done.
    genuine = push(local_stack, right_path, body)
    assert (genuine.status_code, genuine.json()) == (200, {"code": 0, "msg": "success"})
    after = message(local_stack, message_id)
    assert (after["status"], after["error"]["code"]) == ("UNDELIVERED", "UNDELIV")


def test_receipt_for_an_unknown_message_id_is_acknowledged_and_kept_for_reconciliation(
    local_stack: RunningStack, receipt_urls: dict[str, str]
) -> None:
    message_id = send(local_stack, "aliyun")
    before = final(local_stack, message_id)
    unknown = f"e2e-unknown-{uuid.uuid4().hex}"
    echoing = f"e2e-unknown-{uuid.uuid4().hex}"  # an id we never got, but echoing one of our messages
    body = json.dumps([alibaba_report(unknown), alibaba_report(echoing, status="1", task_id=message_id)]).encode()

    response = push(local_stack, urlsplit(receipt_urls["aliyun"]).path, body)

    assert (response.status_code, response.json()) == (200, {"code": 0, "msg": "success"})
    dynamodb = boto3.client("dynamodb", endpoint_url=local_stack.dynamodb_endpoint, region_name=local_stack.region)
    # A receipt naming none of our provider ids is held under its own id; so is one whose echo names one of our
    # messages that carries another provider id (it cannot be that message's: an echo alone names nobody).
    for key in (held_item_key(ProviderName.ALIYUN, unknown, None), held_item_key(ProviderName.ALIYUN, echoing, None)):
        stored = dynamodb.get_item(TableName=local_stack.outputs["TableName"], Key=key, ConsistentRead=True)
        assert "Item" in stored, f"the receipt held under {key} was not stored for reconciliation"
        assert len(stored["Item"]["events"]["L"]) == 1
    assert message(local_stack, message_id) == before


# ----------------------------------------------------------------------------------------------- webhooks


def test_delivered_event_arrives_signed_at_the_stacks_webhook_receiver(local_stack: RunningStack) -> None:
    message_id = send(local_stack, "aliyun", status_callback=f"{local_stack.webhook_receiver_url}/hooks")

    # The receiver lists only events whose Globesms-Signature verified with the stack's secret (else: 401).
    event = wait_for_event(local_stack, lambda: stack_receiver_events(local_stack), f"{message_id}.delivered")

    assert (event["type"], event["status"], event["attempts"]) == ("message.delivered", "DELIVERED", 1)
    assert f"{message_id}.submitted" not in stack_receiver_events(local_stack)  # not asked for


def test_event_is_retried_until_the_receiver_acknowledges_it(
    local_stack: RunningStack, customer_endpoint: Callable[..., CustomerEndpoint]
) -> None:
    endpoint = customer_endpoint(fail_first=1)  # 500 to the first delivery of each event
    message_id = send(local_stack, "tencent", status_callback=endpoint.url)

    event = wait_for_event(local_stack, endpoint.verified, f"{message_id}.delivered")

    assert (event["type"], event["status"], event["attempts"]) == ("message.delivered", "DELIVERED", 2)
    event_id = f"{message_id}.delivered"
    attempts = [(headers, body) for headers, body in endpoint.requests if json.loads(body)["id"] == event_id]
    assert len(attempts) == 2 and attempts[0][1] == attempts[1][1]  # the same event, byte for byte
    (secret,) = secrets_from_environment(os.environ)
    for headers, body in attempts:
        assert readme_verify(secret, headers["Globesms-Signature"], body)
        assert (headers["Globesms-Event-Id"], headers["Content-Type"]) == (event_id, "application/json")
    delivered = json.loads(attempts[-1][1])
    assert set(delivered) == {"id", "type", "message", "created_at"}
    assert delivered["message"] == message(local_stack, message_id)  # as GET /v1/messages/{id} shows it


def test_submitted_event_when_asked_for(local_stack: RunningStack) -> None:
    callback = f"{local_stack.webhook_receiver_url}/hooks"
    message_id = send(local_stack, "huawei", status_callback=callback, status_callback_on_submitted=True)

    on_delivered = wait_for_event(local_stack, lambda: stack_receiver_events(local_stack), f"{message_id}.delivered")
    on_submitted = wait_for_event(local_stack, lambda: stack_receiver_events(local_stack), f"{message_id}.submitted")

    assert (on_submitted["type"], on_submitted["status"]) == ("message.submitted", "SUBMITTED")
    assert (on_delivered["type"], on_delivered["status"]) == ("message.delivered", "DELIVERED")
