"""The alarms and the dashboard of template.yaml, held to the template and to the code (docs/operations.md).

- Every dead-letter queue has an alarm on its depth; the intake and every provider queue one on its oldest message;
  every function one on its errors and one on its throttles.
- Every alarm has a name under the stack's name, a description, and notifies the alarm topic.
- A metric of the `globesms` namespace (in an alarm or on the dashboard) is one the code emits, with exactly the
  dimension set the code emits it with: CloudWatch keeps one series per dimension set, and an alarm on a set nobody
  emits never fires. Metrics of an `AWS/` namespace name resources the template has.

What the code emits is read from the source under layers/ and functions/ (`scan_module`), as Powertools writes it:
- `metrics.add_metric(name=...)` on the shared `Metrics`: dimensions `service` (Powertools adds it) plus the default
  dimensions of the process. A handler module's are its own (`metrics.set_default_dimensions(provider=...)` in
  dispatch); a layer module runs in whichever handler imports it, so any handler's set is possible there.
- `with single_metric(name=..., default_dimensions={...}) as m:`: `service` (POWERTOOLS_SERVICE_NAME), the keys of
  the dict, and any `m.add_dimension(...)` in the block.
- A name is a string literal, a module constant, or (a loop over names) each CamelCase literal of the enclosing
  function. A metric emitted another way is not seen: teach `scan_module` the new way, with a case in
  `test_the_scan_reads_each_way_the_code_emits_a_metric`.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from globesms.errors import ErrorCategory
from local.template import (
    TEMPLATE_PATH,
    ResolveContext,
    UnresolvableReference,
    evaluate_conditions,
    load_raw_template,
    resolve,
)
from tools import redrive

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = (ROOT / "layers", ROOT / "functions")
HANDLER_ROOT = ROOT / "functions"
CUSTOM_NAMESPACE = "globesms"
ALARM_TYPE = "AWS::CloudWatch::Alarm"
TOPIC_ID = "AlarmTopic"

# Metrics the alarms and the dashboard use that the code does not emit yet (docs/operations.md, "Metrics the code
# does not emit yet"). Take each name out once the code emits it: `test_pending_metrics_are_not_emitted_yet` fails
# as soon as it does, so nothing stays here to hide a misspelt name.
PENDING_METRICS: frozenset[str] = frozenset()


# ---------------------------------------------------------------- what the code emits


@dataclass(frozen=True)
class Emission:
    name: str
    dimension_sets: frozenset[frozenset[str]] | None  # the sets it may carry; None: not readable from the source
    where: str


_CAMEL_CASE = re.compile(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+")


def _call_name(call: ast.Call) -> str | None:
    function = call.func
    if isinstance(function, ast.Attribute):
        return function.attr
    if isinstance(function, ast.Name):
        return function.id
    return None


def _argument(call: ast.Call, keyword: str, position: int) -> ast.expr | None:
    for given in call.keywords:
        if given.arg == keyword:
            return given.value
    return call.args[position] if len(call.args) > position else None


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _string_constants(tree: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _dict_keys(node: ast.expr | None) -> frozenset[str] | None:
    if node is None:
        return frozenset()
    if isinstance(node, ast.Dict) and all(_literal(key) for key in node.keys):
        return frozenset(_literal(key) or "" for key in node.keys)
    return None


def module_dimensions(tree: ast.Module) -> frozenset[str] | None:
    """The dimensions a module adds to the shared `Metrics`, besides `service` (None: not readable)."""
    single_metric_targets = {
        item.optional_vars.id
        for node in ast.walk(tree)
        if isinstance(node, ast.With)
        for item in node.items
        if isinstance(item.optional_vars, ast.Name)
        and isinstance(item.context_expr, ast.Call)
        and _call_name(item.context_expr) == "single_metric"
    }
    names: set[str] = set()
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        receiver = call.func.value if isinstance(call.func, ast.Attribute) else None
        if isinstance(receiver, ast.Name) and receiver.id in single_metric_targets:
            continue
        if _call_name(call) == "set_default_dimensions":
            names.update(k.arg for k in call.keywords if k.arg)
        elif _call_name(call) == "log_metrics":
            keys = _dict_keys(_argument(call, "default_dimensions", 99))
            if keys is None:
                return None
            names.update(keys)
        elif _call_name(call) == "add_dimension":
            name = _literal(_argument(call, "name", 0))
            if name is None:
                return None
            names.add(name)
    return frozenset(names)


@dataclass
class _Scanner(ast.NodeVisitor):
    where: str
    shared_dimension_sets: frozenset[frozenset[str]] | None
    constants: dict[str, str]
    emissions: list[Emission] = field(default_factory=list)
    _scopes: list[ast.AST] = field(default_factory=list)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._scopes.append(node)
        self.generic_visit(node)
        self._scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            call = item.context_expr
            if isinstance(call, ast.Call) and _call_name(call) == "single_metric":
                dimensions = self._single_metric_dimensions(call, item.optional_vars, node.body)
                self._add(call, dimensions)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if _call_name(node) == "add_metric" and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            if isinstance(receiver, ast.Name) and receiver.id == "metrics":
                self._add(node, self.shared_dimension_sets)
        elif _call_name(node) == "emit_count":  # observability.emit_count: a single_metric, {service} + keywords
            named = {keyword.arg for keyword in node.keywords if keyword.arg is not None}
            splat = len(named) < len(node.keywords)  # `**dimensions`: not known here
            self._add(node, None if splat else frozenset({frozenset({"service"} | named)}))
        self.generic_visit(node)

    def _single_metric_dimensions(
        self, call: ast.Call, target: ast.expr | None, body: list[ast.stmt]
    ) -> frozenset[frozenset[str]] | None:
        keys = _dict_keys(_argument(call, "default_dimensions", 99))
        if keys is None:
            return None
        added: set[str] = set()
        if isinstance(target, ast.Name):
            for inner in (n for statement in body for n in ast.walk(statement) if isinstance(n, ast.Call)):
                receiver = inner.func.value if isinstance(inner.func, ast.Attribute) else None
                if _call_name(inner) == "add_dimension" and isinstance(receiver, ast.Name) and receiver.id == target.id:
                    name = _literal(_argument(inner, "name", 0))
                    if name is None:
                        return None
                    added.add(name)
        return frozenset({keys | added | {"service"}})

    def _add(self, call: ast.Call, dimension_sets: frozenset[frozenset[str]] | None) -> None:
        where = f"{self.where}:{call.lineno}"
        for name in self._names(_argument(call, "name", 0)):
            self.emissions.append(Emission(name, dimension_sets, where))

    def _names(self, node: ast.expr | None) -> list[str]:
        literal = _literal(node)
        if literal is not None:
            return [literal]
        if isinstance(node, ast.Name) and node.id in self.constants:
            return [self.constants[node.id]]
        scope = self._scopes[-1] if self._scopes else None
        return [s for s in _string_constants(scope) if _CAMEL_CASE.fullmatch(s)] if scope is not None else []


def _module_constants(tree: ast.Module) -> dict[str, str]:
    return {
        target.id: statement.value.value
        for statement in tree.body
        if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant)
        if isinstance(statement.value.value, str)
        for target in statement.targets
        if isinstance(target, ast.Name)
    }


def scan_module(
    source: str, where: str, *, handler: bool, handler_dimensions: Iterable[frozenset[str] | None]
) -> list[Emission]:
    """The metrics one module emits. `handler_dimensions`: each handler module's `module_dimensions`."""
    tree = ast.parse(source)
    own = module_dimensions(tree)
    shared: frozenset[frozenset[str]] | None
    handler_sets = list(handler_dimensions) if not handler else [frozenset()]
    if own is None or any(h is None for h in handler_sets):
        shared = None
    else:
        shared = frozenset(frozenset({"service"} | own | (h or frozenset())) for h in handler_sets)
    scanner = _Scanner(where, shared, _module_constants(tree))
    scanner.visit(tree)
    return scanner.emissions


