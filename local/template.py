"""template.yaml as typed descriptions, so the local stack is built from the same file SAM deploys.

The loader keeps CloudFormation intrinsics as data (`!Ref X` becomes `{"Ref": "X"}`, the long form); `resolve`
evaluates them later against a `ResolveContext` that says what each reference means locally (a moto queue URL
instead of a real one). Only what the local stack uses is described: tables, queues, functions, API routes, SQS
and DynamoDB stream event sources, and schedules (`rate(...)`); anything else stays reachable through `Template.raw`.
"""

from __future__ import annotations

import functools
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

TABLE_TYPE = "AWS::DynamoDB::Table"
QUEUE_TYPE = "AWS::SQS::Queue"
FUNCTION_TYPE = "AWS::Serverless::Function"
API_TYPE = "AWS::Serverless::Api"
LAYER_TYPE = "AWS::Serverless::LayerVersion"
IMPLICIT_API_ID = "ServerlessRestApi"  # what SAM names the API that events without RestApiId are attached to

# SAM and CloudFormation defaults for properties the template may leave out.
DEFAULT_FUNCTION_TIMEOUT = 3
DEFAULT_FUNCTION_MEMORY = 128
DEFAULT_VISIBILITY_TIMEOUT = 30
DEFAULT_RETENTION_PERIOD = 345_600
DEFAULT_SQS_BATCH_SIZE = 10


# ---------------------------------------------------------------- loading


# libyaml's parser when PyYAML was built with it (its wheels are): the same safe constructors, several times faster
# on a template this size, which every local function host and every moto-backed test loads.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CloudFormationLoader(_SafeLoader):  # type: ignore[misc]
    """A SafeLoader that also reads the short-form tags (`!Ref`, `!GetAtt`, `!Sub`, ...)."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)  # `!GetAtt Queue.Arn` is the short form of ["Queue", "Arn"]
    return {f"Fn::{tag_suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def load_raw_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as data, a fresh copy each call (callers may change it). Parsed once per version of the file:
    the parse is ~0.1 s of CPU, and a moto-backed test deploys the template once per test (hundreds in `make
    test`); unpickling the parsed copy is a few milliseconds."""
    stat = path.stat()
    document: dict[str, Any] = pickle.loads(_parsed(path.resolve(), stat.st_mtime_ns, stat.st_size))  # noqa: S301
    return document


@functools.lru_cache(maxsize=4)
def _parsed(path: Path, mtime_ns: int, size: int) -> bytes:
    """`path` parsed, pickled (our own bytes, never read from outside); the file's version is part of the key."""
    with path.open(encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader
    return pickle.dumps(document, protocol=pickle.HIGHEST_PROTOCOL)


# ---------------------------------------------------------------- descriptions


@dataclass(frozen=True)
class KeyElement:
    attribute_name: str
    key_type: str  # HASH or RANGE


@dataclass(frozen=True)
class GlobalSecondaryIndex:
    name: str
    key_schema: tuple[KeyElement, ...]
    projection_type: str
    non_key_attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    key_schema: tuple[KeyElement, ...]
    attribute_definitions: Mapping[str, str]  # attribute name -> S / N / B
    global_secondary_indexes: tuple[GlobalSecondaryIndex, ...]
    ttl_attribute: str | None
    table_name: Any = None  # Properties.TableName when the template fixes one (may be an intrinsic)
    stream_view_type: str | None = None  # StreamSpecification.StreamViewType: the table has a stream


@dataclass(frozen=True)
class Redrive:
    dead_letter_queue_id: str
    max_receive_count: int


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    visibility_timeout: int
    message_retention_period: int
    fifo: bool
    redrive: Redrive | None
    queue_name: Any = None  # Properties.QueueName when the template fixes one (may be an intrinsic)


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: Path  # absolute
    handler: str  # "module.function"
    # ContentUri (absolute) of each layer the template builds: what Lambda mounts and puts on sys.path.
    layer_dirs: tuple[Path, ...]
    environment: Mapping[str, Any]  # Globals merged with the function's own; values may be intrinsics
    timeout: int
    memory_size: int
    runtime: str | None


@dataclass(frozen=True)
class ApiRoute:
    function_id: str
    event_name: str
    api_id: str
    path: str  # as in the template, with `{id}` placeholders
    method: str  # upper case; ANY matches every method
    # A bool, or for a route written in the API's DefinitionBody as an Fn::If between two methods, the Fn::If of
    # their two answers: `resolve` it against the stack's parameters (local.api_server does).
    api_key_required: Any
    stage_name: Any  # the API's StageName (may be an intrinsic)


@dataclass(frozen=True)
class SqsEventSource:
    function_id: str
    event_name: str
    queue_id: str
    batch_size: int
    maximum_batching_window_seconds: int
    report_batch_item_failures: bool
    enabled: bool = True
    maximum_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency: the most invocations at once


@dataclass(frozen=True)
class ScheduleEventSource:
    """A function's `Schedule`/`ScheduleV2` event: EventBridge invokes it every `rate_seconds` (None: an expression
    the local stack does not run, a cron() one)."""

    function_id: str
    event_name: str
    expression: str
    rate_seconds: int | None
    enabled: bool = True


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}


