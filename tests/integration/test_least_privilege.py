"""Least privilege, on what CloudFormation receives: template.yaml translated by the SAM translator.

SAM's generated function roles attach managed policies on "*" (AWSLambdaBasicExecutionRole, AWSXrayWriteOnlyAccess,
AWSLambdaSQSQueueExecutionRole); every function therefore has its own explicit role. These tests hold the translated
template to that: no managed policies, no "*" resource but X-Ray's, SQS consumers reading their own queue only, each
function logging to its own log group only, and exactly the actions each function's code uses.

The translator (aws-sam-translator) comes with the SAM CLI in .venv-sam, not with the test environment: the
translation runs in whichever interpreter has it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"

# Packaged templates point CodeUri/ContentUri at S3; the translator wants that form, the code itself is not read.
_TRANSLATE = r"""
import json, re, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

text = re.sub(r"(CodeUri|ContentUri): \S+", r"\1: s3://bucket/key", open(sys.argv[1]).read())

class NoManagedPolicies:  # asked only for managed policy names in Policies: there must be none
    def load(self):
        return {}

translated = transform(yaml_parse(text), {}, NoManagedPolicies())
json.dump({"template": yaml_parse(text), "translated": translated}, sys.stdout)
"""

XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}  # no resource-level permissions: "*" only
CONSUMER_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility")
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}

# What each function's code calls (functions/*/app.py, layers/globesms/globesms/aws/*.py), besides logs and X-Ray.
# A new permission is a change here as well as in the template.
TABLE = {"Fn::GetAtt": ["MessagesTable", "Arn"]}
IDEMPOTENCY_TABLE = {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}
# Powertools idempotency (globesms/idempotency.py): PutItem claims a key, GetItem reads a claim, UpdateItem stores the
# answer, DeleteItem releases the key after a refusal. Only the functions that accept take Idempotency-Key.
IDEMPOTENCY_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
EXPECTED_IDEMPOTENCY_ACTIONS = {"SendApiFunction": IDEMPOTENCY_ACTIONS, "IntakeFunction": IDEMPOTENCY_ACTIONS}
EXPECTED_ACTIONS = {
    "SendApiFunction": {
        "dynamodb:PutItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",  # idempotency table, the spend counters (guardrails), a cancel's conditional claim
        "dynamodb:DeleteItem",  # idempotency and template tables only
        "sqs:SendMessage",
    },
    "IntakeFunction": {
        "dynamodb:PutItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",  # the opt-out list (consent table) and the spend counters (guardrails)
        "dynamodb:Query",
        "dynamodb:UpdateItem",  # idempotency table, and the spend counters (guardrails)
        "dynamodb:DeleteItem",  # idempotency table only
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    },
    **{
        f"{provider}DispatchFunction": {
            "dynamodb:Query",  # template table only (a failover renders a registered template again)
            "dynamodb:BatchWriteItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:DeleteItem",  # a redrive's spend charged again: its release marker taken back (a transaction)
            "secretsmanager:GetSecretValue",
            "sqs:SendMessage",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
        }
        for provider in ("Aliyun", "Tencent", "Huawei")
    },
    "ReceiptsFunction": {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",  # a push's messages, read together
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",  # consent table (replies, reply keywords); a resend after UNDELIVERED (TransactWriteItems)
        "dynamodb:DeleteItem",  # consent table only (an opt-in keyword)
        "dynamodb:ConditionCheckItem",  # consent table only (a keyword that leaves the list as it is)
        "secretsmanager:GetSecretValue",
        "sqs:SendMessage",  # status events; a resend on the next provider's queue
    },
    "WebhookSenderFunction": {
        "secretsmanager:GetSecretValue",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility",
    },
    # reconcile/: deadline entries (Query, Put), the records they list (BatchGet, Get, Update), the watermark,
    # rate-limit permits, the status queries' credentials (Alibaba, Tencent), status events.
    "ReconcileFunction": {
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "secretsmanager:GetSecretValue",
        "sqs:SendMessage",
    },
    "StatusCountsFunction": {
        "dynamodb:PutItem",  # once-only markers (TransactWriteItems)
        "dynamodb:UpdateItem",  # counts items (TransactWriteItems)
        "dynamodb:GetItem",  # a marker met by a retried stream batch
        "dynamodb:DescribeStream",  # the event source reads the table's stream
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        "sqs:SendMessage",  # the event source's on-failure destination
    },
    # Held packs and index buckets (Query), the sweep's cursor (GetItem/UpdateItem), release claims (UpdateItem).
    "SchedulerFunction": {
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    },
}


# RoutesParameterName (the route table override in SSM): only when it is set do the functions that accept get
# ssm:GetParameter, on that one parameter (a statement under the HasRoutesParameter condition).
ROUTES_PARAMETER_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/${RoutesParameterName}"
}
# The run-time template registry (routing/templates.py, aws/dynamodb_templates.py): the API reads, stores and removes
# templates (the first change seeds the shipped ones with PutItems in one transaction); every other function that
# sends reads it, and nothing else touches it.
TEMPLATES_TABLE = {"Fn::GetAtt": ["TemplatesTable", "Arn"]}
EXPECTED_TEMPLATE_ACTIONS = {
    "SendApiFunction": {"dynamodb:Query", "dynamodb:PutItem", "dynamodb:DeleteItem"},
    "IntakeFunction": {"dynamodb:Query"},
    **{f"{provider}DispatchFunction": {"dynamodb:Query"} for provider in ("Aliyun", "Tencent", "Huawei")},
    "ReceiptsFunction": {"dynamodb:Query"},  # a resend after an UNDELIVERED receipt, rendered for the next provider
}

# The route statistics (stats/, aws/dynamodb_route_stats.py): receipts, reconcile and the dispatchers (receipts held
# until their SUBMITTED write) add to counters; the accepting functions read a country's recent buckets (scored
# routes, GET /v1/stats/routes); nothing else touches it.
ROUTE_STATS_TABLE = {"Fn::GetAtt": ["RouteStatsTable", "Arn"]}
EXPECTED_ROUTE_STATS_ACTIONS = {
    "SendApiFunction": {"dynamodb:Query"},
    "IntakeFunction": {"dynamodb:Query"},
    "ReceiptsFunction": {"dynamodb:UpdateItem"},
    "ReconcileFunction": {"dynamodb:UpdateItem"},
    **{f"{provider}DispatchFunction": {"dynamodb:UpdateItem"} for provider in ("Aliyun", "Tencent", "Huawei")},
}

# The consent table (consent/, aws/dynamodb_consent.py): accept reads a request's numbers on the opt-out list; the
# API's /v1/opt-outs reads, adds and removes entries.
CONSENT_TABLE = {"Fn::GetAtt": ["ConsentTable", "Arn"]}
EXPECTED_CONSENT_ACTIONS = {
    "SendApiFunction": {
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
    },
    "IntakeFunction": {"dynamodb:BatchGetItem"},
    # a pack's numbers read again before it is sent (a number listed after accept)
    **{f"{provider}DispatchFunction": {"dynamodb:BatchGetItem"} for provider in ("Aliyun", "Tencent", "Huawei")},
    "ReceiptsFunction": {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",  # a reply keyword's transaction (aws/dynamodb_consent.py)
    },
}

EXPECTED_WITH_ROUTES_PARAMETER = {"SendApiFunction": {"ssm:GetParameter"}, "IntakeFunction": {"ssm:GetParameter"}}


def _translator_python() -> str:
    # aws-sam-translator is a dev dependency (pyproject.toml): never skip, a missing translator is a failure.
    return sys.executable


@pytest.fixture(scope="module")
def translation() -> dict[str, Any]:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [_translator_python(), "-c", _TRANSLATE, str(TEMPLATE)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    translation: dict[str, Any] = json.loads(result.stdout)
    return translation


@pytest.fixture(scope="module")
def source(translation: dict[str, Any]) -> dict[str, Any]:
    """template.yaml's resources as written."""
    resources: dict[str, Any] = translation["template"]["Resources"]
    return resources


