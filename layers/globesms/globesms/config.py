"""Every GLOBESMS_* variable the functions read, as settings declarations read through pydantic, once per process.

One declaration per function (`AcceptSettings` for the API and the intake, `DispatchSettings`, `ReceiptsSettings`,
`WebhookSettings`; the provider clients' own models in `globesms.providers`), each built from small parts that
shared code reads on its own (`TableSettings` for the adapters, `CallbackSettings` for the status_callback check,
...). The declarations are plain classes with pydantic fields; `settings(X)` and `load_settings(X, env)` read one
through the pydantic model `model_of(X)` builds on first use. A field `name` is the variable `GLOBESMS_<NAME>`; its
default and `description` are the documentation: docs/configuration.md is generated from these declarations
(`python -m tools.settings_doc`) and a test keeps the two equal.

Reading rules, the same for every model (`load_settings`, the provider clients' included):
- A variable that is unset, empty or only whitespace is absent: the field's default applies. Values are used
  stripped (a secret pasted with a trailing newline would otherwise sign "correctly" and be refused).
- A required variable (a field without a default) that is absent is an error naming it.
- Secrets (fields typed `SecretStr`) are wrapped before validation, so not even pydantic's error details hold them.
- Every problem is reported in one `ValueError` that names the variable and the rule it breaks, never its value
  (some values are secrets; the rule is enough to fix it).

Plain pydantic rather than pydantic-settings: this is one small function, and pydantic-settings would add its own
import time (and dotenv, and its source machinery) to every cold start for nothing we use.

This module imports nothing of globesms but leaves (`models.base`, `models.outbound`, `consent.quiet_window`;
`dispatch.rate_table` in the rate check), so that anything (models, validators, provider clients) can import it
without a cycle and without loading more than pydantic: the policies the settings configure are built beside
those policies (`DispatchPolicies.from_settings`), not here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from globesms.consent.quiet_window import Window
from globesms.models.base import Model
from globesms.models.outbound import ProviderName

PREFIX = "GLOBESMS_"


# ---------------------------------------------------------------------------------------------------------------
# Reading


def environment() -> Mapping[str, str]:
    """The process environment: the one place the layer looks at it (the settings models read through this)."""
    return os.environ


def variable_names(model: type) -> dict[str, str]:
    """Settings field -> the variable it is read from: `GLOBESMS_<FIELD NAME>`."""
    return {name: PREFIX + name.upper() for name in model_of(model).model_fields}


def optional(env: Mapping[str, str], name: str) -> str | None:
    """The stripped value of `name`, or None when it is unset or blank."""
    value = env.get(name, "").strip()
    return value or None


def load_settings[Settings: SettingsDeclaration | BaseModel](
    model: type[Settings],
    env: Mapping[str, str],
    variables: Mapping[str, str] | None = None,
    parsers: Mapping[str, Callable[[str, str], object]] | None = None,
) -> Settings:
    """`model` (a declaration below, or a pydantic model) from the variables in `variables` (settings field ->
    variable name; by default `variable_names`).

    `parsers` (variable -> parse(name, raw)) turn a raw value into the field's input first; a ValueError they raise
    is reported as is. Raises ValueError naming every variable that is missing or breaks a rule (the model's own
    validation included), with pydantic's reason but never a value."""
    variables = variable_names(model) if variables is None else variables
    parsers = parsers or {}
    built = model_of(model)
    fields = built.model_fields
    values: dict[str, object] = {}
    problems: list[str] = []
    for field, variable in variables.items():
        raw = optional(env, variable)
        if raw is None:
            if fields[field].is_required():
                problems.append(f"{variable} is not set")
            continue
        if variable in parsers:
            try:
                values[field] = parsers[variable](variable, raw)
            except ValueError as exc:
                problems.append(str(exc))
        else:
            values[field] = SecretStr(raw) if _is_secret(fields[field].annotation) else raw
    if problems:
        raise ValueError("; ".join(problems))
    try:
        loaded = built.model_validate(values)
    except ValidationError as exc:
        details = exc.errors(include_input=False, include_url=False, include_context=False)
        # `from None`: the ValidationError (which may hold inputs) must not ride along in a traceback.
        raise ValueError("; ".join(_describe(d["loc"], d["msg"], variables) for d in details)) from None
    assert isinstance(loaded, model)  # the built model derives from the declaration
    return loaded