def _python_files() -> Iterator[Path]:
    for root in SOURCE_ROOTS:
        yield from sorted(root.rglob("*.py"))


#: Layer packages only one function imports (`test_only_its_function_imports_each_edge_package` holds it): their
#: metrics carry that handler's dimensions, not any handler's.
EDGE_PACKAGES: dict[str, str] = {"globesms.api": "send_api", "globesms.callbacks": "receipts"}
LAYER_PACKAGE_ROOT = ROOT / "layers" / "globesms"


def _edge_function(path: Path) -> str | None:
    if not path.is_relative_to(LAYER_PACKAGE_ROOT):
        return None
    module = ".".join(path.relative_to(LAYER_PACKAGE_ROOT).with_suffix("").parts)
    return next((f for package, f in EDGE_PACKAGES.items() if module.startswith(package + ".")), None)


def scan_sources() -> dict[str, list[Emission]]:
    """Every metric the code under layers/ and functions/ emits, by name."""
    files = list(_python_files())
    handlers = [p for p in files if p.is_relative_to(HANDLER_ROOT)]
    handler_dimensions = {p.parent.name: module_dimensions(ast.parse(p.read_text())) for p in handlers}
    emitted: dict[str, list[Emission]] = {}
    for path in files:
        edge = _edge_function(path)
        for emission in scan_module(
            path.read_text(),
            str(path.relative_to(ROOT)),
            handler=path in handlers,
            handler_dimensions=[handler_dimensions[edge]] if edge else handler_dimensions.values(),
        ):
            emitted.setdefault(emission.name, []).append(emission)
    return emitted


