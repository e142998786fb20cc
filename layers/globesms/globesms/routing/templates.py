"""The template registry: one logical template id, each provider's version of it.

Shipped as `globesms/data/templates.json` in the layer:

    {"version": 1,
     "templates": {"login-code": {
         "aliyun": {"text": "Your Acme code is {code}, valid {minutes} minutes."},
         "tencent": {"id": "1800308", "params": ["code", "minutes"]},
         "huawei": {"id": "8ff55eac1d0b478ab3c06c3c6a492300", "params": ["code", "minutes"]}}}}

Alibaba has no templates for international SMS: it gets the text, with each `{name}` replaced by the parameter
of that name. Tencent and Huawei get their own template id and the parameters in the listed order (their templates
are positional). Every version of one template takes the same parameters, so a message can move between
providers; parameters a message sends beyond those are ignored. A template id that is not in the registry is taken
as a provider's own id (see `routing`).

Managed at run time: when the stack has a template table (`GLOBESMS_TEMPLATES_TABLE`), PUT/DELETE
/v1/templates/{id} change it, and every function that sends reads it through `registry()`, at most 60 s old. The
shipped file is the seed: the table is the registry from its first change on (that change copies the file's
templates into it first), and until then the file is.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from globesms import hooks
from globesms.domain.segments import count_segments
from globesms.errors import RecipientCode
from globesms.models.base import Model
from globesms.models.limits import MAX_TEXT_CHARS, text_character_problem, text_parts_problem
from globesms.models.outbound import ProviderName
from globesms.ports import MAX_SEED_TEMPLATES, StoredTemplate, StoredTemplates, TemplateStore
from globesms.routing.capabilities import CAPABILITIES
from globesms.validation import describe

log = logging.getLogger(__name__)

TEMPLATE_PARAMS = RecipientCode.TEMPLATE_PARAMS
REGISTRY_MAX_AGE_SECONDS = 60.0  # a change through the API reaches every sending function within this
FILE_SOURCE = "globesms/data/templates.json"
TABLE_SOURCE = "the template table"

ParamName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.\-]{1,64})\}")


class TemplateRegistryError(ValueError):
    """The registry document is invalid; the message names every bad path."""


class _Doc(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextVersion(_Doc):
    """Alibaba's version: the text, with `{name}` placeholders."""

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)

    @field_validator("text")
    @classmethod
    def _sendable(cls, text: str) -> str:
        """The characters a message's own text may not hold (docs/security.md), refused here too: the registry's
        text is sent as it is."""
        problem = text_character_problem(text)
        if problem is not None:
            raise ValueError(problem)
        return text

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(_PLACEHOLDER.findall(self.text)))


