"""The template registry managed at run time (routing/templates.py over a TemplateStore): the shipped file until the
first change, which seeds the store with it; validation of each provider's version; a cache of at most 60 s."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from globesms import hooks
from globesms.models.outbound import ProviderName
from globesms.ports import StoredTemplate
from globesms.routing import templates
from globesms.routing.templates import RegistryLoader, TemplateVersions
from tests.fakes import MemoryTemplateStore

NOW = "2026-12-04T10:00:00.000000Z"
LOGIN = TemplateVersions.model_validate(
    {
        "aliyun": {"text": "Acme: {code}, valid {minutes} min."},
        "tencent": {"id": "1800308", "params": ["code", "minutes"]},
        "huawei": {"id": "8ff55eac1d0b478ab3c06c3c6a492300", "params": ["minutes", "code"]},
    }
)
SHIPPED = sorted(templates.file_registry().templates)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_until_the_first_change_the_shipped_file_is_the_registry() -> None:
    store = MemoryTemplateStore()
    listed = templates.list_templates(store)
    assert listed.source == "file"
    assert [t.id for t in listed.templates] == SHIPPED
    assert RegistryLoader(store).current() is templates.file_registry()
    assert not store.items  # reading writes nothing


def test_the_first_change_seeds_the_store_with_the_shipped_templates() -> None:
    store = MemoryTemplateStore()
    view, created = templates.put_template(store, "login", LOGIN, NOW)
    assert created and view.updated_at == NOW
    listed = templates.list_templates(store)
    assert listed.source == "table"
    assert [t.id for t in listed.templates] == sorted([*SHIPPED, "login"])
    # A shipped template deleted after the seed stays deleted (the file is a seed, not a layer under the table).
    assert templates.delete_template(store, SHIPPED[0], NOW)
    assert SHIPPED[0] not in {t.id for t in templates.list_templates(store).templates}
    assert RegistryLoader(store).current().get(SHIPPED[0]) is None
    assert not templates.delete_template(store, SHIPPED[0], NOW)


def test_a_put_replaces_and_says_so() -> None:
    store = MemoryTemplateStore()
    templates.put_template(store, "login", LOGIN, NOW)
    changed = LOGIN.model_copy(update={"huawei": None})
    view, created = templates.put_template(store, "login", changed, "2026-12-04T10:01:00.000000Z")
    assert not created
    found = templates.get_template(store, "login")
    assert found is not None and found.versions == changed and found.updated_at == view.updated_at
    assert set(RegistryLoader(store).current().templates["login"]) == {ProviderName.ALIYUN, ProviderName.TENCENT}


@pytest.mark.parametrize(
    ("versions", "rule"),
    [
        ({"tencent": {"id": "SMS_1800308", "params": ["code"]}}, "tencent.id: Tencent template ids are numeric"),
        # A valid registry id (up to 64) that Huawei's client would refuse at every send.
        ({"huawei": {"id": "h" * 33, "params": ["code"]}}, "huawei.id: Huawei template ids are 1-32 characters"),
        ({"huawei": {"id": "h1", "params": ["a b"]}}, "String should match pattern"),
        (
            {"aliyun": {"text": "{code}"}, "huawei": {"id": "h1", "params": ["pin"]}},
            "every version must take the same params",
        ),
        ({"huawei": {"id": "h1", "params": ["code", "code"]}}, "params repeated: code"),
        ({}, "no provider version"),
        ({"twilio": {"id": "1"}}, "Extra inputs are not permitted"),
    ],
)
def test_each_providers_template_id_and_parameter_names_are_validated(versions: dict[str, object], rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TemplateVersions.model_validate(versions)
    assert rule in str(caught.value)


def test_a_change_is_seen_once_the_cached_registry_is_60_seconds_old() -> None:
    store, clock = MemoryTemplateStore(), Clock()
    templates.put_template(store, "login", LOGIN, NOW)
    loader = RegistryLoader(store, clock=clock)
    assert loader.current().get("login") is not None
    templates.delete_template(store, "login", NOW)
    clock.now += 59.9
    assert loader.current().get("login") is not None  # cached: one read per minute at most
    assert store.loads == 3  # the put's and the delete's seed checks, the loader's first read: none since
    clock.now += 0.1
    assert loader.current().get("login") is None


def test_an_unreadable_store_keeps_the_registry_in_use_and_is_read_again_a_minute_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, clock = MemoryTemplateStore(), Clock()
    templates.put_template(store, "login", LOGIN, NOW)
    loader = RegistryLoader(store, clock=clock)
    in_use = loader.current()
    store.fail = True
    clock.now += 60
    with caplog.at_level(logging.ERROR):
        assert loader.current() is in_use
    assert "template registry unreadable; sending with the template table" in caplog.text
    store.fail = False
    clock.now += 60
    assert loader.current() is not in_use and loader.current().get("login") is not None
    # Never read at all: the shipped file meanwhile.
    broken = MemoryTemplateStore()
    broken.fail = True
    assert RegistryLoader(broken, clock=clock).current() is templates.file_registry()


def test_a_stored_template_that_does_not_validate_is_left_out_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryTemplateStore()
    templates.put_template(store, "login", LOGIN, NOW)
    store.items["broken"] = StoredTemplate("broken", '{"tencent": {"id": "not-numeric"}}', NOW)
    with caplog.at_level(logging.ERROR):
        current = RegistryLoader(store).current()
    assert current.get("broken") is None and current.get("login") is not None
    assert "stored template invalid, left out" in caplog.text


def test_a_stored_version_whose_id_its_provider_refuses_is_left_out_not_the_template(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The API took Huawei ids of up to 64 characters before 2026-12-07. Such a stored template keeps its other
    versions: dropped whole, its logical id read as a provider's own template id and went to Huawei, which refuses
    it, where the shipped routes had sent it through Tencent (found by a review of that change)."""
    from globesms.models.outbound import MessageType
    from globesms.routing.route_table import file_table
    from globesms.routing.router import Routed, SpecRouter

    store = MemoryTemplateStore()
    templates.put_template(store, "login", LOGIN, NOW)
    document = '{"tencent": {"id": "1800308", "params": ["code"]}, "huawei": {"id": "%s", "params": ["code"]}}'
    store.items["login-code"] = StoredTemplate("login-code", document % ("8ff55eac1d0b478ab3c06c3c6a492300-x"), NOW)
    with caplog.at_level(logging.ERROR):
        versions = RegistryLoader(store).current().get("login-code")
    assert versions is not None and set(versions) == {ProviderName.TENCENT}
    assert "huawei version has a template id its provider refuses" in caplog.text
    routed = SpecRouter(file_table(), "template", MessageType.OTP, None, "login-code", versions).route("SG", 65, "B.0")
    assert isinstance(routed, Routed) and routed.provider is ProviderName.TENCENT


def test_registry_follows_the_store_the_wiring_names(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryTemplateStore()
    templates.put_template(store, "login", LOGIN, NOW)
    monkeypatch.setitem(hooks.installed, hooks.TEMPLATE_STORE, lambda: store)
    assert templates.registry().get("login") is not None
    monkeypatch.setitem(hooks.installed, hooks.TEMPLATE_STORE, lambda: None)
    assert templates.registry() is templates.file_registry()