def rate_seconds(expression: str) -> int | None:
    """The period of a `rate(N unit)` expression, in seconds; None for any other (cron) expression."""
    found = _RATE.match(expression.strip())
    if found is None:
        return None
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2).rstrip("s")]


def _schedule_event_source(function_id: str, event_name: str, properties: dict[str, Any]) -> ScheduleEventSource:
    expression = str(properties.get("Schedule") or properties.get("ScheduleExpression") or "")
    state = properties.get("State", "ENABLED")
    enabled = bool(properties.get("Enabled", True)) and state == "ENABLED"
    return ScheduleEventSource(function_id, event_name, expression, rate_seconds(expression), enabled)


@dataclass(frozen=True)
class StreamEventSource:
    """A DynamoDB stream event source (`Type: DynamoDB`): the table whose stream it reads, and its filters (each an
    EventBridge-style pattern, as JSON: a record is handed over when any matches)."""

    function_id: str
    event_name: str
    table_id: str
    batch_size: int
    maximum_batching_window_seconds: int
    filter_patterns: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any


@dataclass(frozen=True)
class Template:
    raw: dict[str, Any]
    parameters: Mapping[str, Parameter]
    tables: Mapping[str, TableSpec]
    queues: Mapping[str, QueueSpec]
    functions: Mapping[str, FunctionSpec]
    routes: tuple[ApiRoute, ...]
    sqs_event_sources: tuple[SqsEventSource, ...]
    schedules: tuple[ScheduleEventSource, ...] = ()
    stream_event_sources: tuple[StreamEventSource, ...] = ()

    def schedules_of(self, function_id: str) -> list[ScheduleEventSource]:
        return [schedule for schedule in self.schedules if schedule.function_id == function_id]

    def event_sources_of(self, function_id: str) -> list[SqsEventSource]:
        return [source for source in self.sqs_event_sources if source.function_id == function_id]

    def stream_sources_of(self, function_id: str) -> list[StreamEventSource]:
        return [source for source in self.stream_event_sources if source.function_id == function_id]


def load_template(path: Path = TEMPLATE_PATH) -> Template:
    raw = load_raw_template(path)
    resources: dict[str, Any] = raw.get("Resources", {})
    globals_ = raw.get("Globals", {})
    base_dir = path.resolve().parent
    functions = {
        logical_id: _function(
            logical_id,
            resource.get("Properties", {}),
            globals_.get("Function", {}),
            resources,
            base_dir,
            raw.get("Parameters", {}),
        )
        for logical_id, resource in resources.items()
        if resource["Type"] == FUNCTION_TYPE
    }
    routes: list[ApiRoute] = []
    sources: list[SqsEventSource] = []
    schedules: list[ScheduleEventSource] = []
    streams: list[StreamEventSource] = []
    for function_id in functions:
        for event_name, event in resources[function_id].get("Properties", {}).get("Events", {}).items():
            properties = event.get("Properties", {})
            if event["Type"] == "Api":
                routes.append(_route(function_id, event_name, properties, resources, globals_.get("Api", {})))
            elif event["Type"] == "SQS":
                sources.append(_sqs_event_source(function_id, event_name, properties))
            elif event["Type"] in ("Schedule", "ScheduleV2"):
                schedules.append(_schedule_event_source(function_id, event_name, properties))
            elif event["Type"] == "DynamoDB":
                streams.append(_stream_event_source(function_id, event_name, properties))
    for api_id, resource in resources.items():
        if resource["Type"] == API_TYPE:
            routes.extend(_body_routes(api_id, resource.get("Properties", {}), globals_.get("Api", {})))
    return Template(
        raw=raw,
        parameters={
            name: Parameter(name, spec.get("Type", "String"), spec.get("Default"))
            for name, spec in raw.get("Parameters", {}).items()
        },
        tables={lid: _table(lid, r.get("Properties", {})) for lid, r in resources.items() if r["Type"] == TABLE_TYPE},
        queues={
            lid: _queue(lid, r.get("Properties", {}), raw.get("Parameters", {}))
            for lid, r in resources.items()
            if r["Type"] == QUEUE_TYPE
        },
        functions=functions,
        routes=tuple(routes),
        sqs_event_sources=tuple(sources),
        schedules=tuple(schedules),
        stream_event_sources=tuple(streams),
    )


