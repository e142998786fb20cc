"""The settings models: how they read the environment, and that the documentation, the template and the local
stack agree with them."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from globesms import config
from globesms.config import (
    AcceptSettings,
    DispatchSettings,
    ReceiptAuthSettings,
    WebhookSettings,
    load_settings,
    settings,
)
from globesms.dispatch.circuit_breaker import BreakerPolicy
from globesms.dispatch.deps import DispatchPolicies
from globesms.dispatch.unknown_outcomes import UnknownOutcomeAction, UnknownOutcomePolicy
from globesms.models.outbound import ProviderName
from globesms.reconcile.deadline import DeadlinePolicy
from local.settings import LOCAL_ENV_DEFAULTS
from local.template import load_raw_template, load_template
from tools import settings_doc

ROOT = Path(__file__).resolve().parents[2]

DECLARATIONS = sorted(
    (
        v
        for v in vars(config).values()
        if isinstance(v, type) and issubclass(v, config.SettingsDeclaration) and v is not config.SettingsDeclaration
    ),
    key=lambda declaration: declaration.__name__,
)


def declared(declaration: type) -> tuple[dict[str, Any], set[str]]:
    """The fields (name -> the value assigned, a FieldInfo or a default) and the field validators' names that the
    declaration's classes state, as Python holds them, without asking pydantic."""
    fields: dict[str, Any] = {}
    validators: set[str] = set()
    for klass in reversed(declaration.__mro__):
        for name in inspect.get_annotations(klass):
            fields[name] = vars(klass).get(name, PydanticUndefined)
        validators |= {name for name, value in vars(klass).items() if hasattr(value, "decorator_info")}
    return fields, validators


@pytest.mark.parametrize("declaration", DECLARATIONS, ids=lambda d: d.__name__)
def test_each_built_model_has_exactly_its_declarations_fields_rules_and_validators(declaration: type) -> None:
    """pydantic documents gathering validators from plain base classes, not fields (config.model_of): a pydantic
    that stopped gathering either, or a field's limits, fails here."""
    model = config.model_of(declaration)
    fields, validators = declared(declaration)

    assert fields and set(model.model_fields) == set(fields)
    for name, value in fields.items():
        field = model.model_fields[name]
        if isinstance(value, FieldInfo):
            assert (field.default, field.metadata, field.description) == (
                value.default,
                value.metadata,
                value.description,
            )
        else:
            assert field.default == value
    assert set(model.__pydantic_decorators__.field_validators) == validators
    assert issubclass(model, declaration) and config.model_of(declaration) is model


# ---- reading


def test_unset_blank_and_padded_values() -> None:
    loaded = load_settings(
        AcceptSettings, {"GLOBESMS_TABLE_NAME": "  messages\n", "GLOBESMS_RETENTION_DAYS": "  ", "OTHER": "x"}
    )
    assert loaded.table_name == "messages"
    assert loaded.retention_days == 90


def test_a_missing_required_variable_is_named() -> None:
    with pytest.raises(ValueError, match=r"^GLOBESMS_TABLE_NAME is not set$"):
        load_settings(DispatchSettings, {})