def _is_secret(annotation: object) -> bool:
    """`SecretStr`, or `SecretStr | None`."""
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _describe(location: tuple[int | str, ...], reason: str, variables: Mapping[str, str]) -> str:
    field = location[0] if location else None
    where = variables.get(field, field) if isinstance(field, str) else "settings"
    return f"{where}: {reason.removeprefix('Value error, ')}"


class _Loaded:
    """`settings(Model)`: the model read from the environment on first use, then the same object for the process
    (a function's environment does not change while it runs). `settings.cache_clear()` forgets them (tests)."""

    def __init__(self) -> None:
        self._models: dict[type, object] = {}

    def __call__[Settings: SettingsDeclaration | BaseModel](self, model: type[Settings]) -> Settings:
        loaded = self._models.get(model)
        if loaded is None:
            loaded = self._models[model] = load_settings(model, environment())
        assert isinstance(loaded, model)
        return loaded

    def cache_clear(self) -> None:
        self._models.clear()


settings = _Loaded()


class _Settings(Model):
    # hide_input_in_errors: a validation error would otherwise print the values it was given.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class SettingsDeclaration:
    """The base of the declarations below: plain classes whose annotated attributes are pydantic fields (`Field`
    defaults, `field_validator`s) and whose methods read them. Not models themselves: nothing constructs or
    validates one directly; `settings(X)` and `load_settings(X, env)` read X through `model_of(X)`."""


_MODELS: dict[type, type[BaseModel]] = {}  # declaration -> its model, once built
_BUILDING = threading.Lock()  # one model per declaration, whichever thread reads it first


def model_of(declaration: type) -> type[BaseModel]:
    """The pydantic model that reads `declaration`: the class itself when it is a model (the provider clients'
    settings), else a model built from it on first use, `class <Name>(<declaration>, _Settings)`. pydantic finds
    the declaration's fields and validators on that model by reading its annotations and attributes along its
    MRO, plain classes included. pydantic does not document that for fields (only for validators, in
    `DecoratorInfos.build`: "including bare classes"), so tests/unit/test_configuration.py holds every built
    model to its declaration, field by field and validator by validator: a pydantic that stops doing it fails there.

    Why the declarations are plain classes: a pydantic model class costs about a millisecond to define even with
    its validator deferred (its fields collected, its signature built), and every function defined all 27 to read
    one to six. Built on first use, a cold start defines only those it reads: 37-51 M fewer instructions per
    handler (valgrind, 2026-12-06), 1.8% of the API's timed cold start, 4.8% of the webhook sender's
    (docs/performance.md)."""
    if issubclass(declaration, BaseModel):
        return declaration
    built = _MODELS.get(declaration)
    if built is None:
        with _BUILDING:
            built = _MODELS.get(declaration)
            if built is None:
                namespace = {"__module__": declaration.__module__, "__qualname__": declaration.__qualname__}
                built = _MODELS[declaration] = type(
                    declaration.__name__, (declaration, _Settings), {**namespace, "__doc__": declaration.__doc__}
                )
    return built


# ---------------------------------------------------------------------------------------------------------------
# Parts, each read on its own by the shared code that needs it (plain declarations: `model_of`)


class TableSettings(SettingsDeclaration):
    table_name: str = Field(description="the DynamoDB table of batches, messages, receipts and counters")


class RetentionSettings(SettingsDeclaration):
    retention_days: int = Field(90, ge=1, le=3650, description="days before a record or held receipt expires (TTL)")


class TemplatesSettings(SettingsDeclaration):
    templates_table: str = Field(
        "",
        description="the run-time template registry (PUT /v1/templates); without it the shipped templates.json "
        "is the registry",
    )


class RouteStatsSettings(SettingsDeclaration):
    route_stats_table: str = Field(
        "",
        description="the route statistics table (5-minute delivery counts per country x provider x type, "
        "docs/routing-scores.md); without it no statistics are kept and scored routes use the table's order",
    )