@pytest.fixture(scope="module")
def emitted() -> dict[str, list[Emission]]:
    return scan_sources()


def test_the_scan_reads_each_way_the_code_emits_a_metric() -> None:
    handler = """
metrics.set_default_dimensions(provider="aliyun")
NAME = "ConstantNamed"

def handle(result):
    metrics.add_metric(name="Plain", unit="Count", value=1)
    metrics.add_metric(name=NAME, unit="Count", value=1)
    for metric, value in (("LoopedOne", 1), ("LoopedTwo", 2)):
        metrics.add_metric(name=metric, unit="Count", value=value)
    with single_metric(name="Single", unit="Count", value=1, default_dimensions={"provider": "p"}) as one:
        one.add_dimension(name="category", value="config")
    emit_count("Counted", 1, country="SG")
"""
    layer = 'def emit(n):\n    metrics.add_metric(name="FromTheLayer", unit="Count", value=n)\n'
    handler_dimensions = [frozenset({"provider"}), frozenset()]

    found = {e.name: e.dimension_sets for e in scan_module(handler, "h", handler=True, handler_dimensions=[])}
    from_layer = scan_module(layer, "l", handler=False, handler_dimensions=handler_dimensions)

    with_provider = frozenset({frozenset({"service", "provider"})})
    assert found == {
        "Plain": with_provider,
        "ConstantNamed": with_provider,
        "LoopedOne": with_provider,
        "LoopedTwo": with_provider,
        "Single": frozenset({frozenset({"service", "provider", "category"})}),  # not on the shared metrics
        "Counted": frozenset({frozenset({"service", "country"})}),  # observability.emit_count
    }
    assert [(e.name, e.dimension_sets) for e in from_layer] == [
        ("FromTheLayer", frozenset({frozenset({"service", "provider"}), frozenset({"service"})}))
    ]


def test_the_scan_finds_the_metrics_of_every_handler(emitted: dict[str, list[Emission]]) -> None:
    # One per handler, with the dimensions it is known to carry: the scan is not looking at nothing.
    assert dimension_sets(emitted, "RecipientsSubmitted") == {frozenset({"service", "provider"})}  # dispatch
    assert dimension_sets(emitted, "RecipientsAccepted") == {frozenset({"service", "provider"})}  # single_metric
    assert dimension_sets(emitted, "RequestsRefused") == {frozenset({"service"})}  # send_api
    assert dimension_sets(emitted, "IntakeBodiesRefused") == {frozenset({"service"})}  # intake
    assert dimension_sets(emitted, "ReceiptsUnmatched") == {frozenset({"service"})}  # receipts, a loop over names
    assert dimension_sets(emitted, "WebhooksDelivered") == {frozenset({"service"})}  # webhooks


def _imported_modules(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update({node.module, *(f"{node.module}.{alias.name}" for alias in node.names)})
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)  # a name given to importlib.import_module
    return found


