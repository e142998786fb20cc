"""Webhook signing, one delivery over httpx.MockTransport, the backoff schedule, the secret, the SQS batching."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from globesms.aws.sqs_batches import ENTRIES_PER_CALL, SendFailed, group_calls, send_in_batches
from globesms.aws.sqs_queues import SqsWebhookQueue
from globesms.config import settings
from globesms.models.webhooks import WebhookDelivery, WebhookEvent
from globesms.secrets import forget_stored_secrets
from globesms.webhooks.sender import (
    BACKOFF_CAP_SECONDS,
    WebhookFailed,
    WebhookSecretUnavailable,
    backoff_ceiling,
    backoff_seconds,
    deliver,
    parse_delivery,
    url_host,
    webhook_secrets,
)
from globesms.webhooks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign, signature, verify
from local.webhook_receiver import WebhookReceiver

NOW = datetime(2026, 11, 26, 10, 0, 9, tzinfo=UTC)
T = int(NOW.timestamp())
SECRET = "whsec_unit_test_secret"
BODY = b'{"id":"B.00000.delivered","type":"message.delivered"}'


def delivery(url: str = "https://hooks.example.com/globesms?account=acme") -> WebhookDelivery:
    return WebhookDelivery(
        url=url,
        event=WebhookEvent(
            id="B.00000.delivered",
            type="message.delivered",
            message={"id": "B.00000", "to": "+85251234567", "status": "DELIVERED", "text_parts": ["ü", '"q"']},
            created_at="2026-11-26T10:00:09.000000Z",
        ),
    )


# ---------------------------------------------------------------- signing


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, T, BODY) == expected
    assert sign(SECRET, T, BODY) == f"t={T},v1={expected}"


def test_a_signed_body_verifies() -> None:
    assert verify(SECRET, sign(SECRET, T, BODY), BODY, now=T)
    assert verify(SECRET, f" t={T} , v1={signature(SECRET, T, BODY)} ", BODY, now=T + 1)


@pytest.mark.parametrize(
    "tampered",
    [BODY.replace(b"delivered", b"undelivered"), BODY + b" ", BODY[:-1], b""],
)
def test_a_tampered_body_does_not_verify(tampered: bytes) -> None:
    assert not verify(SECRET, sign(SECRET, T, BODY), tampered, now=T)


def test_a_tampered_timestamp_or_signature_does_not_verify() -> None:
    header = sign(SECRET, T, BODY)
    assert not verify(SECRET, header.replace(f"t={T}", f"t={T + 1}"), BODY, now=T)
    digest = signature(SECRET, T, BODY)
    flipped = ("0" if digest[0] != "0" else "1") + digest[1:]
    assert not verify(SECRET, f"t={T},v1={flipped}", BODY, now=T)
    assert not verify("another-secret", header, BODY, now=T)


def test_stale_and_future_timestamps_are_refused() -> None:
    header = sign(SECRET, T, BODY)
    assert verify(SECRET, header, BODY, now=T + 300)
    assert not verify(SECRET, header, BODY, now=T + 301)
    assert verify(SECRET, header, BODY, now=T - 300)
    assert not verify(SECRET, header, BODY, now=T - 301)
    assert verify(SECRET, header, BODY, now=T + 1000, tolerance=1000)


def test_rotation_signs_with_every_secret_and_a_receiver_with_either_accepts() -> None:
    header = sign(["whsec_new", "whsec_old"], T, BODY)
    assert header.count("v1=") == 2
    assert verify("whsec_new", header, BODY, now=T)
    assert verify("whsec_old", header, BODY, now=T)
    assert not verify("whsec_other", header, BODY, now=T)
    # and a receiver in the middle of a rotation knows both
    assert verify(["whsec_newer", "whsec_new"], sign("whsec_new", T, BODY), BODY, now=T)


def test_other_schemes_are_ignored() -> None:
    header = f"t={T},v0=deadbeef,v1={signature(SECRET, T, BODY)}"
    assert verify(SECRET, header, BODY, now=T)
    assert not verify(SECRET, f"t={T},v0={signature(SECRET, T, BODY)}", BODY, now=T)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"v1={signature(SECRET, T, BODY)}",  # no timestamp
        f"t={T}",  # no signature
        f"t={T},t={T},v1={signature(SECRET, T, BODY)}",  # two timestamps
        f"t=-{T},v1={signature(SECRET, T, BODY)}",
        f"t={T}.5,v1={signature(SECRET, T, BODY)}",
        f"t={'9' * 5000},v1={signature(SECRET, T, BODY)}",  # would overflow int() parsing limits
        f"t={T},v1=ünïcødé",
        f"t={T},v1={signature(SECRET, T, BODY)},v1",  # an item without "="
        f"t={T}," + ",".join(["v1=00"] * 20 + [f"v1={signature(SECRET, T, BODY)}"]),  # too many signatures
    ],
)
def test_malformed_headers_do_not_verify(header: str) -> None:
    assert not verify(SECRET, header, BODY, now=T)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign("", T, BODY)
    with pytest.raises(ValueError, match="secret"):
        sign([], T, BODY)


@given(
    secret=st.text(min_size=1, max_size=40),
    body=st.binary(max_size=300),
    timestamp=st.integers(min_value=0, max_value=10**11),
    flip=st.integers(min_value=0),
)
def test_any_body_round_trips_and_any_changed_byte_is_caught(
    secret: str, body: bytes, timestamp: int, flip: int
) -> None:
    header = sign(secret, timestamp, body)
    assert verify(secret, header, body, now=timestamp)
    if body:
        index = flip % len(body)
        changed = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
        assert not verify(secret, header, changed, now=timestamp)


# ---------------------------------------------------------------- one delivery


Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, **options: Any) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return httpx.Client(transport=httpx.MockTransport(record), **options), seen


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_a_2xx_answer_is_a_delivery(status: int) -> None:
    http, seen = client(lambda request: httpx.Response(status))
    deliver(delivery(), http=http, secret=SECRET, now=NOW)
    assert len(seen) == 1


def test_the_request_is_the_signed_compact_event_with_short_timeouts() -> None:
    http, seen = client(lambda request: httpx.Response(204))
    sent = delivery()
    deliver(sent, http=http, secret=SECRET, now=NOW)
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://hooks.example.com/globesms?account=acme"
    assert request.content == sent.event.model_dump_json().encode()
    assert b": " not in request.content  # compact: the bytes signed are the bytes sent
    assert json.loads(request.content) == sent.event.model_dump(mode="json")
    assert request.headers["content-type"] == "application/json"
    assert request.headers[EVENT_ID_HEADER] == "B.00000.delivered"
    assert request.headers[SIGNATURE_HEADER].startswith(f"t={T},v1=")
    assert verify(SECRET, request.headers[SIGNATURE_HEADER], request.content, now=T + 5)
    assert request.extensions["timeout"] == {"connect": 2.0, "read": 5.0, "write": 5.0, "pool": 2.0}


@pytest.mark.parametrize("status", [400, 401, 404, 410, 429, 500, 502, 503])
def test_any_other_status_fails_with_the_code_and_no_body(status: int) -> None:
    http, _ = client(lambda request: httpx.Response(status, text="Traceback: internal secret details"))
    with pytest.raises(WebhookFailed) as failed:
        deliver(delivery(), http=http, secret=SECRET, now=NOW)
    assert failed.value.reason == f"HTTP {status}"
    assert not failed.value.permanent
    assert "secret details" not in str(failed.value)


def test_a_redirect_is_not_followed_even_by_a_client_that_would() -> None:
    def redirect(request: httpx.Request) -> httpx.Response:
        if request.url.host == "elsewhere.example.org":
            return httpx.Response(200)
        return httpx.Response(302, headers={"Location": "https://elsewhere.example.org/steal"})

    http, seen = client(redirect, follow_redirects=True)
    with pytest.raises(WebhookFailed, match=r"HTTP 302 \(redirects are not followed\)"):
        deliver(delivery(), http=http, secret=SECRET, now=NOW)
    assert [r.url.host for r in seen] == ["hooks.example.com"]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (httpx.ReadTimeout, "timeout (ReadTimeout)"),
        (httpx.ConnectTimeout, "timeout (ConnectTimeout)"),
        (httpx.WriteTimeout, "timeout (WriteTimeout)"),
        (httpx.ConnectError, "connection error (ConnectError)"),
        (httpx.RemoteProtocolError, "connection error (RemoteProtocolError)"),
    ],
)
def test_timeouts_and_connection_errors_fail_and_are_retryable(error: type[httpx.TransportError], reason: str) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error("boom https://hooks.example.com/globesms?account=acme", request=request)

    http, _ = client(fail)
    with pytest.raises(WebhookFailed) as failed:
        deliver(delivery(), http=http, secret=SECRET, now=NOW)
    assert (failed.value.reason, failed.value.permanent) == (reason, False)
    assert "account=acme" not in str(failed.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/globesms",
        "ftp://hooks.example.com/globesms",
        "https:///no-host",
        "not a url",
        "http://127.0.0.1:9200/hooks",  # loopback only when the local stack allows it
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_a_url_check_callback_url_refuses_is_never_requested(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", raising=False)
    http, seen = client(lambda request: httpx.Response(200))
    with pytest.raises(WebhookFailed) as failed:
        deliver(delivery(url), http=http, secret=SECRET, now=NOW)
    assert failed.value.permanent
    assert failed.value.reason.startswith("callback URL refused: status_callback must")  # the rule, never the URL
    assert seen == []


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("https://hooks.example.com:443:80/x", "numeric port"),  # httpx refused it at delivery, unsettled
        ("https://hooks.example.com:99999/x", "numeric port"),
        ("https://hooks.example.com:0/x", "numeric port"),
        ("https://hooks.exam\tple.com/x", "control characters"),  # urlsplit drops the tab; httpx refuses it
        ("https://hooks.example.com/a\tb", "control characters"),
        (" https://hooks.example.com/x", "start with a space"),  # httpx reads a relative URL
        ("https://hooks.example.com/x\n", "control characters"),
        ("https://hooks .example.com/x", "no host name has"),
        ("https://hooks%2eexample.com/x", "no host name has"),  # sent as written: never resolves
        ("https://hooks.example.com\\x", "no host name has"),
        ("https://[2606:4700::1111%25eth0]/x", "without a zone"),
        ("https://[v1.x]/x", "IPv6 address"),
        ("https://\uff42\u00fccher.example.com/x", "internationalised"),  # full-width b: httpx refuses, not maps
        ("https://224.0.0.1/x", r"public \(global\)"),  # multicast: is_global says True
        ("https://[ff02::1]/x", r"public \(global\)"),
        ("https://[fec0::1]/x", r"public \(global\)"),  # IPv6 site-local
    ],
)
def test_a_url_an_http_client_would_not_send_as_written_is_refused_at_accept_and_delivery(
    url: str, rule: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from globesms.domain.callback_urls import check_callback_url

    monkeypatch.delenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", raising=False)
    with pytest.raises(ValueError, match=rule):
        check_callback_url(url)
    http, seen = client(lambda request: httpx.Response(200))
    with pytest.raises(WebhookFailed) as failed:  # one stored before the rule: failed for good, and settled
        deliver(delivery(url), http=http, secret=SECRET, now=NOW)
    assert failed.value.permanent and seen == []


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks:S3cr3tT0ken\uff20example.com/cb",  # full-width @: NFKC reads user info and host
        "https://hooks:S3cr3tT0ken@example\uff0ecom\uff0fcb",  # full-width /
        "https://hooks:S3cr3tT0ken@[2606:4700::1111/cb",  # a bracket that does not pair
    ],
)
def test_a_url_urlsplit_cannot_split_is_refused_by_its_rule_without_quoting_it(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # urllib's ValueError quoted the whole netloc, the user info's token included, and it became the 422's rule
    # (and an intake refusal's record, and a delivery's logged reason).
    from pydantic import ValidationError

    from globesms.models.api import MessageSpec

    monkeypatch.delenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", raising=False)
    with pytest.raises(ValidationError) as refused:
        MessageSpec.model_validate({"to": "+85251234567", "text": "x", "status_callback": url})
    (error,) = refused.value.errors(include_input=False)
    assert error["loc"] == ("status_callback",) and "unpaired brackets" in error["msg"]
    assert "S3cr3tT0ken" not in str(error)
    http, seen = client(lambda request: httpx.Response(200))
    with pytest.raises(WebhookFailed) as failed:
        deliver(delivery(url), http=http, secret=SECRET, now=NOW)
    assert failed.value.permanent and seen == [] and "S3cr3tT0ken" not in failed.value.reason


@pytest.mark.parametrize(
    "url",
    [
        "https://bücher.example.com/x",
        "https://xn--bcher-kva.example.com/x",
        "https://hooks.example.com/cb?name=Jane Doe",  # sent as %20, as before
        "https://hooks.example.com:8443/a b",
        "https://hooks.example.com/cb?name=Jane\u00a0",  # Unicode space at the end: sent %-escaped
        "https://us er@hooks.example.com/cb",
        "https://hooks_prod.xn--p1ai/x",  # an ASCII name: sent as written
        "https://b\u00fccher\u3002example\uff0ecom/x",  # a name with ideographic dots: sent as bücher.example.com
    ],
)
def test_urls_an_http_client_sends_as_written_are_callbacks(url: str) -> None:
    from globesms.domain.callback_urls import check_callback_url

    assert check_callback_url(url) == url


def test_loopback_http_is_delivered_when_the_local_stack_allows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", "true")
    http, seen = client(lambda request: httpx.Response(200))
    deliver(delivery("http://127.0.0.1:9200/hooks"), http=http, secret=SECRET, now=NOW)
    assert [str(r.url) for r in seen] == ["http://127.0.0.1:9200/hooks"]


def test_delivery_without_a_secret_sends_nothing() -> None:
    http, seen = client(lambda request: httpx.Response(200))
    with pytest.raises(ValueError, match="secret"):
        deliver(delivery(), http=http, secret="", now=NOW)
    assert seen == []


# ---------------------------------------------------------------- the queue body


def test_a_queue_body_is_validated_with_the_model() -> None:
    assert parse_delivery(delivery().model_dump_json()) == delivery()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ('{"url": "https://x.example", "event": {"type": "t", "message": {}, "created_at": "now"}}', "event.id"),
        ('{"event": {"id": "+85251234567", "type": "t", "message": {}, "created_at": "now"}}', "url"),
        ('{"url": "https://x.example", "event": "+85251234567"}', "event"),
        ('{"url": "https://x.example", "event": {"id": "B.1", "type": ', "body"),
    ],
)
def test_a_bad_queue_body_fails_for_good_naming_fields_not_values(body: str, fields: str) -> None:
    with pytest.raises(WebhookFailed) as failed:
        parse_delivery(body)
    assert failed.value.permanent
    assert failed.value.reason == f"invalid queue body: {fields}"
    assert "+852" not in failed.value.reason


def test_only_the_host_of_a_url_is_shown() -> None:
    assert url_host("https://Hooks.Example.com:8443/path?token=abc") == "hooks.example.com"
    assert url_host("https://[::1") is None


# ---------------------------------------------------------------- backoff


def test_backoff_ceilings_grow_exponentially_up_to_the_cap() -> None:
    assert [backoff_ceiling(n) for n in range(1, 10)] == [30, 60, 120, 240, 480, 900, 900, 900, 900]
    assert backoff_ceiling(0) == backoff_ceiling(-3) == 30
    assert backoff_ceiling(10**6) == BACKOFF_CAP_SECONDS == 900


@pytest.mark.parametrize("receives", [1, 2, 3, 5, 7, 8, 50])
def test_backoff_is_full_jitter_within_bounds(receives: int) -> None:
    ceiling = backoff_ceiling(receives)
    delays = {backoff_seconds(receives) for _ in range(2000)}
    assert all(1 <= d <= ceiling for d in delays)
    assert len(delays) > min(ceiling // 4, 50)  # spread out, not one fixed value
    assert backoff_seconds(receives, uniform=lambda low, high: high) == ceiling
    assert backoff_seconds(receives, uniform=lambda low, high: low) == 1  # never 0: no hot retry loop


# ---------------------------------------------------------------- the signing secret


def test_the_environment_secret_wins_and_may_hold_several() -> None:
    def never(name: str) -> Any:
        raise AssertionError("Secrets Manager must not be read")

    env = {"GLOBESMS_WEBHOOK_SECRET": " new  old ", "GLOBESMS_WEBHOOK_SECRET_NAME": "globesms/webhooks"}
    assert webhook_secrets(env, fetch=never) == ("new", "old")


def test_the_secret_comes_from_secrets_manager_by_name() -> None:
    asked: list[str] = []

    def fetch(name: str) -> Any:
        asked.append(name)
        return {"GLOBESMS_WEBHOOK_SECRET": "whsec_deployed"}

    assert webhook_secrets({"GLOBESMS_WEBHOOK_SECRET_NAME": "globesms/webhooks"}, fetch=fetch) == ("whsec_deployed",)
    assert asked == ["globesms/webhooks"]


@pytest.fixture(autouse=True)
def _a_new_process() -> None:
    forget_stored_secrets()  # no last good stored secret from another test


@pytest.mark.parametrize(
    "edited",
    [
        {"GLOBESMS_WEBHOOK_SECRET": "whsec_new", "GLOBESMS_WEBHOOK_KEY_SECRETS": {"billing": 42}},
        {"GLOBESMS_WEBHOOK_SECRET": ""},
        {"WEBHOOK_SECRET": "whsec_new"},
        {"GLOBESMS_WEBHOOK_SECRET": "whsec_new", "GLOBESMS_WEBHOOK_KEY_SECRETS": {"billing": "  "}},
        RuntimeError("throttled"),
    ],
)
def test_a_bad_edit_of_the_stored_secret_leaves_the_last_good_one_signing(edited: Any) -> None:
    """Until 2026-12-06 an edit that cleared the secret, misnamed its field or wrote a key's secret as a number
    stopped every customer's webhooks within 5 minutes (dead-lettered after 8 receives) (found by a review)."""
    answers = iter([{"GLOBESMS_WEBHOOK_SECRET": "whsec_good"}, edited, {"GLOBESMS_WEBHOOK_SECRET": "whsec_fixed"}])

    def fetch(name: str) -> Any:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    env = {"GLOBESMS_WEBHOOK_SECRET_NAME": "globesms/webhooks"}
    assert webhook_secrets(env, fetch=fetch) == ("whsec_good",)
    assert webhook_secrets(env, fetch=fetch) == ("whsec_good",)  # the bad edit refused
    assert webhook_secrets(env, fetch=fetch) == ("whsec_fixed",)  # a good one replaces it


