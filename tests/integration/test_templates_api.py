"""PUT/GET/DELETE /v1/templates/{id} and GET /v1/templates through the local API Gateway, against moto with the
template's TemplatesTable; and a send picking a change up within a minute, without a redeploy."""

from __future__ import annotations

from typing import Any

import pytest

from globesms.routing import templates
from tests.integration.gateway import InProcessApi

LOGIN: dict[str, Any] = {
    "aliyun": {"text": "Acme: {code}, valid {minutes} min."},
    "tencent": {"id": "1800308", "params": ["code", "minutes"]},
    "huawei": {"id": "8ff55eac1d0b478ab3c06c3c6a492300", "params": ["minutes", "code"]},
}


@pytest.fixture
def api(load_handler, lambda_context) -> InProcessApi:  # type: ignore[no-untyped-def]
    return InProcessApi(load_handler("send_api").lambda_handler, lambda_context)


def test_templates_are_listed_stored_read_and_removed(api: InProcessApi) -> None:
    shipped = api.call("GET", "/v1/templates")
    assert shipped.status == 200, shipped.body
    assert shipped.json()["source"] == "file"
    assert [t["id"] for t in shipped.json()["templates"]] == ["example-otp"]

    created = api.call("PUT", "/v1/templates/login", body=LOGIN)
    assert created.status == 201, created.body
    assert created.json()["versions"] == LOGIN and created.json()["updated_at"]
    replaced = api.call("PUT", "/v1/templates/login", body={"huawei": LOGIN["huawei"]})
    assert replaced.status == 200, replaced.body
    read = api.call("GET", "/v1/templates/login")
    # A provider without a version is null.
    assert (read.status, read.json()["versions"]) == (200, {"aliyun": None, "tencent": None, "huawei": LOGIN["huawei"]})

    listed = api.call("GET", "/v1/templates").json()
    assert listed["source"] == "table"  # the first change seeded the table with the shipped file
    assert [t["id"] for t in listed["templates"]] == ["example-otp", "login"]

    assert api.call("DELETE", "/v1/templates/login").status == 204
    assert api.call("DELETE", "/v1/templates/login").status == 404
    gone = api.call("GET", "/v1/templates/login")
    assert (gone.status, gone.json()["error"]["code"]) == (404, "NOT_FOUND")
    assert api.call("DELETE", "/v1/templates/example-otp").status == 204  # a shipped one too: it stays deleted
    assert api.call("GET", "/v1/templates").json() == {"source": "table", "templates": []}


@pytest.mark.parametrize(
    ("path", "body", "field", "rule"),
    [
        ("/v1/templates/login", {"tencent": {"id": "SMS_1800308"}}, "body", "tencent.id: Tencent template ids"),
        ("/v1/templates/login", {"huawei": {"id": "h" * 40}}, "body", "huawei.id: Huawei template ids are 1-32"),
        ("/v1/templates/login", {"huawei": {"id": "h1", "params": ["a b"]}}, "huawei.params.0", "pattern"),
        (
            "/v1/templates/login",
            {"aliyun": {"text": "{code}"}, "huawei": {"id": "h1", "params": ["pin"]}},
            "body",
            "every version must take the same params",
        ),
        ("/v1/templates/login", {"sms": {"id": "1"}}, "sms", "Extra inputs are not permitted"),
        ("/v1/templates/1800308", LOGIN, "path.template_id", "pattern"),  # all digits: a Tencent id, not logical
    ],
)
def test_a_template_that_breaks_a_providers_rules_is_refused_and_nothing_is_stored(
    api: InProcessApi, path: str, body: dict[str, Any], field: str, rule: str
) -> None:
    refused = api.call("PUT", path, body=body)
    assert refused.status == 422, refused.body
    fields = refused.json()["error"]["fields"]
    assert any(f["field"] == field and rule in f["rule"] for f in fields), fields
    assert api.call("GET", "/v1/templates").json()["source"] == "file"  # not even seeded


def send_login(api: InProcessApi) -> dict[str, Any]:
    body = {"to": "+85251234567", "template": {"id": "login", "params": {"code": "123456", "minutes": 5}}}
    answer = api.call("POST", "/v1/messages", body=body)
    assert answer.status == 202, answer.body
    accepted: dict[str, Any] = answer.json()
    return accepted


def test_a_send_uses_a_stored_template_within_a_minute_without_a_redeploy(
    api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [5000.0]
    monkeypatch.setattr(templates, "registry_clock", lambda: clock[0])
    # Not registered: "login" is taken as a provider's own template id (non-numeric, so Huawei's).
    assert send_login(api)["messages"][0]["provider"] == "huawei"
    assert api.call("PUT", "/v1/templates/login", body=LOGIN).status == 201
    clock[0] += 59
    assert send_login(api)["messages"][0]["provider"] == "huawei"  # the registry read a minute ago, still
    clock[0] += 1
    # Registered now: routed as the registry says (Tencent first for +852), Alibaba's text rendered from it.
    assert send_login(api)["messages"][0]["provider"] == "tencent"
    assert api.call("DELETE", "/v1/templates/login").status == 204
    clock[0] += 60
    assert send_login(api)["messages"][0]["provider"] == "huawei"


def test_without_a_template_table_the_routes_say_the_registry_is_not_managed(  # type: ignore[no-untyped-def]
    load_handler, lambda_context, monkeypatch
) -> None:
    api = InProcessApi(load_handler("send_api").lambda_handler, lambda_context)
    monkeypatch.delenv("GLOBESMS_TEMPLATES_TABLE")  # a stack deployed before TemplatesTable
    answer = api.call("GET", "/v1/templates")
    assert (answer.status, answer.json()["error"]["code"]) == (501, "TEMPLATES_NOT_MANAGED")
    assert templates.registry() is templates.file_registry()


def test_only_the_deployments_own_key_changes_the_registry(load_handler, lambda_context, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Every key's sends use the registry: a client service's key rewriting a template would put its text in every
    # other service's codes.
    monkeypatch.setenv("GLOBESMS_TEMPLATE_MANAGERS", "local-api-key")  # as the template sets it: the API's own key
    client_key = "billing-client-key-0123456789"
    api = InProcessApi(
        load_handler("send_api").lambda_handler, lambda_context, {"GLOBESMS_API_KEYS": f"billing={client_key}"}
    )
    refused = api.call("PUT", "/v1/templates/login", body=LOGIN, key=client_key)
    assert refused.status == 403 and refused.json()["error"]["code"] == "FORBIDDEN", refused.body
    assert api.call("GET", "/v1/templates/login", key=client_key).status == 404  # nothing stored; reading is open
    assert api.call("PUT", "/v1/templates/login", body=LOGIN).status == 201  # the deployment's own key
    assert api.call("DELETE", "/v1/templates/login", key=client_key).status == 403
    assert api.call("GET", "/v1/templates/login", key=client_key).status == 200
