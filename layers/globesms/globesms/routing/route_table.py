"""The route table: which providers, in which order and with which weights, carry each kind of message where.

Shipped as `globesms/data/routes.json` in the layer; when `GLOBESMS_ROUTES_PARAMETER` names an SSM parameter, that
parameter (the same JSON) replaces the file, re-read at most every 5 minutes through Powertools Parameters. The
document is validated when it loads; an invalid file is a deployment error (raised), while an invalid or unreadable
parameter is logged and the last good table keeps routing: the parameter's last valid value, or the file's when the
parameter has given none yet (an operator's typo must not undo the routing already in force).

    {"version": 1,
     "default": {"text": [{"provider": "aliyun"}],
                 "template": [{"provider": "tencent", "weight": 80}, {"provider": "huawei", "weight": 20}],
                 "types": {"OTP": {"template": [{"provider": "huawei"}, {"provider": "tencent"}]}}},
     "countries": {"CN": {"template": [{"provider": "huawei"}]}}}

For a recipient in country C (ISO 3166 alpha-2 from its number), a message of kind K ("text" or "template") and
type T, the list used is the first of: C.types.T.K, C.K, default.types.T.K, default.K. A scope's `"mode": "score"`
(same order: C.types.T, C, default.types.T, default) chooses among the list's providers by delivery statistics
(routing/scoring.py, docs/routing-scores.md) instead of by weight.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

from globesms.config import RoutesSettings, load_settings, settings
from globesms.models.base import Model
from globesms.models.outbound import MessageType, ProviderName
from globesms.routing.capabilities import KINDS, MAINLAND_REGION, Kind, Route, kind_refusal, mainland_refusal
from globesms.validation import describe

log = logging.getLogger(__name__)

ROUTES_PARAMETER_ENV = "GLOBESMS_ROUTES_PARAMETER"
PARAMETER_MAX_AGE_SECONDS = 300
READ_RETRY_SECONDS = 60  # after a failed read of the parameter, the table in use routes for this long
DEFAULT = "default"
MAX_WEIGHT = 1_000_000


class RouteTableError(ValueError):
    """The route table document is invalid; the message names every bad path."""


# ---- the document ----


class _Doc(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteEntry(_Doc):
    provider: ProviderName
    weight: Annotated[StrictInt, Field(ge=0, le=MAX_WEIGHT)] | None = None


RouteList = Annotated[list[RouteEntry], Field(min_length=1)]


def _check_list(entries: list[RouteEntry] | None, kind: Kind) -> list[RouteEntry] | None:
    if entries is None:
        return None
    problems = []
    seen: set[ProviderName] = set()
    for index, entry in enumerate(entries):
        if entry.provider in seen:
            problems.append(f"entry {index}: {entry.provider} is listed twice")
        seen.add(entry.provider)
        reason = kind_refusal(entry.provider, kind)
        if reason:
            problems.append(f"entry {index}: {reason}")
    weights = [e.weight for e in entries if e.weight is not None]
    if weights and not any(weights):
        problems.append("at least one weight must be positive (0 means failover only)")
    if problems:
        raise ValueError("; ".join(problems))
    return entries


RouteMode = Literal["weighted", "score"]


class KindRoutes(_Doc):
    text: RouteList | None = None
    template: RouteList | None = None
    # "score": the providers of the list are chosen by their delivery statistics (routing/scoring.py); unset: the
    # next scope's mode, as for the lists (the default: "weighted").
    mode: RouteMode | None = None

    @field_validator("text")
    @classmethod
    def _text_carriers(cls, value: list[RouteEntry] | None) -> list[RouteEntry] | None:
        return _check_list(value, "text")

    @field_validator("template")
    @classmethod
    def _template_carriers(cls, value: list[RouteEntry] | None) -> list[RouteEntry] | None:
        return _check_list(value, "template")

    def lists(self) -> dict[Kind, list[RouteEntry] | None]:
        return {"text": self.text, "template": self.template}


class CountryRoutes(KindRoutes):
    types: dict[MessageType, KindRoutes] = Field(default_factory=dict)


class DefaultRoutes(CountryRoutes):
    text: RouteList
    template: RouteList


Country = Annotated[
    str,
    Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2, as phonenumbers gives it; ZZ: non-geographic numbers"),
]


class RouteTableDoc(_Doc):
    version: Literal[1]
    default: DefaultRoutes
    countries: dict[Country, CountryRoutes] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _mainland_lists_reach_the_mainland(self) -> RouteTableDoc:
        country = self.countries.get(MAINLAND_REGION)
        if country is None:
            return self
        problems = []
        scopes: list[tuple[str, KindRoutes]] = [(f"countries.{MAINLAND_REGION}", country)]
        scopes += [(f"countries.{MAINLAND_REGION}.types.{t}", routes) for t, routes in country.types.items()]
        for path, routes in scopes:
            for kind, entries in routes.lists().items():
                for index, entry in enumerate(entries or ()):
                    reason = mainland_refusal(entry.provider)
                    if reason:
                        problems.append(f"{path}.{kind}.{index}: {reason}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


# ---- the compiled table ----


def _compile(entries: list[RouteEntry], mode: RouteMode) -> Route:
    providers = tuple(e.provider for e in entries)
    if all(e.weight is None for e in entries):
        return Route(providers, scored=mode == "score")
    return Route(providers, tuple(e.weight or 0 for e in entries), scored=mode == "score")


@dataclass(frozen=True)
class RouteTable:
    """Every (country, kind, type) resolved in advance: routing is one dict lookup."""

    source: str
    routes: dict[tuple[str, Kind, MessageType], Route] = field(repr=False)

    def lookup(self, region: str | None, kind: Kind, message_type: MessageType) -> Route:
        route = self.routes.get((region or DEFAULT, kind, message_type))
        return route if route is not None else self.routes[(DEFAULT, kind, message_type)]

    @classmethod
    def from_doc(cls, doc: RouteTableDoc, source: str) -> RouteTable:
        routes: dict[tuple[str, Kind, MessageType], Route] = {}
        scopes: list[tuple[str, CountryRoutes | None]] = [(DEFAULT, None), *doc.countries.items()]
        for name, country in scopes:
            for kind in KINDS:
                for message_type in MessageType:
                    candidates = [
                        country.types.get(message_type) if country else None,
                        country,
                        doc.default.types.get(message_type),
                        doc.default,
                    ]
                    entries = next(c.lists()[kind] for c in candidates if c is not None and c.lists()[kind])
                    assert entries is not None
                    mode: RouteMode = next((c.mode for c in candidates if c is not None and c.mode), "weighted")
                    routes[(name, kind, message_type)] = _compile(entries, mode)
        return cls(source, routes)


def parse_route_table(raw: Any, source: str) -> RouteTable:
    """`raw`: the JSON document, as text or already parsed. Raises RouteTableError naming every bad path."""
    try:
        data = json.loads(raw) if isinstance(raw, str | bytes) else raw
    except ValueError as exc:
        raise RouteTableError(f"route table {source}: not JSON ({exc})") from None
    try:
        doc = RouteTableDoc.model_validate(data)
    except ValidationError as exc:
        raise RouteTableError(f"route table {source}: {describe(exc, default='')}") from None
    return RouteTable.from_doc(doc, source)


@lru_cache(maxsize=1)
def file_table() -> RouteTable:
    text = resources.files("globesms").joinpath("data", "routes.json").read_text(encoding="utf-8")
    return parse_route_table(text, "globesms/data/routes.json")


# ---- the SSM override ----


def _fetch_parameter(name: str) -> Any:
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_parameter(name, transform="json", max_age=PARAMETER_MAX_AGE_SECONDS)


_NOTHING_READ: Any = object()


@dataclass
class _Override:
    raw: Any = _NOTHING_READ  # the last value read, valid or not
    table: RouteTable | None = None  # the last valid value's table
    retry_at: float = 0.0  # after a failed read, when to read again


_override = _Override()


def reset_cache() -> None:
    """Forget the parameter's last value (tests; the file's table is cached for the process)."""
    global _override
    _override = _Override()


def current_table(
    env: Mapping[str, str] | None = None,
    fetch: Callable[[str], Any] = _fetch_parameter,
    clock: Callable[[], float] = time.monotonic,
) -> RouteTable:
    """The table to route with now: when a parameter is configured, its last valid value's (the file's until it has
    given one); else the file's."""
    name = (settings(RoutesSettings) if env is None else load_settings(RoutesSettings, env)).routes_parameter
    if not name:
        return file_table()
    state = _override
    now = clock()
    if now < state.retry_at:
        return state.table or file_table()
    try:
        raw = fetch(name)
    except Exception as exc:  # never the text: only the error's class
        state.retry_at = now + READ_RETRY_SECONDS
        table = state.table or file_table()
        log.error(
            "route table parameter unreadable; routing with %s",
            table.source,
            extra={"parameter": name, "error": type(exc).__name__},
        )
        return table
    # Powertools hands back the same object while it is cached, and a new one (maybe of the same value) each time it
    # reads again: a value is parsed, and an invalid one logged, once.
    if raw is state.raw or raw == state.raw:
        return state.table or file_table()
    state.raw = raw
    try:
        state.table = parse_route_table(raw, f"SSM parameter {name}")
    except RouteTableError as exc:
        table = state.table or file_table()
        log.error("route table parameter invalid; routing with %s: %s", table.source, exc, extra={"parameter": name})
        return table
    return state.table