class ProviderQueueSettings(SettingsDeclaration):
    aliyun_queue_url: str = Field("", description="the Alibaba Cloud pack queue")
    tencent_queue_url: str = Field("", description="the Tencent Cloud pack queue")
    huawei_queue_url: str = Field("", description="the Huawei Cloud pack queue")

    @property
    def queue_urls(self) -> dict[ProviderName, str]:
        """The configured queues; sending to a provider without one fails (`SendFailed`)."""
        urls = {p: getattr(self, f"{p.value}_queue_url") for p in ProviderName}
        return {p: url for p, url in urls.items() if url}


class WebhookQueueSettings(SettingsDeclaration):
    webhook_queue_url: str = Field("", description="the queue of status events for customers' `status_callback` URLs")


class ReleaseQueueSettings(SettingsDeclaration):
    release_queue_url: str = Field(
        "", description="the queue of scheduled sends' releases (`send_at`), each delayed to its time"
    )


class CallbackSettings(SettingsDeclaration):
    allow_loopback_callbacks: bool = Field(
        False,
        description="`true` lets a `status_callback` be plain http to 127.0.0.1, localhost or [::1] "
        "(only the local stack sets it); otherwise https only",
    )


class ConsentTableSettings(SettingsDeclaration):
    consent_table: str = Field(
        "",
        description="the consent table (opt-out list, replies); without it there is no opt-out list and no "
        "recipient is refused as opted out",
    )


class ConsentSettings(ConsentTableSettings):
    opt_out_blocks_otp: bool = Field(
        False,
        description="`true`: an opted-out number gets no OTP either; by default OTP still goes (a person who "
        "opted out of marketing still needs a login code)",
    )


class QuietHoursSettings(SettingsDeclaration):
    quiet_hours: str = Field(
        "21:00-08:00",
        description="MKT is never delivered inside these local hours of the recipient (`START-END`, HH:MM, may "
        "cross midnight): a recipient inside them is SCHEDULED to their end (docs/consent.md)",
    )
    quiet_hours_waiver: bool = Field(
        False,
        description='`true`: a request may waive quiet hours with `"quiet_hours": false`; otherwise that is a 422',
    )

    @field_validator("quiet_hours")
    @classmethod
    def _window_rules(cls, value: str) -> str:
        Window.parse(value)  # a ValueError naming the rule
        return value

    def window(self) -> Window:
        return Window.parse(self.quiet_hours)


class IdempotencySettings(SettingsDeclaration):
    idempotency_table: str = Field(
        "",
        description="the Powertools idempotency table of `Idempotency-Key` / `idempotency_key`; "
        "without it a request carrying a key is refused",
    )


class RoutesSettings(SettingsDeclaration):
    routes_parameter: str = Field(
        "",
        description="an SSM parameter whose JSON replaces the shipped route table, re-read every 5 minutes; an "
        "invalid or unreadable value leaves the last good table in force",
    )


class GuardrailsSettings(SettingsDeclaration):
    guardrails_parameters: str = Field(
        "",
        description="an SSM path, e.g. `/globesms/guardrails`: its parameters `prices`, `permissions` and `limits` "
        "(JSON, docs/guardrails.md) replace the shipped documents, each re-read every 5 minutes; an absent one is "
        "the shipped document; an invalid or unreadable one leaves the last good document in force, and an API or "
        "intake process that has read none yet accepts nothing (the API answers 503 GUARDRAILS_UNAVAILABLE; the "
        "intake tries the body again later) rather than fall back to the shipped one; a dispatcher (which reads "
        "the prices, for a failover or a resend, and the permissions, to refuse a country denied since accept) "
        "then keeps the message's estimate and sends as accept allowed",
    )

    def parameter(self, document: str) -> str:
        """The SSM parameter of `document`, or "" (the shipped file) when no path is configured."""
        return f"{self.guardrails_parameters.rstrip('/')}/{document}" if self.guardrails_parameters else ""