def _keys(schema: list[dict[str, str]]) -> tuple[KeyElement, ...]:
    return tuple(KeyElement(k["AttributeName"], k["KeyType"]) for k in schema)


def _table(logical_id: str, properties: dict[str, Any]) -> TableSpec:
    ttl = properties.get("TimeToLiveSpecification") or {}
    return TableSpec(
        logical_id=logical_id,
        key_schema=_keys(properties["KeySchema"]),
        attribute_definitions={a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]},
        global_secondary_indexes=tuple(
            GlobalSecondaryIndex(
                name=index["IndexName"],
                key_schema=_keys(index["KeySchema"]),
                projection_type=index.get("Projection", {}).get("ProjectionType", "ALL"),
                non_key_attributes=tuple(index.get("Projection", {}).get("NonKeyAttributes", ())),
            )
            for index in properties.get("GlobalSecondaryIndexes", ())
        ),
        ttl_attribute=ttl.get("AttributeName") if ttl.get("Enabled") else None,
        table_name=properties.get("TableName"),
        stream_view_type=(properties.get("StreamSpecification") or {}).get("StreamViewType"),
    )


def _target_id(reference: Any) -> str:
    """The logical id a `!GetAtt X.Arn` or `!Ref X` points at (how event sources and redrive name a queue)."""
    if isinstance(reference, dict) and "Fn::GetAtt" in reference:
        return str(reference["Fn::GetAtt"][0])
    if isinstance(reference, dict) and "Ref" in reference:
        return str(reference["Ref"])
    raise ValueError(f"expected !GetAtt <Resource>.Arn or !Ref <Resource>, got {reference!r}")


def _parameter_default(value: Any, parameters: dict[str, Any]) -> Any:
    """A literal, or a `!Ref` to a template parameter read as its default (the local stack deploys defaults)."""
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
        return parameters[value["Ref"]].get("Default")
    return value


def _queue(logical_id: str, properties: dict[str, Any], parameters: dict[str, Any]) -> QueueSpec:
    policy = properties.get("RedrivePolicy")
    return QueueSpec(
        logical_id=logical_id,
        visibility_timeout=int(properties.get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT)),
        message_retention_period=int(properties.get("MessageRetentionPeriod", DEFAULT_RETENTION_PERIOD)),
        fifo=bool(properties.get("FifoQueue", False)),
        redrive=Redrive(
            _target_id(policy["deadLetterTargetArn"]), int(_parameter_default(policy["maxReceiveCount"], parameters))
        )
        if policy
        else None,
        queue_name=properties.get("QueueName"),
    )


def _function(
    logical_id: str,
    properties: dict[str, Any],
    defaults: dict[str, Any],
    resources: dict[str, Any],
    base_dir: Path,
    parameters: dict[str, Any],
) -> FunctionSpec:
    def setting(name: str, fallback: Any = None) -> Any:
        return _parameter_default(properties.get(name, defaults.get(name, fallback)), parameters)

    # SAM appends a function's own Layers to the global ones. Layers given as ARNs of layers built elsewhere
    # cannot be mounted locally and are left out.
    layer_ids = [
        _target_id(ref) for ref in [*defaults.get("Layers", ()), *properties.get("Layers", ())] if isinstance(ref, dict)
    ]

    environment = {
        **defaults.get("Environment", {}).get("Variables", {}),
        **properties.get("Environment", {}).get("Variables", {}),
    }
    return FunctionSpec(
        logical_id=logical_id,
        code_uri=(base_dir / setting("CodeUri")).resolve(),
        handler=setting("Handler"),
        layer_dirs=tuple(
            (base_dir / resources[layer_id]["Properties"]["ContentUri"]).resolve()
            for layer_id in layer_ids
            if resources.get(layer_id, {}).get("Type") == LAYER_TYPE
        ),
        environment=environment,
        timeout=int(setting("Timeout", DEFAULT_FUNCTION_TIMEOUT)),
        memory_size=int(setting("MemorySize", DEFAULT_FUNCTION_MEMORY)),
        runtime=setting("Runtime"),
    )