@pytest.mark.parametrize(
    ("env", "stored", "reason"),
    [
        ({}, None, "no webhook secret"),
        ({"GLOBESMS_WEBHOOK_SECRET": "  "}, None, "no webhook secret"),
        ({"GLOBESMS_WEBHOOK_SECRET_NAME": "n"}, "plain string", "must be a JSON object"),
        ({"GLOBESMS_WEBHOOK_SECRET_NAME": "n"}, {"OTHER": "x"}, "must be a JSON object"),
        ({"GLOBESMS_WEBHOOK_SECRET_NAME": "n"}, {"GLOBESMS_WEBHOOK_SECRET": " "}, "empty"),
        ({"GLOBESMS_WEBHOOK_SECRET_NAME": "n"}, RuntimeError("AccessDenied for whsec_leaked"), "RuntimeError"),
    ],
)
def test_a_missing_or_unreadable_secret_is_retryable_and_says_why(
    env: dict[str, str], stored: Any, reason: str
) -> None:
    def fetch(name: str) -> Any:
        if isinstance(stored, Exception):
            raise stored
        return stored

    with pytest.raises(WebhookSecretUnavailable) as failed:
        webhook_secrets(env, fetch=fetch)
    assert reason in failed.value.reason
    assert not failed.value.permanent
    assert "whsec_leaked" not in failed.value.reason