class RateLimitSettings(SettingsDeclaration):
    rate_limits: str = Field(
        "",
        description='JSON `{"<operation>": calls per second}` over the defaults (Alibaba SendMessageToGlobe 2000, '
        "BatchSendMessageToGlobe 1, Tencent SendMultiGlobalSms 10, Huawei batchSendDiffSms 1; status queries: "
        "Alibaba QueryMessage 300, Tencent PullSmsSendStatusByPhoneNumber 10)",
    )

    @field_validator("rate_limits")
    @classmethod
    def _known_operations_whole_rates(cls, value: str) -> str:
        # Checked here, when the model is first read, with the rule's own words; the parsing lives with the rates (a
        # leaf module, imported here so that functions without rate limits never build its validator).
        from globesms.dispatch.rate_table import RATE_LIMITS_VARIABLE, parse_rate_limits

        try:
            parse_rate_limits(value)
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix(f"{RATE_LIMITS_VARIABLE}: ")) from None
        return value


class ProviderSecretSettings(SettingsDeclaration):
    aliyun_secret_name: str = Field(
        "", description="Secrets Manager secret: a JSON object of the GLOBESMS_ALIYUN_* variables"
    )
    tencent_secret_name: str = Field(
        "", description="Secrets Manager secret: a JSON object of the GLOBESMS_TENCENT_* variables"
    )
    huawei_secret_name: str = Field(
        "", description="Secrets Manager secret: a JSON object of the GLOBESMS_HUAWEI_* variables"
    )

    def secret_name(self, provider: ProviderName) -> str:
        name: str = getattr(self, f"{provider.value}_secret_name")
        return name


class WebhookSecretSettings(SettingsDeclaration):
    webhook_secret: SecretStr | None = Field(
        None,
        description="the webhook signing secret; several separated by spaces (`new old`) while rotating; wins "
        "over the secret named below (the local stack)",
    )
    webhook_secret_name: str = Field(
        "",
        description='Secrets Manager secret `{"GLOBESMS_WEBHOOK_SECRET": "…"}` (and optionally '
        '`"GLOBESMS_WEBHOOK_KEY_SECRETS": {"<API key id>": "…"}`), re-read within 5 minutes of a change',
    )
    webhook_key_secrets: SecretStr | None = Field(
        None,
        description='a JSON object `{"<API key id>": "<secret>"}`: the events of that key\'s messages are signed '
        "with its own secret (`new old` while rotating) instead of the default; wins over the secret's (the local "
        "stack)",
    )