@pytest.fixture(scope="module")
def resources(translation: dict[str, Any]) -> dict[str, Any]:
    """The resources CloudFormation deploys."""
    translated: dict[str, Any] = translation["translated"]["Resources"]
    return translated


def of_type(resources: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {lid: r.get("Properties", {}) for lid, r in resources.items() if r["Type"] == resource_type}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def actions(statement: dict[str, Any]) -> set[str]:
    return set(as_list(statement["Action"]))


def grants(statement: dict[str, Any], action: str) -> bool:
    """Whether the statement's actions (wildcards included) cover `action`."""
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in actions(statement))


def get_att_arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def role_of(resources: dict[str, Any], function_id: str) -> str:
    role = resources[function_id]["Properties"]["Role"]
    assert isinstance(role, dict) and set(role) == {"Fn::GetAtt"}, f"{function_id}: Role is {role!r}"
    logical_id, attribute = role["Fn::GetAtt"]
    assert attribute == "Arn" and resources[logical_id]["Type"] == "AWS::IAM::Role", function_id
    return str(logical_id)


def with_conditions(value: Any, conditions: dict[str, bool]) -> Any:
    """`value` as CloudFormation sees it when the conditions have these values: each Fn::If replaced by the branch
    taken, AWS::NoValue dropped."""
    if isinstance(value, list):
        resolved = [with_conditions(v, conditions) for v in value]
        return [v for v in resolved if v != {"Ref": "AWS::NoValue"}]
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, if_true, if_false = value["Fn::If"]
            return with_conditions(if_true if conditions[name] else if_false, conditions)
        return {k: with_conditions(v, conditions) for k, v in value.items()}
    return value