# ---------------------------------------------------------------- SendMessageBatch grouping and retries


class FakeSqs:
    """send_message_batch that fails the entries `script` names, call by call."""

    def __init__(self, script: list[list[dict[str, Any]]] | None = None) -> None:
        self.script = script or []
        self.calls: list[tuple[str, list[dict[str, str]]]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append((QueueUrl, Entries))
        failed = self.script.pop(0) if self.script else []
        return {"Successful": [], "Failed": failed}


def test_calls_hold_at_most_ten_entries_and_the_byte_limit() -> None:
    assert [len(c) for c in group_calls([str(i) for i in range(23)])] == [10, 10, 3]
    assert ENTRIES_PER_CALL == 10
    assert [len(c) for c in group_calls(["a" * 400] * 5, max_bytes=1000)] == [2, 2, 1]
    assert group_calls(["x" * 2000, "y"], max_bytes=1000) == [["x" * 2000], ["y"]]  # too big alone: SQS decides
    assert group_calls([]) == []


def test_only_the_entries_sqs_failed_are_retried() -> None:
    sqs = FakeSqs([[{"Id": "1", "SenderFault": False, "Code": "InternalError"}], []])
    send_in_batches(sqs, "q", ["a", "b", "c"])  # type: ignore[arg-type]
    assert [[e["MessageBody"] for e in entries] for _, entries in sqs.calls] == [["a", "b", "c"], ["b"]]


# SQS's SendMessage: "#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF. Any characters not
# included in this list are rejected" (InvalidMessageContents, the sender's fault).
_SQS_ALLOWED = re.compile("[\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


@pytest.mark.parametrize("text", ["hi \ufffe", "\uffff", "a lone \ud800 surrogate", "中文 and ✓"])
def test_a_body_holding_what_sqs_refuses_goes_as_json_escapes_of_the_same_text(text: str) -> None:
    """A reply's text may carry U+FFFE or U+FFFF (a UCS-2 SMS can): its event was refused as the sender's fault,
    and the reply push answered 5xx at every retry, with the other replies in it (a STOP among them) (a review)."""
    body = json.dumps({"text": text}, ensure_ascii=False)
    sqs = FakeSqs([])
    send_in_batches(sqs, "q", [body])  # type: ignore[arg-type]
    ((_, [entry]),) = sqs.calls
    assert _SQS_ALLOWED.fullmatch(entry["MessageBody"])
    assert json.loads(entry["MessageBody"]) == {"text": text}
    assert ("中文" in entry["MessageBody"]) is ("中文" in text)  # what SQS takes stays as it is (no size grown)


def test_a_sender_fault_fails_at_once_and_persistent_failures_after_three_attempts() -> None:
    sqs = FakeSqs([[{"Id": "0", "SenderFault": True, "Code": "InvalidMessageContents"}]])
    with pytest.raises(SendFailed, match=r"refused 1 webhook\(s\): InvalidMessageContents"):
        send_in_batches(sqs, "q", ["a"], noun="webhook")  # type: ignore[arg-type]
    assert len(sqs.calls) == 1
    sqs = FakeSqs([[{"Id": "0", "SenderFault": False}]] * 5)
    with pytest.raises(SendFailed, match="after 3 attempts"):
        send_in_batches(sqs, "q", ["a"])  # type: ignore[arg-type]
    assert len(sqs.calls) == 3


def test_the_webhook_queue_sends_one_message_per_delivery() -> None:
    sqs = FakeSqs()
    queue = SqsWebhookQueue("https://sqs.example/webhooks", client_factory=lambda: sqs)
    queue.send_webhooks([delivery()] * 12)
    assert [len(entries) for _, entries in sqs.calls] == [10, 2]
    assert {url for url, _ in sqs.calls} == {"https://sqs.example/webhooks"}
    assert WebhookDelivery.model_validate_json(sqs.calls[0][1][0]["MessageBody"]) == delivery()
    queue.send_webhooks([])
    assert len(sqs.calls) == 2
    with pytest.raises(SendFailed, match="GLOBESMS_WEBHOOK_QUEUE_URL"):
        SqsWebhookQueue("", client_factory=lambda: sqs).send_webhooks([delivery()])


# ---------------------------------------------------------------- the local receiver's rules


def signed(event_id: str, *, secret: str = SECRET, at: int = T) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"id": event_id, "type": "message.delivered", "message": {"status": "DELIVERED"}}).encode()
    return {"globesms-signature": sign(secret, at, body), "Globesms-Event-Id": event_id}, body