class ReceiptAuthSettings(SettingsDeclaration):
    """Read from the environment with the receipt token from its own secret (`globesms.providers.receipt_environment`,
    GLOBESMS_<PROVIDER>_RECEIPT_SECRET_NAME) and, when Huawei signs its pushes, Huawei's credentials secret over it."""

    aliyun_receipt_token: SecretStr | None = Field(
        None,
        description="the secret in Alibaba's receipt URL (≥ 16 characters; `new old` while rotating)",
    )
    tencent_receipt_token: SecretStr | None = Field(
        None,
        description="the secret in Tencent's receipt URL (≥ 16 characters; `new old` while rotating)",
    )
    huawei_receipt_token: SecretStr | None = Field(
        None,
        description="the secret in Huawei's receipt URL (≥ 16 characters; `new old` while rotating)",
    )
    huawei_receipt_auth: Literal["", "none", "aksk"] = Field(
        "",
        description="`aksk`: Huawei pushes (receipts and replies) must carry a valid SDK-HMAC-SHA256 signature by "
        "the application's key "
        "(else `401`); unset or `none`: the token alone (template parameter HuaweiReceiptAuth)",
    )
    huawei_app_key: str = Field("", description="Huawei Cloud application key (deployed: in the provider's secret)")
    huawei_app_secret: SecretStr | None = Field(
        None, description="Huawei Cloud application secret (deployed: in the provider's secret)"
    )

    @field_validator("huawei_receipt_auth", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    def receipt_token(self, provider: ProviderName) -> str:
        token: SecretStr | None = getattr(self, f"{provider.value}_receipt_token")
        return "" if token is None else token.get_secret_value()


class RepliesSettings(ConsentTableSettings, RetentionSettings, WebhookQueueSettings):
    """The replies route (`POST /v1/replies/{provider}/{token}`, in ReceiptsFunction)."""

    reply_callback: str = Field(
        "",
        description="where `message.received` events go (https; signed as status events); without it replies are "
        "stored and applied but not forwarded",
    )
    reply_keywords: str = Field(
        "",
        description='JSON `{"opt_out": [...], "opt_in": [...]}` replacing the shipped reply keywords '
        "(globesms/data/keywords.json)",
    )
    aliyun_reply_token: SecretStr | None = Field(
        None, description="the secret in Alibaba's reply URL (≥ 16 characters; `new old` while rotating)"
    )
    tencent_reply_token: SecretStr | None = Field(
        None, description="the secret in Tencent's reply URL (≥ 16 characters; `new old` while rotating)"
    )
    huawei_reply_token: SecretStr | None = Field(
        None, description="the secret in Huawei's reply URL (≥ 16 characters; `new old` while rotating)"
    )

    @field_validator("reply_keywords")
    @classmethod
    def _keyword_sets(cls, value: str) -> str:
        from globesms.replies.keywords import parse_keywords

        if value:
            parse_keywords(value)
        return value

    def reply_token(self, provider: ProviderName) -> str:
        token: SecretStr | None = getattr(self, f"{provider.value}_reply_token")
        return "" if token is None else token.get_secret_value()


# ---------------------------------------------------------------------------------------------------------------
# One declaration per function


class AcceptSettings(
    TableSettings,
    RetentionSettings,
    TemplatesSettings,
    ProviderQueueSettings,
    IdempotencySettings,
    RoutesSettings,
    CallbackSettings,
    ConsentSettings,
    QuietHoursSettings,
    GuardrailsSettings,
    ReleaseQueueSettings,
    WebhookQueueSettings,
    RouteStatsSettings,
):
    """SendApiFunction and IntakeFunction: validate, route, persist, pack; hold scheduled sends, cancel them."""

    intake_owner: str = Field(
        "intake",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="who messages dropped on the SQS intake belong to (they carry no API key): their records, spend "
        "and limits (docs/guardrails.md)",
    )
    docs_require_api_key: bool = Field(
        False,
        description="GET /v1/docs and /v1/openapi.json answer only requests with an API key (template "
        "DocsRequireApiKey; the gateway checks it too)",
    )
    template_managers: str = Field(
        "",
        description="the API key ids (space-separated) that may change the template registry (PUT and DELETE "
        "/v1/templates), which every key's sends use; the template sets the deployment's own key (ApiKeyId), so a "
        "client service's key (ClientApiKeyNames) cannot rewrite what the others send. Empty: every key",
    )

    def may_manage_templates(self, key_id: str | None) -> bool:
        managers = self.template_managers.split()
        return not managers or (key_id is not None and key_id in managers)


class ReceiptDeadlineSettings(SettingsDeclaration):
    receipt_grace_seconds: int = Field(
        1800,
        ge=0,
        le=7 * 86_400,
        description="added to a message's validity (or its type's default) for its receipt deadline "
        "(docs/final-status.md)",
    )


class DispatchSettings(
    ConsentSettings,  # the opt-out list, read again before a pack is sent (dispatch/opt_outs.py)
    GuardrailsSettings,  # the price table, read when a recipient fails over or a resend is sent
    ReceiptDeadlineSettings,
    TableSettings,
    RetentionSettings,
    TemplatesSettings,
    ProviderQueueSettings,
    WebhookQueueSettings,
    ProviderSecretSettings,
    RouteStatsSettings,
):
    """The three dispatch functions: claim, send, record. The provider's own settings are its client's model.
    Not `RateLimitSettings`: this model is read when the handler is imported, and an invalid GLOBESMS_RATE_LIMITS
    there failed the function's init, so no receive reached the dead-letter path and packs went to the DLQ with their
    records still QUEUED. The rates are read when the dependencies are built (`wiring.rate_limiter`), where a
    failure is "the dispatcher could not be built": retried, and on the last receive the records FAILED."""

    provider: ProviderName = Field(ProviderName.ALIYUN, description="which provider this dispatcher sends through")
    max_receive_count: int = Field(
        5,
        ge=1,
        description="the provider queues' maxReceiveCount: on the last receive a failing pack is marked FAILED "
        "before it goes to the dead-letter queue",
    )
    unknown_outcome_policy: Literal["fail", "resend"] = Field(
        "fail",
        description="what settles a message whose outcome stayed unknown and got no receipt: `fail` or `resend`",
    )
    unknown_outcome_window_seconds: int = Field(
        900,
        ge=60,
        le=86_400,
        description="how long such a message waits for a receipt",
    )
    breaker_failures: int = Field(5, ge=1, description="failed packs in a row that open a provider's circuit breaker")
    breaker_cooldown_seconds: int = Field(60, ge=1, le=3600, description="how long an open breaker stays open")


class ReceiptsSettings(
    TableSettings,
    RetentionSettings,
    TemplatesSettings,
    WebhookQueueSettings,
    ProviderSecretSettings,
    RouteStatsSettings,
    ProviderQueueSettings,
):
    """ReceiptsFunction: match pushed receipts to messages (and queue the resends of `receipts.failover` on the
    provider queues). Tokens and push signatures: `ReceiptAuthSettings`."""

    aliyun_receipt_secret_name: str = Field(
        "", description='Secrets Manager secret `{"GLOBESMS_ALIYUN_RECEIPT_TOKEN": "…"}` (docs/security-edges.md)'
    )
    tencent_receipt_secret_name: str = Field(
        "", description='Secrets Manager secret `{"GLOBESMS_TENCENT_RECEIPT_TOKEN": "…"}` (docs/security-edges.md)'
    )
    huawei_receipt_secret_name: str = Field(
        "", description='Secrets Manager secret `{"GLOBESMS_HUAWEI_RECEIPT_TOKEN": "…"}` (docs/security-edges.md)'
    )

    def receipt_secret_name(self, provider: ProviderName) -> str:
        name: str = getattr(self, f"{provider.value}_receipt_secret_name")
        return name


class ReconcileSettings(
    ReceiptDeadlineSettings,
    TableSettings,
    RetentionSettings,
    WebhookQueueSettings,
    ProviderSecretSettings,
    RouteStatsSettings,
):
    """ReconcileFunction (scheduled): messages past their receipt deadline get a final status. Not
    `RateLimitSettings`, as for the dispatchers: this model is read when the handler is imported, and an invalid
    GLOBESMS_RATE_LIMITS failed every run's init, so no deadline (Huawei's neither) and no interrupted accept was
    settled. The rates are read when a run builds its status queries' limiter (functions/reconcile/app.py)."""

    receipt_pending_extension_seconds: int = Field(
        1800, ge=60, le=86_400, description="how far a pulled 'still delivering' moves a deadline (once)"
    )
    reconcile_max_messages: int = Field(
        1000, ge=1, le=50_000, description="the most due messages one reconcile run settles (the rest: next run)"
    )


class WebhookSettings(WebhookQueueSettings, WebhookSecretSettings, CallbackSettings):
    """WebhookSenderFunction: sign and POST status events."""

    webhook_max_receive_count: int = Field(
        8, ge=1, description="the webhook queue's maxReceiveCount: the receive after which an event is given up"
    )


class StatusCountsSettings(TableSettings):
    """StatusCountsFunction: count each batch's status changes from the messages table's stream."""


class SchedulerSettings(TableSettings, ProviderQueueSettings, ReleaseQueueSettings):
    """SchedulerFunction: the minute sweep of the release index, and the releases of held packs."""


#: Function (template logical id) -> the settings it reads. Dispatch and receipts also read the provider
#: clients' models (`globesms.providers`); tools/settings_doc.py adds them.
FUNCTION_SETTINGS: Mapping[str, tuple[type, ...]] = {
    "SendApiFunction": (AcceptSettings,),
    "IntakeFunction": (AcceptSettings,),
    "AliyunDispatchFunction": (DispatchSettings, RateLimitSettings),
    "TencentDispatchFunction": (DispatchSettings, RateLimitSettings),
    "HuaweiDispatchFunction": (DispatchSettings, RateLimitSettings),
    "ReceiptsFunction": (ReceiptsSettings, ReceiptAuthSettings, RepliesSettings),
    "WebhookSenderFunction": (WebhookSettings,),
    "ReconcileFunction": (ReconcileSettings, RateLimitSettings),
    "StatusCountsFunction": (StatusCountsSettings,),
    "SchedulerFunction": (SchedulerSettings,),
}