def test_only_its_function_imports_each_edge_package() -> None:
    for package, function in EDGE_PACKAGES.items():
        importers = {
            str(path.relative_to(ROOT))
            for path in _python_files()
            if _edge_function(path) != function
            and any(m == package or m.startswith(package + ".") for m in _imported_modules(ast.parse(path.read_text())))
        }
        assert importers == {f"functions/{function}/app.py"}, package


def dimension_sets(emitted: dict[str, list[Emission]], name: str) -> set[frozenset[str]] | None:
    sets: set[frozenset[str]] = set()
    for emission in emitted.get(name, []):
        if emission.dimension_sets is None:
            return None
        sets |= emission.dimension_sets
    return sets


# ---------------------------------------------------------------- the template, references made readable


@dataclass
class _SymbolicContext(ResolveContext):
    """Parameters resolve to their defaults; a resource's `Ref` to `REF(<id>)` and `GetAtt` to `GETATT(<id>.<attr>)`,
    so a reference to a resource the template does not have raises UnresolvableReference."""

    resource_ids: frozenset[str] = frozenset()

    def ref(self, name: str) -> Any:
        return f"REF({name})" if name in self.resource_ids else super().ref(name)

    def attribute(self, logical_id: str, name: str) -> str:
        if logical_id not in self.resource_ids:
            raise UnresolvableReference(f"no resource {logical_id} for !GetAtt {logical_id}.{name}")
        return f"GETATT({logical_id}.{name})"


@dataclass(frozen=True)
class MetricUse:
    where: str  # the alarm's or the dashboard widget's name
    namespace: str
    name: str
    dimensions: dict[str, str]  # resolved values; a SEARCH names the keys only (values "*")


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return load_raw_template(TEMPLATE_PATH)


@pytest.fixture(scope="module")
def context(raw: dict[str, Any]) -> _SymbolicContext:
    symbolic = _SymbolicContext(
        parameters={name: spec.get("Default") for name, spec in raw["Parameters"].items()},
        region="us-east-1",
        account_id="123456789012",
        stack_name="globesms-test",
        resource_ids=frozenset(raw["Resources"]),
    )
    evaluate_conditions(raw, symbolic)
    return symbolic