def test_every_broken_rule_is_named_with_its_variable_and_never_its_value() -> None:
    env = {
        "GLOBESMS_TABLE_NAME": "t",
        "GLOBESMS_MAX_RECEIVE_COUNT": "-7",
        "GLOBESMS_UNKNOWN_OUTCOME_WINDOW_SECONDS": "99999",
        "GLOBESMS_UNKNOWN_OUTCOME_POLICY": "retry-forever",
        "GLOBESMS_PROVIDER": "acme",
        "GLOBESMS_RATE_LIMITS": '{"SendMultiGlobalSms": 0}',
    }
    with pytest.raises(ValueError) as raised:
        load_settings(DispatchSettings, env)
    message = str(raised.value)
    assert "GLOBESMS_MAX_RECEIVE_COUNT: Input should be greater than or equal to 1" in message
    assert "GLOBESMS_UNKNOWN_OUTCOME_WINDOW_SECONDS: Input should be less than or equal to 86400" in message
    assert "GLOBESMS_UNKNOWN_OUTCOME_POLICY: Input should be 'fail' or 'resend'" in message
    assert "GLOBESMS_PROVIDER: Input should be 'aliyun', 'tencent' or 'huawei'" in message
    # Not DispatchSettings' (read at the dispatcher's import): the rates are read as its dependencies are built.
    assert "GLOBESMS_RATE_LIMITS" not in message
    for value in ("-7", "99999", "retry-forever", "acme"):
        assert value not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_the_dispatch_policies_are_the_variables_a_dispatcher_was_given() -> None:
    env = {
        "GLOBESMS_TABLE_NAME": "t",
        "GLOBESMS_BREAKER_FAILURES": "3",
        "GLOBESMS_BREAKER_COOLDOWN_SECONDS": "90",
        "GLOBESMS_UNKNOWN_OUTCOME_POLICY": "resend",
        "GLOBESMS_UNKNOWN_OUTCOME_WINDOW_SECONDS": "600",
        "GLOBESMS_RECEIPT_GRACE_SECONDS": "120",
    }
    policies = DispatchPolicies.from_settings(load_settings(DispatchSettings, env))
    assert policies.breaker == BreakerPolicy(failures_to_open=3, cooldown_seconds=90)
    assert policies.unknown_outcomes == UnknownOutcomePolicy(600, UnknownOutcomeAction.RESEND)
    assert policies.receipt_deadlines == DeadlinePolicy(grace_seconds=120)
    # Unset, the settings' defaults are the policies' own.
    assert DispatchPolicies.from_settings(load_settings(DispatchSettings, {"GLOBESMS_TABLE_NAME": "t"})) == (
        DispatchPolicies()
    )


def test_a_secret_is_never_in_an_error() -> None:
    env = {"GLOBESMS_WEBHOOK_SECRET": "whsec-do-not-print", "GLOBESMS_WEBHOOK_MAX_RECEIVE_COUNT": "many"}
    with pytest.raises(ValueError, match="GLOBESMS_WEBHOOK_MAX_RECEIVE_COUNT") as raised:
        load_settings(WebhookSettings, env)
    assert "whsec-do-not-print" not in str(raised.value)
    loaded = load_settings(WebhookSettings, {"GLOBESMS_WEBHOOK_SECRET": "whsec-do-not-print"})
    assert "whsec-do-not-print" not in repr(loaded)


def test_receipt_settings_keep_tokens_secret_and_read_the_auth_mode_in_any_case() -> None:
    auth = load_settings(
        ReceiptAuthSettings, {"GLOBESMS_HUAWEI_RECEIPT_AUTH": "AKSK", "GLOBESMS_TENCENT_RECEIPT_TOKEN": "t" * 16}
    )
    assert auth.huawei_receipt_auth == "aksk"
    assert auth.receipt_token(ProviderName.TENCENT) == "t" * 16
    assert auth.receipt_token(ProviderName.ALIYUN) == ""
    with pytest.raises(ValueError, match="GLOBESMS_HUAWEI_RECEIPT_AUTH: Input should be '', 'none' or 'aksk'"):
        load_settings(ReceiptAuthSettings, {"GLOBESMS_HUAWEI_RECEIPT_AUTH": "signed"})


def test_settings_are_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLOBESMS_TABLE_NAME", "first")
    first = settings(AcceptSettings)
    monkeypatch.setenv("GLOBESMS_TABLE_NAME", "second")
    assert settings(AcceptSettings) is first
    settings.cache_clear()
    assert settings(AcceptSettings).table_name == "second"


def test_queue_urls_are_the_configured_ones() -> None:
    loaded = load_settings(DispatchSettings, {"GLOBESMS_TABLE_NAME": "t", "GLOBESMS_HUAWEI_QUEUE_URL": "q"})
    assert loaded.queue_urls == {ProviderName.HUAWEI: "q"}


def test_only_config_reads_the_environment() -> None:
    """Every GLOBESMS_* variable is read through a settings model: the layer and the handlers never look at the
    process environment themselves (config.environment() is the one place)."""
    reads = re.compile(r"os\.environ|os\.getenv|getenv\(|environ\.get|from os import environ")
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("layers/globesms/globesms", "functions")
        for path in (ROOT / folder).rglob("*.py")
        if reads.search(path.read_text()) and path != ROOT / "layers/globesms/globesms/config.py"
    ]
    assert offenders == []