def test_the_receiver_refuses_bad_signatures_and_fails_the_first_tries_of_each_event() -> None:
    receiver = WebhookReceiver([SECRET], fail_first=2, clock=lambda: T)
    assert receiver.receive(*signed("A", secret="wrong")).status == 401
    assert receiver.receive(*signed("A", at=T - 3600)).status == 401
    assert [receiver.receive(*signed("A")).status for _ in range(4)] == [500, 500, 200, 200]
    assert receiver.receive(*signed("B")).status == 500
    answer = receiver.receive(*signed("A"))
    assert answer.body == {"ok": True, "duplicate": True} and answer.line and "DUPLICATE" in answer.line
    assert {e["id"]: (e["attempts"], e["acknowledged"]) for e in receiver.listing()} == {
        "A": (5, True),
        "B": (1, False),
    }
    headers, body = signed("C")
    assert receiver.receive(headers, body + b" ").status == 401


def test_the_receiver_knows_stale_from_fresh() -> None:
    headers, body = signed("A")
    fresh = WebhookReceiver([SECRET], clock=lambda: T + timedelta(minutes=4).total_seconds())
    assert fresh.receive(headers, body).status == 200
    assert WebhookReceiver([SECRET], clock=lambda: T + 301).receive(headers, body).status == 401