def _route(
    function_id: str,
    event_name: str,
    properties: dict[str, Any],
    resources: dict[str, Any],
    api_globals: dict[str, Any],
) -> ApiRoute:
    api_id = _target_id(properties["RestApiId"]) if "RestApiId" in properties else IMPLICIT_API_ID
    # SAM applies Globals.Api to every API, the implicit one included; the API's own properties win.
    api_properties = {**api_globals, **resources.get(api_id, {}).get("Properties", {})}
    api_auth = api_properties.get("Auth", {})
    # An event's own Auth.ApiKeyRequired overrides the API's default, as in SAM.
    key_required = properties.get("Auth", {}).get("ApiKeyRequired", api_auth.get("ApiKeyRequired", False))
    return ApiRoute(
        function_id=function_id,
        event_name=event_name,
        api_id=api_id,
        path=properties["Path"],
        method=str(properties["Method"]).upper(),
        api_key_required=bool(key_required),
        stage_name=api_properties.get("StageName", "Prod"),
    )


_INTEGRATED_FUNCTION = re.compile(r"\$\{(\w+)\.Arn\}")


def _body_routes(api_id: str, properties: dict[str, Any], api_globals: dict[str, Any]) -> list[ApiRoute]:
    """The routes written in an API's DefinitionBody (SAM merges the events' routes into it, MergeDefinitions):
    each method an aws_proxy integration with a function, or an Fn::If between two such methods."""
    api_properties = {**api_globals, **properties}
    default_key = bool(api_properties.get("Auth", {}).get("ApiKeyRequired", False))
    routes = []
    for path, methods in (api_properties.get("DefinitionBody") or {}).get("paths", {}).items():
        for method, definition in methods.items():
            if set(definition) == {"Fn::If"}:
                condition, when_true, when_false = definition["Fn::If"]
                branches = [when_true, when_false]
                key_required: Any = {
                    "Fn::If": [condition, _needs_key(when_true, default_key), _needs_key(when_false, default_key)]
                }
            else:
                branches, key_required = [definition], _needs_key(definition, default_key)
            routes.append(
                ApiRoute(
                    function_id=_integrated_function(branches[0], path),
                    event_name=f"{method.upper()} {path}",
                    api_id=api_id,
                    path=path,
                    method=method.upper(),
                    api_key_required=key_required,
                    stage_name=api_properties.get("StageName", "Prod"),
                )
            )
    return routes


def _needs_key(method: dict[str, Any], default: bool) -> bool:
    """As SAM reads a method's security: `api_key_false` means no key; otherwise the API's default adds one."""
    security = method.get("security", [])
    if any("api_key_false" in entry for entry in security):
        return False
    return default or any("api_key" in entry for entry in security)


def _integrated_function(method: dict[str, Any], path: str) -> str:
    uri = method.get("x-amazon-apigateway-integration", {}).get("uri", {})
    text = uri.get("Fn::Sub") if isinstance(uri, dict) else None
    found = _INTEGRATED_FUNCTION.search(text if isinstance(text, str) else "")
    if found is None:
        raise ValueError(f"{path}: expected an aws_proxy integration with !Sub ...${{<Function>.Arn}}...")
    return found.group(1)


def _sqs_event_source(function_id: str, event_name: str, properties: dict[str, Any]) -> SqsEventSource:
    return SqsEventSource(
        function_id=function_id,
        event_name=event_name,
        queue_id=_target_id(properties["Queue"]),
        batch_size=int(properties.get("BatchSize", DEFAULT_SQS_BATCH_SIZE)),
        maximum_batching_window_seconds=int(properties.get("MaximumBatchingWindowInSeconds", 0)),
        report_batch_item_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", ()),
        enabled=bool(properties.get("Enabled", True)),
        maximum_concurrency=_maximum_concurrency(properties),
    )


def _stream_event_source(function_id: str, event_name: str, properties: dict[str, Any]) -> StreamEventSource:
    filters = (properties.get("FilterCriteria") or {}).get("Filters", ())
    return StreamEventSource(
        function_id=function_id,
        event_name=event_name,
        table_id=_target_id(properties["Stream"]),
        batch_size=int(properties.get("BatchSize", 100)),  # the DynamoDB event source's default
        maximum_batching_window_seconds=int(properties.get("MaximumBatchingWindowInSeconds", 0)),
        filter_patterns=tuple(str(f["Pattern"]) for f in filters),
        enabled=bool(properties.get("Enabled", True)),
    )


