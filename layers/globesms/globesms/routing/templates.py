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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from globesms.domain.segments import count_segments
from globesms.errors import RecipientCode
from globesms.models.api import MAX_TEXT_CHARS, text_parts_problem
from globesms.models.outbound import ProviderName
from globesms.routing.capabilities import CAPABILITIES
from globesms.validation import describe

TEMPLATE_PARAMS = RecipientCode.TEMPLATE_PARAMS

ParamName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.\-]{1,64})\}")


class TemplateRegistryError(ValueError):
    """The registry document is invalid; the message names every bad path."""


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextVersion(_Doc):
    """Alibaba's version: the text, with `{name}` placeholders."""

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)

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
        tencent_ids = CAPABILITIES[ProviderName.TENCENT].template_ids
        if self.tencent and tencent_ids is not None and not tencent_ids.fullmatch(self.tencent.id):
            raise ValueError(f"tencent.id: Tencent template ids look like {tencent_ids.pattern!r}")
        names = {provider: set(version.params) for provider, version in versions.items()}
        if len({frozenset(v) for v in names.values()}) > 1:
            described = "; ".join(f"{p}: {sorted(v)}" for p, v in names.items())
            raise ValueError(f"every version must take the same params ({described})")
        return self

    def versions(self) -> dict[ProviderName, TextVersion | IdVersion]:
        found = {ProviderName.ALIYUN: self.aliyun, ProviderName.TENCENT: self.tencent, ProviderName.HUAWEI: self.huawei}
        return {p: v for p, v in found.items() if v is not None}


LogicalId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        # As TemplateRef.id, with a letter somewhere: an all-digit id is a Tencent template id, never a logical one.
        pattern=r"^[A-Za-z0-9_.\-]*[A-Za-z][A-Za-z0-9_.\-]*$",
    ),
]


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


@lru_cache(maxsize=1)
def registry() -> TemplateRegistry:
    text = resources.files("globesms").joinpath("data", "templates.json").read_text(encoding="utf-8")
    return parse_registry(text, "globesms/data/templates.json")