def statements_of(
    resources: dict[str, Any],
    role_id: str,
    *,
    routes_parameter: bool = False,
    huawei_push_signed: bool = False,
    guardrails_parameters: bool = False,
) -> list[dict[str, Any]]:
    """The role's inline policies and any policy resource attached to it, with the template's conditions resolved
    for the default parameters (RoutesParameterName and GuardrailsParametersPath empty, HuaweiReceiptAuth none) or
    for those set. A resource whose own `Condition` is false does not exist."""
    # DocsNeedApiKey only chooses the docs routes' security in the API's body, SnapStartOn only a function's
    # SnapStart setting, TracerSubsegmentsOn only a variable: no role depends on them.
    conditions = {
        "HasRoutesParameter": routes_parameter,
        "HasGuardrailsParameters": guardrails_parameters,
        "HuaweiPushSigned": huawei_push_signed,
        "DocsNeedApiKey": False,
        "SnapStartOn": False,
        "TracerSubsegmentsOn": False,
    }
    resources = {lid: r for lid, r in resources.items() if conditions.get(r.get("Condition", ""), True)}
    resources = with_conditions(resources, conditions)
    documents = [p["PolicyDocument"] for p in resources[role_id]["Properties"].get("Policies", [])]
    for properties in [
        *of_type(resources, "AWS::IAM::Policy").values(),
        *of_type(resources, "AWS::IAM::RolePolicy").values(),
        *of_type(resources, "AWS::IAM::ManagedPolicy").values(),
    ]:
        roles = [*as_list(properties.get("Roles", [])), properties.get("RoleName")]
        if {"Ref": role_id} in roles:
            documents.append(properties["PolicyDocument"])
    return [statement for document in documents for statement in as_list(document["Statement"])]


def function_ids(resources: dict[str, Any]) -> list[str]:
    ids = list(of_type(resources, "AWS::Lambda::Function"))
    assert ids
    return ids


def consumed_queues(source: dict[str, Any], function_id: str) -> list[dict[str, Any]]:
    """The queues of the function's SQS event sources, as the template names them (!GetAtt <Queue>.Arn)."""
    events = source[function_id]["Properties"].get("Events", {})
    return [event["Properties"]["Queue"] for event in events.values() if event["Type"] == "SQS"]


def consumed_streams(source: dict[str, Any], function_id: str) -> list[dict[str, Any]]:
    """The streams of the function's DynamoDB event sources (!GetAtt <Table>.StreamArn)."""
    events = source[function_id]["Properties"].get("Events", {})
    return [event["Properties"]["Stream"] for event in events.values() if event["Type"] == "DynamoDB"]


# ---------------------------------------------------------------- roles


