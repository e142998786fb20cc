"""Several API keys on the local API Gateway (`GLOBESMS_API_KEYS`): each key is taken, the function sees the id of
the key sent (as API Gateway's `requestContext.identity.apiKeyId`), and a bad list is refused naming the entry."""

from __future__ import annotations

import pytest

from local.api_server import DEFAULT_API_KEY_ID, Request, api_keys, build_gateway

BILLING_KEY = "billing-key-0123456789abcdef"
LOGIN_KEY = "login-key-0123456789abcdefgh"
KEYS_ENV = {"GLOBESMS_API_KEYS": f"billing={BILLING_KEY}, login={LOGIN_KEY}"}


def _events(environ: dict[str, str]) -> tuple[object, list[dict[str, object]]]:
    gateway = build_gateway({"SendApiFunction": ["in-process"], "ReceiptsFunction": ["in-process"]}, environ)
    seen: list[dict[str, object]] = []

    def integrate(route: object, event: dict[str, object]) -> object:
        seen.append(event)
        from local.api_server import Response

        return Response(200, b"{}", {})

    gateway._integrate = integrate  # type: ignore[method-assign]
    return gateway, seen


def _get(gateway: object, key: str | None) -> int:
    headers = [("x-api-key", key)] if key is not None else []
    request = Request("GET", "/v1/usage", "", headers, b"", "127.0.0.1")
    return gateway.handle(request).status  # type: ignore[attr-defined,no-any-return]


def test_each_named_key_is_taken_and_the_function_sees_its_id() -> None:
    gateway, seen = _events(KEYS_ENV)
    assert [_get(gateway, k) for k in (BILLING_KEY, LOGIN_KEY, "local-dev-key")] == [200, 200, 200]
    ids = [e["requestContext"]["identity"]["apiKeyId"] for e in seen]  # type: ignore[index]
    assert ids == ["billing", "login", DEFAULT_API_KEY_ID]


def test_an_unknown_key_or_none_is_forbidden() -> None:
    gateway, seen = _events(KEYS_ENV)
    assert [_get(gateway, k) for k in ("billing", BILLING_KEY + "x", None)] == [403, 403, 403]
    assert seen == []


def test_the_single_key_alone_keeps_working() -> None:
    assert api_keys({"GLOBESMS_API_KEY": "my-own-key"}) == {"my-own-key": DEFAULT_API_KEY_ID}
    assert api_keys({}) == {"local-dev-key": DEFAULT_API_KEY_ID}


@pytest.mark.parametrize(
    ("listed", "rule"),
    [
        ("billing", "want name=value"),
        (f"bad name={BILLING_KEY}", "want name=value"),
        ("billing=short", "at least 20 characters"),
        (f"billing={BILLING_KEY},billing={LOGIN_KEY}", "the name billing is taken"),
        (f"{DEFAULT_API_KEY_ID}={BILLING_KEY}", "is taken"),
        (f"billing={BILLING_KEY},login={BILLING_KEY}", "the same value as another key"),
    ],
)
def test_a_bad_list_is_refused_naming_the_entry_never_a_value(listed: str, rule: str) -> None:
    with pytest.raises(ValueError, match=rule) as refused:
        api_keys({"GLOBESMS_API_KEYS": listed})
    assert "GLOBESMS_API_KEYS entry" in str(refused.value)
    assert BILLING_KEY not in str(refused.value) and LOGIN_KEY not in str(refused.value)