# ---- the documentation, the template and the local stack


def test_the_documentation_is_generated_from_the_models() -> None:
    assert settings_doc.DOCUMENT.read_text(encoding="utf-8") == settings_doc.markdown(), (
        "docs/configuration.md is out of date: python -m tools.settings_doc --write"
    )


def test_the_documentation_says_where_the_receipt_tokens_are_read_from(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until 2026-12-07 docs/configuration.md said receipt tokens are read from the environment merged with the
    provider's secret (GLOBESMS_<PROVIDER>_SECRET_NAME); a token stored there is never read (found by a review)."""
    from globesms import providers

    stored = {"GLOBESMS_ALIYUN_RECEIPT_TOKEN": "aliyun-receipt-token-0123456789"}
    monkeypatch.setattr(providers, "read_secret", lambda name, force=False: stored)
    env = {"GLOBESMS_TABLE_NAME": "t", "GLOBESMS_ALIYUN_SECRET_NAME": "globesms/aliyun"}
    merged = providers.receipt_environment(ProviderName.ALIYUN, env)
    assert load_settings(ReceiptAuthSettings, merged).receipt_token(ProviderName.ALIYUN) == ""
    (claim,) = [line for line in settings_doc.markdown().splitlines() if "`GLOBESMS_<PROVIDER>_SECRET_NAME`" in line]
    assert "provider credentials are read from" in claim and "receipt tokens are read" not in claim
    assert "only from their own (`GLOBESMS_<PROVIDER>_RECEIPT_SECRET_NAME`" in claim


def test_every_function_of_the_template_has_settings_models() -> None:
    assert set(load_template().functions) == set(config.FUNCTION_SETTINGS)


def test_the_template_sets_only_variables_its_function_reads() -> None:
    """A function's own Environment sets only what that function reads; Globals (every function's) only what some
    function reads; and nothing else but the libraries' own variables."""
    raw = load_raw_template()
    known = settings_doc.function_settings()
    read_by = {f: {v for _, names in sources for v in names.values()} for f, sources in known.items()}
    libraries = set(settings_doc.LIBRARY_VARIABLES)
    shared = set(raw["Globals"]["Function"]["Environment"]["Variables"])
    assert shared - libraries - set().union(*read_by.values()) == set()
    for function in known:
        own = set(raw["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {}))
        assert own - libraries - read_by[function] == set(), f"{function} is given variables it does not read"


def test_each_handler_reads_its_functions_model() -> None:
    handlers = {
        "SendApiFunction": "send_api",
        "IntakeFunction": "intake",
        "AliyunDispatchFunction": "dispatch",
        "TencentDispatchFunction": "dispatch",
        "HuaweiDispatchFunction": "dispatch",
        "ReceiptsFunction": "receipts",
        "WebhookSenderFunction": "webhooks",
        "ReconcileFunction": "reconcile",
        "StatusCountsFunction": "status_counts",
        "SchedulerFunction": "scheduler",
    }
    for function, models in config.FUNCTION_SETTINGS.items():
        source = (ROOT / "functions" / handlers[function] / "app.py").read_text()
        assert re.search(rf"(settings|load_settings)\({models[0].__name__}\b", source), function


def _template_defaults(value: Any, parameters: dict[str, Any]) -> str:
    """A template value as a deployment with the parameters' defaults would give it (resources: their id)."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        name = value["Ref"]
        return str(parameters[name].default) if name in parameters else f"{name}-id"
    return str(value)


def test_the_template_and_the_local_stack_give_every_model_what_it_needs() -> None:
    """Each function's environment (the template's values with the parameters' defaults, and the local stack's
    defaults, which deployed are in the providers' secrets) is valid for every model the function reads."""
    template = load_template()
    parameters = dict(template.parameters)
    for function, sources in settings_doc.function_settings().items():
        env = {
            **{k: _template_defaults(v, parameters) for k, v in template.functions[function].environment.items()},
            **LOCAL_ENV_DEFAULTS,
        }
        for model, names in sources:
            load_settings(model, env, names)