def test_a_long_or_broken_answer_after_a_2xx_is_still_a_delivery() -> None:
    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise httpx.ReadError("reset")

    endless = (b"x" * 65_536 for _ in range(10**9))  # read up to the drain limit, then the connection is dropped
    for response in (httpx.Response(200, content=endless), httpx.Response(202, content=broken())):
        http, seen = client(lambda request, answer=response: answer)
        deliver(delivery(), http=http, secret=SECRET, now=NOW)
        assert len(seen) == 1


def readme_verify() -> Callable[..., bool]:
    """The receiver snippet of docs/webhooks.md, run as written."""
    readme = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    section = readme.split("# Webhooks\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)  # noqa: S102 - our own documentation
    verify_snippet: Callable[..., bool] = namespace["verify"]
    return verify_snippet


def test_the_readme_snippet_verifies_what_the_sender_signs() -> None:
    snippet = readme_verify()
    now = int(time.time())
    header = sign(["whsec_new", "whsec_old"], now, BODY)
    assert snippet("whsec_old", header, BODY) and snippet("whsec_new", header, BODY)
    assert not snippet("whsec_other", header, BODY)
    assert not snippet("whsec_new", header, BODY + b" ")
    assert not snippet("whsec_new", sign("whsec_new", now - 301, BODY), BODY)
    assert not snippet("whsec_new", "garbage", BODY)
    assert not snippet("whsec_new", f"t={now},v1=ünï", BODY)
    # A timestamp int() refuses is False, not a crash of the receiver (its caller answers 500 to anyone).
    for t in ("²", "1" * 5000, "١٢٣"):
        assert not snippet("whsec_new", f"t={t},v1=00", BODY)


# ---- which addresses a status_callback may name (accept: literals; delivery: tests/integration) ----


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "10.1.2.3",
        "127.0.0.1",
        "[::1]",
        "[::ffff:169.254.169.254]",
        "[fd00::1]",
        "localhost",
        "0x7f000001",
        "2130706433",
        "127.1",
        "[64:ff9b::a9fe:a9fe]",
        "[::169.254.169.254]",  # IPv4-compatible: `ipaddress` calls it global
        "[::ffff:0:169.254.169.254]",  # IPv4-translated: likewise
        "[::8.8.8.8]",  # refused whatever the IPv4: no public endpoint is reached this way
        "0.0.0.0",  # noqa: S104 - an address refused, not bound
        # Dots IDNA splits labels at, as httpx reads the host: these passed for names, and delivery refused them.
        "127\u30020\u30020\u30021",
        "169\uff0e254\uff0e169\uff0e254",
        "10\uff610\uff610\uff611",
        "192.168.1\u30021",
    ],
)
def test_a_callback_to_an_address_that_is_not_public_is_refused_at_accept(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    from globesms.models.api import MessageSpec

    monkeypatch.delenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", raising=False)
    with pytest.raises(ValidationError) as refused:
        MessageSpec.model_validate({"to": "+85251234567", "text": "x", "status_callback": f"https://{host}/hook"})
    (error,) = refused.value.errors()
    assert error["loc"] == ("status_callback",) and "address" in error["msg"]


def test_public_addresses_and_names_pass_accept_and_loopback_only_in_the_local_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from globesms.domain.callback_urls import check_callback_url

    monkeypatch.delenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", raising=False)
    for url in ("https://hooks.example.com/x", "https://93.184.216.34/x", "https://[2606:4700::1111]/x"):
        assert check_callback_url(url) == url
    monkeypatch.setenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", "true")
    settings.cache_clear()  # settings are read once per process: this one is a new process's environment
    assert check_callback_url("https://127.0.0.1:9200/x") == "https://127.0.0.1:9200/x"
    with pytest.raises(ValueError, match="not a public"):
        check_callback_url("https://10.0.0.1/x")  # the local setting allows loopback, never private ranges