class IdVersion(_Doc):
    """Tencent's or Huawei's version: its template id and the parameters in the template's order."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    params: list[ParamName] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _names_once(self) -> IdVersion:
        repeated = sorted({p for p in self.params if self.params.count(p) > 1})
        if repeated:
            raise ValueError(f"params repeated: {', '.join(repeated)}")
        return self


class TemplateVersions(_Doc):
    aliyun: TextVersion | None = None
    tencent: IdVersion | None = None
    huawei: IdVersion | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TemplateVersions:
        versions = self.versions()
        if not versions:
            raise ValueError("no provider version")
        for provider, version in versions.items():
            # Each provider's id in its own form: one its client refuses would be stored, then fail every send.
            ids = CAPABILITIES[provider].template_ids
            if isinstance(version, IdVersion) and ids is not None and not ids.allow(version.id):
                raise ValueError(f"{provider}.id: {provider.capitalize()} template ids are {ids.described}")
        names = {provider: set(version.params) for provider, version in versions.items()}
        if len({frozenset(v) for v in names.values()}) > 1:
            described = "; ".join(f"{p}: {sorted(v)}" for p, v in names.items())
            raise ValueError(f"every version must take the same params ({described})")
        return self

    def versions(self) -> dict[ProviderName, TextVersion | IdVersion]:
        found = {ProviderName.ALIYUN: self.aliyun, ProviderName.TENCENT: self.tencent, ProviderName.HUAWEI: self.huawei}
        return {p: v for p, v in found.items() if v is not None}


# As TemplateRef.id, with a letter somewhere: an all-digit id is a Tencent template id, never a logical one.
LOGICAL_ID_PATTERN = r"^[A-Za-z0-9_.\-]*[A-Za-z][A-Za-z0-9_.\-]*$"
LogicalId = Annotated[str, Field(min_length=1, max_length=64, pattern=LOGICAL_ID_PATTERN)]


class RegistryDoc(_Doc):
    version: Literal[1]
    templates: dict[LogicalId, TemplateVersions] = Field(default_factory=dict)


# ---- rendering ----


@dataclass(frozen=True, slots=True)
class Rendered:
    """A template as one provider gets it: a text (Alibaba), or its template id and ordered parameters. A text
    keeps the parameters it was made from (by name), so that it can be rendered again for another provider."""

    text: str | None = None
    template_id: str | None = None
    template_params: dict[str, str] | None = None
    segments: int | None = None


@dataclass(frozen=True, slots=True)
class ParamsProblem:
    code: str
    message: str


def render(version: TextVersion | IdVersion, params: Mapping[str, str]) -> Rendered | ParamsProblem:
    missing = [name for name in version.params if name not in params]
    if missing:
        return ParamsProblem(TEMPLATE_PARAMS, f"missing template params: {', '.join(missing)}")
    if isinstance(version, IdVersion):
        return Rendered(template_id=version.id, template_params={name: params[name] for name in version.params})
    text = _PLACEHOLDER.sub(lambda match: params[match.group(1)], version.text)
    if len(text) > MAX_TEXT_CHARS:
        return ParamsProblem(
            TEMPLATE_PARAMS, f"the text with its params is {len(text)} characters; at most {MAX_TEXT_CHARS}"
        )
    too_long = text_parts_problem(text)
    if too_long:
        return ParamsProblem(TEMPLATE_PARAMS, f"the text with its params: {too_long}")
    # The params are kept beside the text (they are not sent to Alibaba): a failover renders them for the next provider.
    return Rendered(
        text=text, template_params={name: params[name] for name in version.params}, segments=count_segments(text)
    )


# ---- the registry ----


#: One logical template's versions, by provider.
ProviderTemplates = dict[ProviderName, TextVersion | IdVersion]


@dataclass(frozen=True)
class TemplateRegistry:
    source: str
    templates: dict[str, ProviderTemplates]

    def get(self, logical_id: str) -> ProviderTemplates | None:
        return self.templates.get(logical_id)


def parse_registry(raw: Any, source: str) -> TemplateRegistry:
    try:
        doc = RegistryDoc.model_validate_json(raw) if isinstance(raw, str | bytes) else RegistryDoc.model_validate(raw)
    except ValidationError as exc:
        raise TemplateRegistryError(f"template registry {source}: {describe(exc, default='')}") from None
    templates = {name: versions.versions() for name, versions in doc.templates.items()}
    return TemplateRegistry(source, templates)


def _seedable(registry: TemplateRegistry) -> TemplateRegistry:
    """The shipped file seeds the template table in one transaction (`_seeded`), which takes at most
    MAX_SEED_TEMPLATES: a larger file would make every PUT/DELETE /v1/templates fail, so it is a deployment error
    here, like an invalid one. Chosen over seeding in chunks: one transaction is what makes the seed all or nothing,
    done once when two first changes race, and never writing back a template deleted right after it."""
    count = len(registry.templates)
    if count > MAX_SEED_TEMPLATES:
        raise TemplateRegistryError(
            f"template registry {registry.source}: {count} templates; the shipped file holds at most "
            f"{MAX_SEED_TEMPLATES} (it seeds the template table in one transaction): add the others with "
            "PUT /v1/templates/{id}"
        )
    return registry


@lru_cache(maxsize=1)
def file_registry() -> TemplateRegistry:
    text = resources.files("globesms").joinpath("data", "templates.json").read_text(encoding="utf-8")
    return _seedable(parse_registry(text, FILE_SOURCE))


def registry_of(stored: StoredTemplates) -> TemplateRegistry:
    """The registry a store holds: the shipped file's until the store is seeded. A stored template that does not
    validate (written around the API) is logged and left out: nothing is sent with it."""
    if not stored.seeded:
        return file_registry()
    templates: dict[str, ProviderTemplates] = {}
    for item in stored.templates:
        versions: TemplateVersions | None
        try:
            versions = TemplateVersions.model_validate_json(item.document)
        except ValidationError as exc:
            versions = _without_unsendable_ids(item)
            if versions is None:
                log.error(
                    "stored template invalid, left out: %s",
                    describe(exc, default=""),
                    extra={"template": item.template_id},
                )
                continue
        templates[item.template_id] = versions.versions()
    return TemplateRegistry(TABLE_SOURCE, templates)


def _without_unsendable_ids(item: StoredTemplate) -> TemplateVersions | None:
    """A stored template whose only fault is a provider version with an id that provider refuses, less that version
    (logged); None when anything else is wrong with it. The API took Huawei ids of up to 64 characters before
    2026-12-07: dropping such a template whole would make its logical id read as a provider's own template id
    (Huawei takes 1-32 characters, so a short logical id would be sent to Huawei as its template id), where without
    the version the router just leaves Huawei out for it (TEMPLATE_UNKNOWN_FOR_PROVIDER)."""
    try:
        document = json.loads(item.document)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    refused = [provider for provider in ProviderName if _id_refused(provider, document.get(provider))]
    if not refused:
        return None
    try:
        versions = TemplateVersions.model_validate({k: v for k, v in document.items() if k not in refused})
    except ValidationError:
        return None
    log.error(
        "stored template's %s version has a template id its provider refuses; that version is left out: "
        "PUT the template again with a valid id",
        ", ".join(refused),
        extra={"template": item.template_id},
    )
    return versions


def _id_refused(provider: ProviderName, version: object) -> bool:
    ids = CAPABILITIES[provider].template_ids
    template_id = version.get("id") if isinstance(version, dict) else None
    return ids is not None and isinstance(template_id, str) and not ids.allow(template_id)


registry_clock: Callable[[], float] = time.monotonic  # what ages the cache of registry() (tests move it)


@dataclass
class RegistryLoader:
    """The store's registry, read again once it is `max_age` seconds old. A failed read keeps the registry in use
    (the file's before any read succeeded) and is retried `max_age` seconds later: sends go on meanwhile."""

    store: TemplateStore
    clock: Callable[[], float] | None = None  # default: `registry_clock`, looked up at each call
    max_age: float = REGISTRY_MAX_AGE_SECONDS
    _registry: TemplateRegistry | None = None
    _fresh_until: float = float("-inf")

    def current(self) -> TemplateRegistry:
        now = (self.clock or registry_clock)()
        if self._registry is not None and now < self._fresh_until:
            return self._registry
        try:
            loaded = registry_of(self.store.load())
        except Exception as exc:  # the error's class only: never a template's text
            loaded = self._registry or file_registry()
            log.error(
                "template registry unreadable; sending with %s", loaded.source, extra={"error": type(exc).__name__}
            )
        self._registry, self._fresh_until = loaded, now + self.max_age
        return loaded


_loader: RegistryLoader | None = None
#: Where `registry()` reads: installed by the adapters' wiring (`globesms.aws.wiring`), which every function that
#: sends imports; None when the stack has no template table (the file alone then).
_deployed: hooks.Hook[TemplateStore] = hooks.Hook(hooks.TEMPLATE_STORE)


def reset_cache() -> None:
    """Forget the registry read from the store (tests; a process keeps it up to 60 s)."""
    global _loader
    _loader = None


def registry() -> TemplateRegistry:
    """The registry to send with now: the store's, at most 60 s old, when there is a store; else the file's."""
    global _loader
    store = _deployed()
    if store is None:
        return file_registry()
    if _loader is None or _loader.store is not store:
        _loader = RegistryLoader(store)
    return _loader.current()


# ---- managing the registry (the API's /v1/templates routes) ----


class TemplateView(Model):
    id: str
    versions: TemplateVersions
    updated_at: str | None = Field(default=None, description="when it was last stored; null for the shipped file's")


class TemplateList(Model):
    source: Literal["file", "table"] = Field(
        description="file: the shipped templates.json (nothing changed through the API yet); table: the stored registry"
    )
    templates: list[TemplateView] = Field(description="by id")


def _as_versions(versions: ProviderTemplates) -> TemplateVersions:
    return TemplateVersions.model_validate({provider.value: version for provider, version in versions.items()})


def list_templates(store: TemplateStore) -> TemplateList:
    stored = store.load()
    if not stored.seeded:
        shipped = file_registry().templates
        views = [TemplateView(id=name, versions=_as_versions(shipped[name])) for name in sorted(shipped)]
        return TemplateList(source="file", templates=views)
    current = registry_of(stored)  # the valid ones only, as sends see them
    updated = {item.template_id: item.updated_at for item in stored.templates}
    views = [
        TemplateView(id=name, versions=_as_versions(current.templates[name]), updated_at=updated[name])
        for name in sorted(current.templates)
    ]
    return TemplateList(source="table", templates=views)


def get_template(store: TemplateStore, template_id: str) -> TemplateView | None:
    return next((view for view in list_templates(store).templates if view.id == template_id), None)


def _seeded(store: TemplateStore, now: str) -> None:
    """Copy the shipped templates into the store before its first change, so the change applies to them."""
    if store.load().seeded:
        return
    shipped = file_registry().templates
    store.seed([StoredTemplate(name, _document(_as_versions(shipped[name])), now) for name in sorted(shipped)])


def _document(versions: TemplateVersions) -> str:
    return versions.model_dump_json(exclude_none=True)


def put_template(
    store: TemplateStore, template_id: str, versions: TemplateVersions, now: str
) -> tuple[TemplateView, bool]:
    """Store a template (validated by its model: ids and parameters per provider); True when it is new."""
    _seeded(store, now)
    created = store.put(StoredTemplate(template_id, _document(versions), now))
    return TemplateView(id=template_id, versions=versions, updated_at=now), created


def delete_template(store: TemplateStore, template_id: str, now: str) -> bool:
    """False when there was no such template. Recipients already queued keep the content they were accepted with;
    only a failover to another provider needs the template again, and without it they cannot move."""
    _seeded(store, now)
    return store.delete(template_id)