def of_type(raw: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {lid: r.get("Properties", {}) for lid, r in raw["Resources"].items() if r["Type"] == resource_type}


@pytest.fixture(scope="module")
def alarms(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = of_type(raw, ALARM_TYPE)
    assert found
    return found


@pytest.fixture(scope="module")
def resolved_alarms(alarms: dict[str, dict[str, Any]], context: _SymbolicContext) -> dict[str, dict[str, Any]]:
    resolved: dict[str, dict[str, Any]] = {}
    for lid, properties in alarms.items():
        try:
            resolved[lid] = resolve(properties, context)
        except UnresolvableReference as exc:
            pytest.fail(f"{lid} references what the template does not have: {exc}")
    return resolved


def alarm_metrics(alarm_id: str, properties: dict[str, Any]) -> list[MetricUse]:
    """The metrics an alarm (resolved) reads: its own, or those of its metric math."""
    if "MetricName" in properties:
        stats = [properties]
    else:
        stats = [q["MetricStat"]["Metric"] for q in properties["Metrics"] if "MetricStat" in q]
    return [
        MetricUse(
            alarm_id, s["Namespace"], s["MetricName"], {d["Name"]: str(d["Value"]) for d in s.get("Dimensions", [])}
        )
        for s in stats
    ]


@pytest.fixture(scope="module")
def dashboard(raw: dict[str, Any], context: _SymbolicContext) -> dict[str, Any]:
    (properties,) = of_type(raw, "AWS::CloudWatch::Dashboard").values()
    try:
        text = resolve(properties["DashboardBody"], context)
    except UnresolvableReference as exc:
        pytest.fail(f"the dashboard references what the template does not have: {exc}")
    body: dict[str, Any] = json.loads(text)
    return body


_SEARCH = re.compile(r"SEARCH\(\s*'\{([^}]*)\}\s*MetricName=\"(\w+)\"")


def dashboard_metrics(body: dict[str, Any]) -> list[MetricUse]:
    uses: list[MetricUse] = []
    for widget in body["widgets"]:
        where = widget["properties"].get("title", widget["type"])
        previous: list[Any] = []
        for row in widget["properties"].get("metrics", []):
            if isinstance(row, dict):  # an expression; a SEARCH names a schema: namespace, then dimension keys
                for schema, name in _SEARCH.findall(row["expression"]):
                    namespace, *keys = [part.strip() for part in schema.split(",")]
                    uses.append(MetricUse(where, namespace, name, dict.fromkeys(keys, "*")))
                continue
            fields = [f for f in row if not isinstance(f, dict)]
            fields = [previous[i] if f == "." and i < len(previous) else f for i, f in enumerate(fields)]
            previous = fields
            namespace, name, *pairs = fields
            uses.append(MetricUse(where, namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return uses


@pytest.fixture(scope="module")
def metric_uses(resolved_alarms: dict[str, dict[str, Any]], dashboard: dict[str, Any]) -> list[MetricUse]:
    uses = [use for lid, properties in resolved_alarms.items() for use in alarm_metrics(lid, properties)]
    return uses + dashboard_metrics(dashboard)


def dead_letter_queue_ids(raw: dict[str, Any]) -> set[str]:
    return {
        p["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for p in of_type(raw, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in p
    }


def dispatch_queue_ids(raw: dict[str, Any]) -> set[str]:
    """The provider queues: those the dispatch functions (the ones with GLOBESMS_PROVIDER) consume."""
    return {
        event["Properties"]["Queue"]["Fn::GetAtt"][0]
        for properties in of_type(raw, "AWS::Serverless::Function").values()
        if "GLOBESMS_PROVIDER" in properties.get("Environment", {}).get("Variables", {})
        for event in properties["Events"].values()
        if event["Type"] == "SQS"
    }


def providers(raw: dict[str, Any]) -> set[str]:
    return {
        properties["Environment"]["Variables"]["GLOBESMS_PROVIDER"]
        for properties in of_type(raw, "AWS::Serverless::Function").values()
        if "GLOBESMS_PROVIDER" in properties.get("Environment", {}).get("Variables", {})
    }


def alarms_on(
    resolved_alarms: dict[str, dict[str, Any]], namespace: str, name: str, dimensions: dict[str, str]
) -> list[str]:
    return [
        lid
        for lid, properties in resolved_alarms.items()
        if any(
            (use.namespace, use.name, use.dimensions) == (namespace, name, dimensions)
            for use in alarm_metrics(lid, properties)
        )
    ]


# ---------------------------------------------------------------- coverage


def test_every_dead_letter_queue_has_an_alarm_on_its_depth(
    raw: dict[str, Any], resolved_alarms: dict[str, dict[str, Any]]
) -> None:
    assert dead_letter_queue_ids(raw)
    for queue_id in dead_letter_queue_ids(raw):
        found = alarms_on(
            resolved_alarms,
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            {"QueueName": f"GETATT({queue_id}.QueueName)"},
        )
        assert found, f"no alarm on the depth of {queue_id}"
        for lid in found:  # not empty: more than 0
            assert (resolved_alarms[lid]["ComparisonOperator"], resolved_alarms[lid]["Threshold"]) == (
                "GreaterThanThreshold",
                0,
            ), lid


def test_the_intake_release_and_provider_queues_have_an_alarm_on_their_oldest_message(
    raw: dict[str, Any], alarms: dict[str, dict[str, Any]], resolved_alarms: dict[str, dict[str, Any]]
) -> None:
    # The release queue too: a release SQS deleted after 4 days left its messages SCHEDULED for good (a review).
    queues = dispatch_queue_ids(raw) | {"IntakeQueue", "ReleaseQueue"}
    assert len(queues) == len(providers(raw)) + 2
    for queue_id in queues:
        found = alarms_on(
            resolved_alarms, "AWS/SQS", "ApproximateAgeOfOldestMessage", {"QueueName": f"GETATT({queue_id}.QueueName)"}
        )
        assert found, f"no alarm on the oldest message of {queue_id}"
        for lid in found:
            assert alarms[lid]["Threshold"] == {"Ref": "QueueAgeAlarmSeconds"}, lid


def test_every_function_has_an_alarm_on_its_errors_and_on_its_throttles(
    raw: dict[str, Any], resolved_alarms: dict[str, dict[str, Any]]
) -> None:
    for function_id in of_type(raw, "AWS::Serverless::Function"):
        for metric in ("Errors", "Throttles"):
            assert alarms_on(resolved_alarms, "AWS/Lambda", metric, {"FunctionName": f"REF({function_id})"}), (
                f"no alarm on the {metric} of {function_id}"
            )


def test_every_provider_has_its_breaker_error_rate_unknown_outcome_delivery_rate_and_receipts_stopped_alarms(
    raw: dict[str, Any], resolved_alarms: dict[str, dict[str, Any]]
) -> None:
    alarmed = {ErrorCategory.CONFIG, ErrorCategory.REQUEST, ErrorCategory.THROTTLED, ErrorCategory.RETRYABLE}
    alarmed |= {ErrorCategory.RECIPIENT}  # unknown_outcome has its own alarm, on RecipientsUnknownOutcome
    for provider in providers(raw):
        dimensions = {"service": "globesms", "provider": provider}
        for name in ("CircuitBreakerOpened", "RecipientsUnknownOutcome", "RecipientsDelivered", "ReceiptsPushed"):
            assert alarms_on(resolved_alarms, CUSTOM_NAMESPACE, name, dimensions), (provider, name)
        for category in alarmed:
            errors = {**dimensions, "category": category.value}
            assert alarms_on(resolved_alarms, CUSTOM_NAMESPACE, "ProviderErrors", errors), (provider, category)


# ---------------------------------------------------------------- every alarm


def test_every_alarm_is_named_after_the_stack_described_and_notifies_the_topic(
    raw: dict[str, Any], alarms: dict[str, dict[str, Any]], resolved_alarms: dict[str, dict[str, Any]]
) -> None:
    assert raw["Resources"][TOPIC_ID]["Type"] == "AWS::SNS::Topic"
    for lid, properties in alarms.items():
        assert properties["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), lid
        description = properties["AlarmDescription"]
        assert isinstance(description, str) and 80 <= len(description) <= 1024, lid  # says what and what to do
        assert "Do:" in description, f"{lid}: say what the operator should do"
        assert properties["AlarmActions"] == [{"Ref": TOPIC_ID}], lid
        assert properties["OKActions"] == [{"Ref": TOPIC_ID}], lid
    names = [p["AlarmName"] for p in resolved_alarms.values()]
    assert len(names) == len(set(names))


def test_custom_metric_alarms_treat_missing_data_as_not_breaching(
    resolved_alarms: dict[str, dict[str, Any]],
) -> None:
    # Custom counts are emitted only when something happens (and SQS queues go quiet): no data means nothing wrong.
    for lid, properties in resolved_alarms.items():
        assert properties["TreatMissingData"] == "notBreaching", lid


def test_metric_math_returns_one_series_from_ids_it_defines(alarms: dict[str, dict[str, Any]]) -> None:
    for lid, properties in alarms.items():
        if "Metrics" not in properties:
            continue
        queries = properties["Metrics"]
        assert len(queries) <= 10, lid  # CloudWatch's limit of queries in one alarm
        assert sum(q.get("ReturnData", True) for q in queries) == 1, lid
        ids = {q["Id"] for q in queries}
        for query in queries:
            if "Expression" in query:
                assert expression_ids(query["Expression"]) <= ids, (lid, query["Expression"])


def expression_ids(expression: str) -> set[str]:
    """The ids an expression reads (functions are upper case; quoted text is a SEARCH's, not ids)."""
    return set(re.findall(r"\b[a-z][A-Za-z0-9_]*\b", re.sub(r"'[^']*'|\"[^\"]*\"", "", expression)))


def test_the_email_subscription_exists_only_when_an_address_is_given(raw: dict[str, Any]) -> None:
    assert raw["Parameters"]["AlarmEmail"]["Default"] == ""
    subscriptions = {lid: r for lid, r in raw["Resources"].items() if r["Type"] == "AWS::SNS::Subscription"}
    assert subscriptions
    for lid, resource in subscriptions.items():
        properties = resource["Properties"]
        assert (properties["TopicArn"], properties["Protocol"], properties["Endpoint"]) == (
            {"Ref": TOPIC_ID},
            "email",
            {"Ref": "AlarmEmail"},
        ), lid
        assert raw["Conditions"][resource["Condition"]] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}


# ---------------------------------------------------------------- metrics against the code and the template


def test_globesms_metrics_are_emitted_by_the_code(
    metric_uses: list[MetricUse], emitted: dict[str, list[Emission]]
) -> None:
    unknown = {
        (use.where, use.name)
        for use in metric_uses
        if use.namespace == CUSTOM_NAMESPACE and use.name not in emitted and use.name not in PENDING_METRICS
    }
    assert not unknown, f"metrics no code under layers/ or functions/ emits (misspelt?): {sorted(unknown)}"


def test_globesms_metrics_have_the_dimension_set_the_code_emits(
    raw: dict[str, Any], metric_uses: list[MetricUse], emitted: dict[str, list[Emission]]
) -> None:
    variables = raw["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == CUSTOM_NAMESPACE
    service = variables["POWERTOOLS_SERVICE_NAME"]  # the `service` dimension of every metric
    allowed_values = {
        "service": {service, "*"},
        "provider": providers(raw) | {"*"},
        "category": {c.value for c in ErrorCategory} | {"*"},
    }
    for use in (u for u in metric_uses if u.namespace == CUSTOM_NAMESPACE):
        for key, value in use.dimensions.items():
            # Low cardinality: only these dimensions, only these values (never a number or an id).
            assert value in allowed_values.get(key, set()), (use.where, use.name, key, value)
        if use.name in PENDING_METRICS or use.name not in emitted:
            continue  # pending, or misspelt (test_globesms_metrics_are_emitted_by_the_code)
        possible = dimension_sets(emitted, use.name)
        if possible is None:
            continue  # the source does not say (see the module docstring)
        assert frozenset(use.dimensions) in possible, (
            f"{use.where}: {use.name} with {sorted(use.dimensions)}; the code emits it with "
            f"{sorted(sorted(s) for s in possible)} ({', '.join(e.where for e in emitted[use.name])})"
        )


def test_pending_metrics_are_not_emitted_yet(emitted: dict[str, list[Emission]]) -> None:
    now_emitted = {name: [e.where for e in emitted[name]] for name in PENDING_METRICS if name in emitted}
    assert not now_emitted, f"emitted now: take them out of PENDING_METRICS: {now_emitted}"


def test_pending_metrics_are_used(metric_uses: list[MetricUse]) -> None:
    used = {use.name for use in metric_uses if use.namespace == CUSTOM_NAMESPACE}
    assert used >= PENDING_METRICS, f"not used by any alarm or the dashboard: {sorted(PENDING_METRICS - used)}"


def test_aws_metrics_name_resources_of_the_template(
    raw: dict[str, Any], context: _SymbolicContext, metric_uses: list[MetricUse]
) -> None:
    queues = {f"GETATT({lid}.QueueName)" for lid in of_type(raw, "AWS::SQS::Queue")}
    functions = {f"REF({lid})" for lid in of_type(raw, "AWS::Serverless::Function")}
    tables = {f"REF({lid})" for lid in of_type(raw, "AWS::DynamoDB::Table")}
    apis = {
        (resolve(p["Name"], context), resolve(p["StageName"], context))
        for p in of_type(raw, "AWS::Serverless::Api").values()
    }
    for use in (u for u in metric_uses if u.namespace != CUSTOM_NAMESPACE):
        if use.namespace == "AWS/SQS":
            assert set(use.dimensions) == {"QueueName"} and use.dimensions["QueueName"] in queues, use
        elif use.namespace == "AWS/Lambda":
            assert set(use.dimensions) == {"FunctionName"} and use.dimensions["FunctionName"] in functions, use
        elif use.namespace == "AWS/DynamoDB":
            assert set(use.dimensions) == {"TableName"} and use.dimensions["TableName"] in tables, use
        elif use.namespace == "AWS/ApiGateway":
            assert set(use.dimensions) == {"ApiName", "Stage"}, use
            assert (use.dimensions["ApiName"], use.dimensions["Stage"]) in apis, use
        else:
            pytest.fail(f"{use.where}: {use.namespace} is not checked here: add how its dimensions name a resource")


# ---------------------------------------------------------------- the dashboard


def test_the_dashboard_shows_every_queue_dead_letter_queue_and_function(
    raw: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    shown = {(u.name, value) for u in dashboard_metrics(dashboard) for value in u.dimensions.values()}
    for lid in of_type(raw, "AWS::SQS::Queue"):
        assert ("ApproximateNumberOfMessagesVisible", f"GETATT({lid}.QueueName)") in shown, lid
    for lid in of_type(raw, "AWS::SQS::Queue").keys() - dead_letter_queue_ids(raw):
        assert ("ApproximateAgeOfOldestMessage", f"GETATT({lid}.QueueName)") in shown, lid
    for lid in of_type(raw, "AWS::Serverless::Function"):
        assert {("Duration", f"REF({lid})"), ("Errors", f"REF({lid})")} <= shown, lid


def test_the_runbook_counts_the_dead_letter_queues_the_dashboard_shows(raw: dict[str, Any]) -> None:
    """docs/operations.md said "the five dead-letter queues" after the release queue made six (a reviewer's
    finding)."""
    row = next(
        line for line in (ROOT / "docs" / "operations.md").read_text().splitlines() if line.startswith("| queues")
    )
    number = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    assert f"the {number[len(dead_letter_queue_ids(raw))]} dead-letter queues" in row


def test_dashboard_expressions_read_ids_of_their_widget(dashboard: dict[str, Any]) -> None:
    for widget in dashboard["widgets"]:
        rows = widget["properties"].get("metrics", [])
        ids = {r["id"] for r in rows if isinstance(r, dict)} | {
            r[-1]["id"] for r in rows if isinstance(r, list) and isinstance(r[-1], dict) and "id" in r[-1]
        }
        for row in rows:
            if isinstance(row, dict):
                assert expression_ids(row["expression"]) <= ids, (widget["properties"]["title"], row)


def test_every_queue_a_runbook_redrives_is_an_output_redrive_finds_on_a_deployed_stack() -> None:
    """On a stack CloudFormation knows, `make redrive QUEUE=<logical id>` finds the queue through the stack's
    outputs only (`tools.redrive.resolve_queue`): a runbook naming a queue without an `<id>Url` output fails."""
    raw = load_raw_template()
    texts = [json.dumps(raw), *(path.read_text() for path in (ROOT / "docs").glob("*.md"))]
    named = {name for text in texts for name in re.findall(r"QUEUE=([A-Za-z]+)", text)}
    assert "ReleaseDeadLetterQueue" in named  # the scan reads the alarms' runbooks
    outputs = {key: f"https://sqs.example/{key}" for key in raw["Outputs"]}

    class DeployedStack:
        def describe_stacks(self, StackName: str) -> dict[str, Any]:
            return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]}]}

    for name in sorted(named):
        assert (
            redrive.resolve_queue(name, stack="globesms-prod", sqs=None, cloudformation=DeployedStack())
            == (outputs[f"{name}Url"])
        ), name


#: CloudWatch's list price of an alarm, per metric it reads, a month (standard resolution, us-east-1).
ALARM_METRIC_MONTHLY_USD = 0.10


def test_operations_md_counts_the_alarms_and_what_they_cost_as_the_template_has_them(
    alarms: dict[str, dict[str, Any]], resolved_alarms: dict[str, dict[str, Any]]
) -> None:
    """docs/operations.md said 64 alarms reading 96 metrics while the template had 67 reading 99: its numbers are
    read here, not kept by hand."""
    text = " ".join((ROOT / "docs" / "operations.md").read_text().split())
    counted = re.search(r"- (\d+) CloudWatch alarms named", text)
    cost = re.search(r"the alarms read (\d+) metrics .*?, about US\$(\d+\.\d\d) a month", text)
    assert counted and cost, "docs/operations.md no longer states the alarms' count and cost as this test reads them"
    metrics = sum(len(alarm_metrics(lid, properties)) for lid, properties in resolved_alarms.items())
    assert int(counted[1]) == len(alarms)
    assert int(cost[1]) == metrics
    assert cost[2] == f"{metrics * ALARM_METRIC_MONTHLY_USD:.2f}"