def _maximum_concurrency(properties: dict[str, Any]) -> int | None:
    value = properties.get("ScalingConfig", {}).get("MaximumConcurrency")
    return None if value is None else int(value)


# ---------------------------------------------------------------- intrinsics


class UnresolvableReference(LookupError):
    """A reference the local context has no value for (an API id, a layer ARN, ...)."""


@dataclass
class ResolveContext:
    """What references mean locally: parameter values, pseudo parameters, and each provisioned resource's
    `Ref` value and attributes (`(logical id, "Arn")` -> ARN)."""

    parameters: dict[str, Any]
    region: str
    account_id: str
    stack_name: str
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    conditions: dict[str, bool] = field(default_factory=dict)

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        for table in (pseudo, self.parameters, self.refs):
            if name in table:
                return table[name]
        raise UnresolvableReference(f"no local value for !Ref {name}")

    def attribute(self, logical_id: str, name: str) -> str:
        try:
            return self.attributes[(logical_id, name)]
        except KeyError:
            raise UnresolvableReference(f"no local value for !GetAtt {logical_id}.{name}") from None


_NO_VALUE = object()  # AWS::NoValue: the property disappears
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def resolve(value: Any, context: ResolveContext) -> Any:
    """Evaluate the intrinsic functions in `value` (recursively)."""
    if isinstance(value, list):
        return [item for item in (resolve(v, context) for v in value) if item is not _NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref":
            return _NO_VALUE if argument == "AWS::NoValue" else context.ref(argument)
        if key.startswith("Fn::") or key == "Condition":
            return _intrinsic(key, argument, context)
    return {k: v for k, v in ((k, resolve(v, context)) for k, v in value.items()) if v is not _NO_VALUE}


def _intrinsic(name: str, argument: Any, context: ResolveContext) -> Any:
    if name == "Fn::GetAtt":
        logical_id, attribute = argument
        return context.attribute(logical_id, attribute)
    if name == "Fn::Sub":
        return _sub(argument, context)
    if name == "Fn::Join":
        separator, items = argument
        return str(separator).join(str(item) for item in resolve(items, context))
    if name == "Fn::Select":
        index, items = argument
        return resolve(items, context)[int(resolve(index, context))]
    if name == "Fn::Split":
        separator, text = argument
        return str(resolve(text, context)).split(separator)
    if name == "Fn::If":
        condition, when_true, when_false = argument
        return resolve(when_true if _condition(condition, context) else when_false, context)
    if name in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
        return _evaluate_condition(name, argument, context)
    raise UnresolvableReference(f"{name} is not supported by the local stack")


def _sub(argument: Any, context: ResolveContext) -> str:
    text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
    local_values = {name: resolve(v, context) for name, v in variables.items()}

    def substitute(match: re.Match[str]) -> str:
        expression = match.group(1)
        if expression.startswith("!"):  # ${!Literal} is written out as ${Literal}
            return "${" + expression[1:] + "}"
        if expression in local_values:
            return str(local_values[expression])
        if "." in expression and not expression.startswith("AWS::"):
            logical_id, attribute = expression.split(".", 1)
            return str(context.attribute(logical_id, attribute))
        return str(context.ref(expression))

    return _SUB_VARIABLE.sub(substitute, text)


def _condition(name: str, context: ResolveContext) -> bool:
    if name not in context.conditions:
        raise UnresolvableReference(f"condition {name} is not evaluated locally")
    return context.conditions[name]


def _evaluate_condition(name: str, argument: Any, context: ResolveContext) -> bool:
    if name == "Condition":
        return _condition(argument, context)
    values = [resolve(item, context) for item in argument]
    if name == "Fn::Equals":
        return str(values[0]) == str(values[1])
    if name == "Fn::Not":
        return not values[0]
    if name == "Fn::And":
        return all(values)
    return any(values)


def evaluate_conditions(raw: dict[str, Any], context: ResolveContext) -> None:
    """Fill `context.conditions` from the template's Conditions section (in order: a condition may use another)."""
    for name, expression in raw.get("Conditions", {}).items():
        context.conditions[name] = bool(resolve(expression, context))


def as_environment_value(value: Any) -> str:
    """Lambda environment values are strings; CloudFormation writes booleans in lower case."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
