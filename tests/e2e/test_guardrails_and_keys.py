"""End to end through the local stack (`python -m local.run`) with two client-service keys (`GLOBESMS_API_KEYS`)
and guardrail data overridden in SSM (`GuardrailsParametersPath`): a dry run, a denied country, a per-key spend
limit reached, a refused recipient giving its reservation back, and two keys that do not see each other's messages,
before and after dispatch (docs/guardrails.md, docs/api.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import httpx
import pytest

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e

BILLING_KEY = "e2e-billing-key-0123456789"
LOGIN_KEY = "e2e-login-key-01234567890"
PARAMETERS_PATH = "/e2e/guardrails"
LOCAL_STACK_ENV = {
    "GLOBESMS_API_KEYS": f"billing={BILLING_KEY},login={LOGIN_KEY}",
    "LOCAL_PARAMETERS": json.dumps({"GuardrailsParametersPath": PARAMETERS_PATH}),
}
PERMISSIONS = {"version": 1, "types": {"OTP": {"deny": ["GB"]}}}
LIMITS = {"version": 1, "monthly_spend": None, "keys": {"login": {"monthly_spend": "0.10"}}}
HK, SG, GB = "+85251234567", "+6591234567", "+447400123456"  # Aliyun prices them 0.044, 0.038, 0.040 USD


@pytest.fixture(scope="module")
def keys(local_stack: RunningStack) -> Iterator[dict[str, httpx.Client]]:
    """The guardrail data in SSM before any request reads it (each function reads the parameters on first use),
    and a client per key."""
    ssm = boto3.client("ssm", endpoint_url=local_stack.aws_endpoint, region_name=local_stack.region)
    for name, document in (("permissions", PERMISSIONS), ("limits", LIMITS)):
        ssm.put_parameter(Name=f"{PARAMETERS_PATH}/{name}", Value=json.dumps(document), Type="String", Overwrite=True)
    clients = {
        name: httpx.Client(base_url=local_stack.api_url, headers={"x-api-key": key}, timeout=30)
        for name, key in (("billing", BILLING_KEY), ("login", LOGIN_KEY))
    }
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()


def usage(api: httpx.Client) -> dict[str, Any]:
    answer = api.get("/v1/usage")
    assert answer.status_code == 200, answer.text
    shown: dict[str, Any] = answer.json()
    return shown


def test_a_dry_run_quotes_refuses_the_denied_country_and_reserves_nothing(keys: dict[str, httpx.Client]) -> None:
    billing = keys["billing"]
    before = usage(billing)
    body = {"to": [HK, GB, SG], "text": "Your code is 123456", "type": "OTP", "dry_run": True}
    first = billing.post("/v1/messages", json=body)
    assert first.status_code == 200, first.text
    quote = first.json()
    assert (quote["dry_run"], quote["accepted"], quote["rejected"]) == (True, 2, 1)
    assert [(m["to"], m["provider"], m["cost"]) for m in quote["messages"]] == [
        (HK, "aliyun", "0.044"),
        (SG, "aliyun", "0.038"),
    ]
    assert quote["errors"] == [
        {"index": 1, "to": GB, "code": "COUNTRY_NOT_ALLOWED", "message": "GB is in the deny-list for OTP messages"}
    ]
    assert quote["totals"] == {"recipients": 2, "segments": 2, "cost": {"USD": "0.082"}}
    again = billing.post(
        "/v1/messages", params={"dry_run": "true"}, json={k: v for k, v in body.items() if k != "dry_run"}
    )
    assert again.status_code == 200 and again.json() == quote  # the same answer: nothing was written or reserved
    assert usage(billing) == before


def test_a_denied_country_is_refused_alone_and_other_types_still_reach_it(keys: dict[str, httpx.Client]) -> None:
    billing = keys["billing"]
    otp = billing.post("/v1/messages", json={"to": [GB, HK], "text": "Your code is 654321", "type": "OTP"})
    assert otp.status_code == 202, otp.text
    answer = otp.json()
    assert (answer["accepted"], [m["to"] for m in answer["messages"]]) == (1, [HK])
    assert [(e["index"], e["code"]) for e in answer["errors"]] == [(0, "COUNTRY_NOT_ALLOWED")]
    assert "GB" in answer["errors"][0]["message"]
    notify = billing.post("/v1/messages", json={"to": GB, "text": "Your parcel is on its way", "type": "NOTIFY"})
    assert notify.status_code == 202 and notify.json()["accepted"] == 1, notify.text


def test_a_keys_spend_limit_refuses_what_would_cross_it_in_request_order(keys: dict[str, httpx.Client]) -> None:
    login = keys["login"]
    numbers = [f"+8525123{n:04d}" for n in range(3)]
    sent = login.post("/v1/messages", json={"to": numbers, "text": "Your code is 111111", "type": "OTP"})
    assert sent.status_code == 202, sent.text
    answer = sent.json()
    # 0.044 each against this key's 0.10: the first two fit (0.088), the third would make 0.132.
    assert [m["to"] for m in answer["messages"]] == numbers[:2]
    assert [(e["index"], e["code"]) for e in answer["errors"]] == [(2, "SPEND_LIMIT_REACHED")]
    shown = usage(login)
    assert (Decimal(shown["key"]["spent"]), Decimal(shown["key"]["limit"])) == (Decimal("0.088"), Decimal("0.10"))
    again = login.post("/v1/messages", json={"to": numbers[2], "text": "Your code is 222222", "type": "OTP"})
    assert again.status_code == 202 and again.json()["accepted"] == 0, again.text
    assert again.json()["errors"][0]["code"] == "SPEND_LIMIT_REACHED"
    other = keys["billing"].post("/v1/messages", json={"to": numbers[2], "text": "Your code is 333333", "type": "OTP"})
    assert other.status_code == 202 and other.json()["accepted"] == 1, other.text  # billing has no limit of its own


def test_two_keys_do_not_see_each_others_messages_before_or_after_dispatch(
    local_stack: RunningStack, keys: dict[str, httpx.Client]
) -> None:
    billing, login, default = keys["billing"], keys["login"], local_stack.api
    sent = billing.post("/v1/messages", json={"to": SG, "text": "Your invoice is ready", "type": "NOTIFY"})
    assert sent.status_code == 202, sent.text
    batch_id, message_id = sent.json()["batch_id"], sent.json()["messages"][0]["id"]

    def assert_only_billing_sees_it() -> None:
        for path in (f"/v1/messages/{message_id}", f"/v1/batches/{batch_id}"):
            assert billing.get(path).status_code == 200, path
            for other in (login, default):
                answer = other.get(path)
                assert answer.status_code == 404, (path, answer.text)  # not 403: its existence is not told
        found = login.get("/v1/messages", params={"to": SG, "limit": 100})
        assert found.status_code == 200 and all(m["id"] != message_id for m in found.json()["messages"])

    assert_only_billing_sees_it()

    def sent_on() -> dict[str, Any] | None:
        found: dict[str, Any] = billing.get(f"/v1/messages/{message_id}").json()
        return found if found["status"] in {"SUBMITTED", "DELIVERED"} else None

    dispatched = local_stack.wait_for(f"message {message_id} sent", sent_on)
    assert (dispatched["cost"], dispatched["currency"]) == ("0.038", "USD")  # kept through dispatch
    assert_only_billing_sees_it()  # the dispatcher's record keeps its owner


def test_a_recipient_the_provider_refuses_gives_its_reservation_back(
    local_stack: RunningStack, keys: dict[str, httpx.Client]
) -> None:
    billing = keys["billing"]
    spent_before = Decimal(usage(billing)["key"]["spent"])
    knobs = f"{local_stack.emulator_url('aliyun')}/_emulator/knobs"
    assert httpx.post(knobs, json={"error_rates": {"MOBILE_NUMBER_ILLEGAL": 1.0}}, timeout=10).status_code == 200
    try:
        sent = billing.post("/v1/messages", json={"to": HK, "text": "Your code is 444444", "type": "OTP"})
        assert sent.status_code == 202 and sent.json()["accepted"] == 1, sent.text
        message_id = sent.json()["messages"][0]["id"]
        assert sent.json()["messages"][0]["cost"] == "0.044"  # what accept reserved
        # Reserved at accept; the dispatcher may already have failed it and given it back by the time we look.
        assert Decimal(usage(billing)["key"]["spent"]) in {spent_before, spent_before + Decimal("0.044")}

        def failed() -> dict[str, Any] | None:
            found: dict[str, Any] = billing.get(f"/v1/messages/{message_id}").json()
            return found if found["status"] == "FAILED" else None

        record = local_stack.wait_for(f"message {message_id} FAILED", failed)
        assert record["error"]["code"] == "MOBILE_NUMBER_ILLEGAL"
        local_stack.wait_for(
            "the reservation given back",
            lambda: True if Decimal(usage(billing)["key"]["spent"]) == spent_before else None,
        )
    finally:
        httpx.post(knobs, json={"error_rates": {}}, timeout=10)