def test_every_function_has_its_own_explicit_role(source: dict[str, Any], resources: dict[str, Any]) -> None:
    assert set(function_ids(resources)) == set(of_type(source, "AWS::Serverless::Function"))
    roles = {function_id: role_of(resources, function_id) for function_id in function_ids(resources)}
    assert len(set(roles.values())) == len(roles), roles  # no role shared by two functions
    for function_id, role_id in roles.items():
        assert role_id in source, f"{function_id} runs as a role SAM generated ({role_id})"
        trust = resources[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust == [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ], role_id
    assert set(of_type(resources, "AWS::IAM::Role")) == set(roles.values())  # no role left over either


def test_no_managed_policies(resources: dict[str, Any]) -> None:
    for role_id, properties in of_type(resources, "AWS::IAM::Role").items():
        assert not properties.get("ManagedPolicyArns"), role_id
    assert not of_type(resources, "AWS::IAM::ManagedPolicy")


def test_no_star_resources_but_x_ray(resources: dict[str, Any]) -> None:
    for role_id in of_type(resources, "AWS::IAM::Role"):
        for statement in statements_of(resources, role_id):
            assert statement["Effect"] == "Allow", (role_id, statement)
            assert "NotAction" not in statement and "NotResource" not in statement, (role_id, statement)
            if actions(statement) <= XRAY_ACTIONS:
                assert statement["Resource"] == "*", (role_id, statement)
                continue
            for resource in as_list(statement["Resource"]):
                text = resource if isinstance(resource, str) else json.dumps(resource)
                assert "*" not in text, (role_id, statement)  # neither "*" nor an ARN with a wildcard
            assert not any("*" in action for action in actions(statement)), (role_id, statement)


def test_each_function_has_exactly_the_actions_its_code_uses(resources: dict[str, Any]) -> None:
    assert set(function_ids(resources)) == set(EXPECTED_ACTIONS)
    for function_id in function_ids(resources):
        granted = set().union(*(actions(s) for s in statements_of(resources, role_of(resources, function_id))))
        assert granted - LOG_ACTIONS - XRAY_ACTIONS == EXPECTED_ACTIONS[function_id], function_id


GUARDRAILS_PARAMETER_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${GuardrailsParametersPath}/*"
}
DISPATCH_PARAMETER_ARNS = [
    {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${GuardrailsParametersPath}/"
        + name
    }
    for name in ("prices", "permissions")
]


def test_with_the_guardrails_parameters_the_accepting_functions_read_them_and_the_dispatchers_two_of_them(
    resources: dict[str, Any],
) -> None:
    """Accept reads prices, permissions and limits; a dispatcher prices a failover or a resend (guardrails/charges.py)
    and checks the country permissions again (dispatch/permissions.py), never the limits. No other function reads
    them."""
    readers: dict[str, Any] = {
        "SendApiFunction": GUARDRAILS_PARAMETER_ARN,
        "IntakeFunction": GUARDRAILS_PARAMETER_ARN,
        **{f"{provider}DispatchFunction": DISPATCH_PARAMETER_ARNS for provider in ("Aliyun", "Tencent", "Huawei")},
    }
    for function_id in function_ids(resources):
        role_id = role_of(resources, function_id)
        statements = statements_of(resources, role_id, guardrails_parameters=True)
        granted = set().union(*(actions(s) for s in statements))
        added = {"ssm:GetParameter"} if function_id in readers else set()
        assert granted - LOG_ACTIONS - XRAY_ACTIONS == EXPECTED_ACTIONS[function_id] | added, function_id
        ssm = [s for s in statements if any(a.startswith("ssm:") for a in actions(s))]
        if added:
            assert ssm == [{"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": readers[function_id]}]
        else:
            assert not ssm, function_id


def test_the_routes_parameter_condition_is_set_when_the_parameter_is_not_empty(translation: dict[str, Any]) -> None:
    """What with_conditions assumes: HasRoutesParameter is true exactly when RoutesParameterName is not empty, and
    RoutesParameterName is empty by default."""
    template = translation["translated"]
    assert template["Parameters"]["RoutesParameterName"]["Default"] == ""
    assert template["Conditions"]["HasRoutesParameter"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "RoutesParameterName"}, ""]}]
    }


def test_with_the_routes_parameter_the_accepting_functions_may_read_that_parameter_only(
    resources: dict[str, Any],
) -> None:
    for function_id in function_ids(resources):
        role_id = role_of(resources, function_id)
        granted = set().union(*(actions(s) for s in statements_of(resources, role_id, routes_parameter=True)))
        added = EXPECTED_WITH_ROUTES_PARAMETER.get(function_id, set())
        assert granted - LOG_ACTIONS - XRAY_ACTIONS == EXPECTED_ACTIONS[function_id] | added, function_id
        ssm = [
            s
            for s in statements_of(resources, role_id, routes_parameter=True)
            if any(a.startswith("ssm:") for a in actions(s))
        ]
        if added:
            assert ssm == [{"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": ROUTES_PARAMETER_ARN}]
        else:
            assert not ssm, function_id


def test_the_accepting_functions_are_told_the_routes_parameter(resources: dict[str, Any]) -> None:
    for function_id in function_ids(resources):
        variables = resources[function_id]["Properties"]["Environment"]["Variables"]
        if function_id in EXPECTED_WITH_ROUTES_PARAMETER:
            assert variables["GLOBESMS_ROUTES_PARAMETER"] == {"Ref": "RoutesParameterName"}, function_id
        else:
            assert "GLOBESMS_ROUTES_PARAMETER" not in variables, function_id


def test_dynamodb_actions_name_the_messages_table_its_index_or_the_idempotency_table(resources: dict[str, Any]) -> None:
    index = {"Fn::Sub": "${MessagesTable.Arn}/index/ProviderRef"}
    # A receipt's message by its provider id, or an early one's by its number (receipts).
    receipt_lookups = [index, {"Fn::Sub": "${MessagesTable.Arn}/index/Recipient"}]
    # GET /v1/messages?client_ref= / ?to= (the API only).
    lookups = [{"Fn::Sub": "${MessagesTable.Arn}/index/ClientRef"}, {"Fn::Sub": "${MessagesTable.Arn}/index/Recipient"}]
    open_accepts = {"Fn::Sub": "${MessagesTable.Arn}/index/OpenAccepts"}  # reconcile: interrupted accepts
    stream = {"Fn::GetAtt": ["MessagesTable", "StreamArn"]}  # the status counts' event source
    allowed = (
        [TABLE],
        [index],
        [open_accepts],
        [IDEMPOTENCY_TABLE],
        lookups,
        receipt_lookups,
        [TEMPLATES_TABLE],
        [CONSENT_TABLE],
        [stream],
        [ROUTE_STATS_TABLE],
    )
    for function_id in function_ids(resources):
        for statement in statements_of(resources, role_of(resources, function_id)):
            if any(action.startswith("dynamodb:") for action in actions(statement)):
                assert as_list(statement["Resource"]) in allowed, (function_id, statement)


def granted_on(resources: dict[str, Any], function_id: str, table: Any) -> set[str]:
    """Every action the function's role allows on `table` (a resource reference as the statements write it)."""
    statements = statements_of(resources, role_of(resources, function_id))
    return set().union(*(actions(s) for s in statements if table in as_list(s["Resource"])))


def test_the_route_stats_table_is_written_by_receipts_and_reconcile_and_read_by_the_accepting_functions(
    resources: dict[str, Any],
) -> None:
    for function_id in function_ids(resources):
        expected = EXPECTED_ROUTE_STATS_ACTIONS.get(function_id, set())
        assert granted_on(resources, function_id, ROUTE_STATS_TABLE) == expected, function_id


def test_the_idempotency_table_has_exactly_the_powertools_actions_of_the_accepting_functions(
    resources: dict[str, Any],
) -> None:
    for function_id in function_ids(resources):
        expected = EXPECTED_IDEMPOTENCY_ACTIONS.get(function_id, set())
        assert granted_on(resources, function_id, IDEMPOTENCY_TABLE) == expected, function_id


def test_the_template_table_is_written_by_the_api_and_read_by_the_functions_that_send(
    resources: dict[str, Any],
) -> None:
    for function_id in function_ids(resources):
        expected = EXPECTED_TEMPLATE_ACTIONS.get(function_id, set())
        assert granted_on(resources, function_id, TEMPLATES_TABLE) == expected, function_id


# What a dispatcher does on the messages table itself (not on its indexes or the other tables): its records, claims,
# held receipts, breakers, the spend's releases and charges in transactions, and (Query) a takeover's read of the
# failover charges a dead dispatcher made, which a review found denied: the union of every table's actions had Query
# (the template table's), so the check above passed.
DISPATCH_MESSAGES_TABLE_ACTIONS = {
    "dynamodb:BatchWriteItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
}


def test_a_dispatcher_may_do_on_the_messages_table_what_its_code_does_there(resources: dict[str, Any]) -> None:
    for provider in ("Aliyun", "Tencent", "Huawei"):
        function_id = f"{provider}DispatchFunction"
        assert granted_on(resources, function_id, TABLE) == DISPATCH_MESSAGES_TABLE_ACTIONS, function_id


# On the messages table, the API's one UpdateItem is a cancel's conditional claim (scheduling/cancel.py).
CANCEL_ACTIONS = {"SendApiFunction": {"dynamodb:UpdateItem"}}


def test_the_messages_table_gains_no_idempotency_actions(resources: dict[str, Any]) -> None:
    """UpdateItem/DeleteItem were added for the idempotency table: the messages table of the API and the intake
    still has only what accept, the queries and the cancel use (UpdateItem: the guardrails' spend counters, in their
    own policy, and a cancel's conditional claim; never DeleteItem)."""
    for function_id in EXPECTED_IDEMPOTENCY_ACTIONS:
        on_messages = set().union(
            *(
                actions(statement)
                for statement in statements_of(resources, role_of(resources, function_id))
                if TABLE in as_list(statement["Resource"])
            )
        )
        allowed = CANCEL_ACTIONS.get(function_id, set()) | guardrails_actions(resources)
        assert not (on_messages - allowed) & {"dynamodb:UpdateItem", "dynamodb:DeleteItem"}, function_id


def guardrails_actions(resources: dict[str, Any]) -> set[str]:
    """What the GuardrailsPolicy grants on the messages table (the spend reservation's transaction and reads)."""
    document = resources["GuardrailsPolicy"]["Properties"]["PolicyDocument"]
    statements = [s for s in as_list(document["Statement"]) if "Resource" in s]  # not the conditional SSM one
    return set().union(*(actions(s) for s in statements if TABLE in as_list(s["Resource"])))


# ---------------------------------------------------------------- SQS consumers


def test_sqs_consumers_read_only_their_own_queue(source: dict[str, Any], resources: dict[str, Any]) -> None:
    consumers = 0
    for function_id in function_ids(resources):
        own = consumed_queues(source, function_id)
        consumers += bool(own)
        statements = statements_of(resources, role_of(resources, function_id))
        for action in CONSUMER_ACTIONS:
            granting = [s for s in statements if grants(s, action)]
            for statement in granting:
                assert as_list(statement["Resource"]) == own, (function_id, action, statement)
            if own and action != "sqs:ChangeMessageVisibility":  # what the event source mapping itself needs
                assert granting, (function_id, action)
            if not own:
                assert not granting, (function_id, action)
    assert consumers == 6  # intake, three dispatchers, webhook sender, scheduler (release queue)


def test_event_source_mappings_poll_the_queue_the_role_allows(
    source: dict[str, Any], resources: dict[str, Any]
) -> None:
    for properties in of_type(resources, "AWS::Lambda::EventSourceMapping").values():
        function_id = properties["FunctionName"]["Ref"]
        consumed = consumed_queues(source, function_id) + consumed_streams(source, function_id)
        assert properties["EventSourceArn"] in consumed, function_id


# ---------------------------------------------------------------- logs and tracing


def test_each_function_logs_to_its_own_log_group_only(resources: dict[str, Any]) -> None:
    log_groups = of_type(resources, "AWS::Logs::LogGroup")
    used = set()
    for function_id in function_ids(resources):
        group = resources[function_id]["Properties"]["LoggingConfig"]["LogGroup"]
        assert set(group) == {"Ref"} and group["Ref"] in log_groups, function_id
        used.add(group["Ref"])
        assert log_groups[group["Ref"]].get("RetentionInDays"), group["Ref"]
        logging = [
            s
            for s in statements_of(resources, role_of(resources, function_id))
            if any(a.startswith("logs:") for a in actions(s))
        ]
        assert logging, function_id
        for statement in logging:
            assert actions(statement) <= LOG_ACTIONS, (function_id, statement)  # never logs:CreateLogGroup
            assert as_list(statement["Resource"]) == [get_att_arn(group["Ref"])], (function_id, statement)
        assert set().union(*(actions(s) for s in logging)) == LOG_ACTIONS, function_id
    assert len(used) == len(function_ids(resources))  # one group per function


def test_tracing_stays_active_with_the_x_ray_write_actions(resources: dict[str, Any]) -> None:
    for function_id in function_ids(resources):
        assert resources[function_id]["Properties"]["TracingConfig"] == {"Mode": "Active"}, function_id
        statements = statements_of(resources, role_of(resources, function_id))
        xray = set().union(*(actions(s) for s in statements if actions(s) & XRAY_ACTIONS))
        assert xray == XRAY_ACTIONS, function_id


# ---------------------------------------------------------------- secrets


def readable_secrets(resources: dict[str, Any], function_id: str, **conditions: bool) -> set[str]:
    """The template parameters naming the secrets the function's role may read."""
    names: set[str] = set()
    for statement in statements_of(resources, role_of(resources, function_id), **conditions):
        if "secretsmanager:GetSecretValue" in actions(statement):
            for resource in as_list(statement["Resource"]):
                arn = resource["Fn::Sub"]
                assert arn.startswith("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:")
                assert arn.endswith("}-??????"), arn  # one secret by its name (and Secrets Manager's suffix)
                names.add(arn.rsplit("${", 1)[1].removesuffix("}-??????"))
    return names


RECEIPT_TOKEN_SECRETS = {
    "AliyunReceiptTokenSecretName",
    "TencentReceiptTokenSecretName",
    "HuaweiReceiptTokenSecretName",
}


def test_the_receipts_function_reads_the_receipt_token_secrets_and_no_credentials(resources: dict[str, Any]) -> None:
    assert readable_secrets(resources, "ReceiptsFunction") == RECEIPT_TOKEN_SECRETS
    # Only when Huawei signs its pushes (HuaweiReceiptAuth=aksk): its AK/SK, to check the signatures.
    assert readable_secrets(resources, "ReceiptsFunction", huawei_push_signed=True) == RECEIPT_TOKEN_SECRETS | {
        "HuaweiSecretName"
    }
    variables = resources["ReceiptsFunction"]["Properties"]["Environment"]["Variables"]
    assert {k: v for k, v in variables.items() if k.endswith("_RECEIPT_SECRET_NAME")} == {
        f"GLOBESMS_{p.upper()}_RECEIPT_SECRET_NAME": {"Ref": f"{p}ReceiptTokenSecretName"}
        for p in ("Aliyun", "Tencent", "Huawei")
    }
    assert "GLOBESMS_ALIYUN_SECRET_NAME" not in variables and "GLOBESMS_TENCENT_SECRET_NAME" not in variables


def test_each_dispatcher_reads_its_own_providers_credentials_only(resources: dict[str, Any]) -> None:
    for provider in ("Aliyun", "Tencent", "Huawei"):
        assert readable_secrets(resources, f"{provider}DispatchFunction") == {f"{provider}SecretName"}


def test_the_consent_table_is_read_by_accept_and_changed_by_the_api_only(resources: dict[str, Any]) -> None:
    for function_id in function_ids(resources):
        expected = EXPECTED_CONSENT_ACTIONS.get(function_id, set())
        assert granted_on(resources, function_id, CONSENT_TABLE) == expected, function_id


def test_the_reconcile_run_reads_the_credentials_of_the_providers_it_queries_only(resources: dict[str, Any]) -> None:
    # Alibaba QueryMessage and Tencent's pulls; Huawei has no status query, so its credentials are not readable.
    assert readable_secrets(resources, "ReconcileFunction") == {"AliyunSecretName", "TencentSecretName"}
