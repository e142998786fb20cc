"""A webhook signing secret per API key: the events of a key's messages are signed with its own secret, so one
client service cannot forge (or verify) another's events; keys without one keep the deployment's default."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from globesms.domain.status import Status
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.records import MessageRecord
from globesms.secrets import forget_stored_secrets
from globesms.webhooks.events import status_event
from globesms.webhooks.sender import WebhookSecretUnavailable, signed_request, webhook_secrets
from globesms.webhooks.signing import SIGNATURE_HEADER, verify

NOW = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)
DEFAULT = "whsec_deployment_default"
BILLING = "whsec_billing_own_secret"
LOGIN = "whsec_login_own_secret"
LOCAL_ENV = {
    "GLOBESMS_WEBHOOK_SECRET": DEFAULT,
    "GLOBESMS_WEBHOOK_KEY_SECRETS": json.dumps({"billing": BILLING, "login": LOGIN}),
}


def never(name: str) -> Any:
    raise AssertionError("Secrets Manager must not be read")


def record(owner: str | None) -> MessageRecord:
    return MessageRecord(
        id="01JBATCH.00000",
        batch_id="01JBATCH",
        to="+85251234567",
        type=MessageType.OTP,
        text="code 123456",
        provider=ProviderName.ALIYUN,
        status=Status.DELIVERED,
        status_callback="https://hooks.example.com/globesms",
        created_at="2026-12-04T09:59:00.000000Z",
        updated_at="2026-12-04T10:00:00.000000Z",
        owner=owner,
    )


def signed_event(owner: str | None, env: dict[str, str], fetch: Any = never) -> tuple[bytes, str]:
    delivery = status_event(record(owner), NOW)
    assert delivery is not None and delivery.owner == owner  # the queue body says whose event it is
    body, headers = signed_request(delivery, secret=webhook_secrets(env, fetch, owner=delivery.owner), now=NOW)
    return body, headers[SIGNATURE_HEADER]


def test_a_keys_event_verifies_with_its_own_secret_only() -> None:
    body, header = signed_event("billing", LOCAL_ENV)
    now = NOW.timestamp()
    assert verify(BILLING, header, body, now)
    assert not verify(LOGIN, header, body, now)  # another client service's secret
    assert not verify(DEFAULT, header, body, now)  # nor the default: the key's secret replaces it


def test_another_keys_secret_cannot_forge_its_event() -> None:
    """What login's service could produce for billing's message does not pass billing's check."""
    body, _ = signed_event("billing", LOCAL_ENV)
    forged = signed_request(status_event(record("billing"), NOW), secret=(LOGIN,), now=NOW)[1][SIGNATURE_HEADER]  # type: ignore[arg-type]
    assert not verify(BILLING, forged, body, NOW.timestamp())


@pytest.mark.parametrize("owner", [None, "intake", "a-key-without-its-own"])
def test_without_an_own_secret_the_default_signs(owner: str | None) -> None:
    body, header = signed_event(owner, LOCAL_ENV)
    assert verify(DEFAULT, header, body, NOW.timestamp())
    assert not verify(BILLING, header, body, NOW.timestamp())


def test_key_secrets_from_secrets_manager_and_rotation_signs_with_both() -> None:
    stored = {"GLOBESMS_WEBHOOK_SECRET": DEFAULT, "GLOBESMS_WEBHOOK_KEY_SECRETS": {"k1a2b3": "new-k1 old-k1"}}
    env = {"GLOBESMS_WEBHOOK_SECRET_NAME": "globesms/webhooks"}
    assert webhook_secrets(env, lambda name: stored, owner="k1a2b3") == ("new-k1", "old-k1")
    assert webhook_secrets(env, lambda name: stored, owner="other") == (DEFAULT,)
    assert webhook_secrets(env, lambda name: stored) == (DEFAULT,)
    body, header = signed_event("k1a2b3", env, lambda name: stored)
    assert verify("old-k1", header, body, NOW.timestamp()) and verify("new-k1", header, body, NOW.timestamp())


@pytest.fixture(autouse=True)
def _a_new_process() -> None:
    forget_stored_secrets()  # each test reads its secret as a process that has read none yet


def test_the_environments_key_secrets_win_over_the_stored_ones() -> None:
    stored = {"GLOBESMS_WEBHOOK_SECRET": DEFAULT, "GLOBESMS_WEBHOOK_KEY_SECRETS": {"billing": "stored"}}
    env = {"GLOBESMS_WEBHOOK_SECRET_NAME": "n", "GLOBESMS_WEBHOOK_KEY_SECRETS": json.dumps({"billing": BILLING})}
    assert webhook_secrets(env, lambda name: stored, owner="billing") == (BILLING,)


@pytest.mark.parametrize(
    ("env", "stored", "reason"),
    [
        ({**LOCAL_ENV, "GLOBESMS_WEBHOOK_KEY_SECRETS": "{not json"}, None, "must be a JSON object"),
        ({**LOCAL_ENV, "GLOBESMS_WEBHOOK_KEY_SECRETS": '["billing"]'}, None, "API key id -> secret"),
        ({**LOCAL_ENV, "GLOBESMS_WEBHOOK_KEY_SECRETS": '{"billing": 7}'}, None, "API key id -> secret"),
        ({**LOCAL_ENV, "GLOBESMS_WEBHOOK_KEY_SECRETS": '{"billing": "  "}'}, None, "empty"),
        (
            {"GLOBESMS_WEBHOOK_SECRET_NAME": "n"},
            {"GLOBESMS_WEBHOOK_SECRET": DEFAULT, "GLOBESMS_WEBHOOK_KEY_SECRETS": "billing=x"},
            "API key id -> secret",
        ),
    ],
)
def test_an_unusable_key_secret_fails_the_delivery_never_falls_back_to_the_default(
    env: dict[str, str], stored: Any, reason: str
) -> None:
    with pytest.raises(WebhookSecretUnavailable) as failed:
        webhook_secrets(env, (lambda name: stored) if stored is not None else never, owner="billing")
    assert reason in failed.value.reason and not failed.value.permanent
    assert BILLING not in failed.value.reason


def test_the_local_receiver_takes_the_default_and_every_keys_own_secret() -> None:
    from local.webhook_receiver import secrets_from_environment

    assert secrets_from_environment(LOCAL_ENV) == [DEFAULT, BILLING, LOGIN]
    assert secrets_from_environment({**LOCAL_ENV, "GLOBESMS_WEBHOOK_KEY_SECRETS": "{bad"}) == [DEFAULT]
