"""The local stack's reading of template.yaml (local/template.py) against the template itself.

The expected values come from cfn-lint's decoder, a second, independent reader of the same file, so these tests
do not check the loader against itself. They also hold the template to the rules the local stack relies on.
"""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest
from cfnlint.decode import decode
from moto import mock_aws
from pytest_mock import MockerFixture

from local.api_server import build_gateway, compile_route
from local.aws import Provisioned, named, provision
from local.settings import EMULATOR_PORTS
from local.stack import PROVISIONED_ENV, LocalStack, local_parameter_values, parameter_context
from local.template import (
    DEFAULT_FUNCTION_MEMORY,
    DEFAULT_FUNCTION_TIMEOUT,
    DEFAULT_VISIBILITY_TIMEOUT,
    TEMPLATE_PATH,
    ResolveContext,
    Template,
    load_template,
    resolve,
)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    decoded, problems = decode(str(TEMPLATE_PATH))
    assert not problems, problems
    return json.loads(json.dumps(decoded))  # cfn-lint's node classes as plain dicts and lists


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template()


def resources_of(raw: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {lid: r.get("Properties", {}) for lid, r in raw["Resources"].items() if r["Type"] == resource_type}


def function_setting(raw: dict[str, Any], function_id: str, name: str, default: Any) -> Any:
    own = raw["Resources"][function_id]["Properties"]
    value = own.get(name, raw.get("Globals", {}).get("Function", {}).get(name, default))
    if isinstance(value, dict) and set(value) == {"Ref"}:  # a template parameter: the local stack deploys its default
        return raw["Parameters"][value["Ref"]]["Default"]
    return value


def events_of(raw: dict[str, Any], event_type: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (function_id, event_name, event["Properties"])
        for function_id, properties in resources_of(raw, "AWS::Serverless::Function").items()
        for event_name, event in properties.get("Events", {}).items()
        if event["Type"] == event_type
    ]


def dead_letter_queue_ids(raw: dict[str, Any]) -> set[str]:
    return {
        p["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for p in resources_of(raw, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in p
    }


# ---------------------------------------------------------------- what the loader finds


def test_tables(raw: dict[str, Any], template: Template) -> None:
    expected = resources_of(raw, "AWS::DynamoDB::Table")
    assert set(template.tables) == set(expected) and expected
    for logical_id, properties in expected.items():
        table = template.tables[logical_id]
        assert [(k.attribute_name, k.key_type) for k in table.key_schema] == [
            (k["AttributeName"], k["KeyType"]) for k in properties["KeySchema"]
        ]
        assert dict(table.attribute_definitions) == {
            a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]
        }
        assert [
            (i.name, [k.attribute_name for k in i.key_schema], i.projection_type)
            for i in table.global_secondary_indexes
        ] == [
            (i["IndexName"], [k["AttributeName"] for k in i["KeySchema"]], i["Projection"]["ProjectionType"])
            for i in properties.get("GlobalSecondaryIndexes", [])
        ]
        assert table.ttl_attribute == properties.get("TimeToLiveSpecification", {}).get("AttributeName")


def parameter_value(raw: dict[str, Any], value: Any) -> Any:
    """A literal, or the default of the parameter a `Ref` names (the local stack deploys the defaults)."""
    if isinstance(value, dict) and "Ref" in value:
        return raw["Parameters"][value["Ref"]]["Default"]
    return value


def test_queues(raw: dict[str, Any], template: Template) -> None:
    expected = resources_of(raw, "AWS::SQS::Queue")
    assert set(template.queues) == set(expected) and expected
    for logical_id, properties in expected.items():
        queue = template.queues[logical_id]
        assert queue.visibility_timeout == properties.get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT)
        assert queue.message_retention_period == properties["MessageRetentionPeriod"]
        policy = properties.get("RedrivePolicy")
        if policy is None:
            assert queue.redrive is None
        else:
            assert queue.redrive is not None
            assert queue.redrive.dead_letter_queue_id == policy["deadLetterTargetArn"]["Fn::GetAtt"][0]
            assert queue.redrive.max_receive_count == parameter_value(raw, policy["maxReceiveCount"])


def test_functions(raw: dict[str, Any], template: Template) -> None:
    expected = resources_of(raw, "AWS::Serverless::Function")
    assert set(template.functions) == set(expected) and expected
    global_variables = raw["Globals"]["Function"]["Environment"]["Variables"]
    for logical_id, properties in expected.items():
        function = template.functions[logical_id]
        assert function.code_uri == (TEMPLATE_PATH.parent / properties["CodeUri"]).resolve()
        assert (function.code_uri / "app.py").is_file()
        assert function.handler == properties["Handler"]
        assert dict(function.environment) == {
            **global_variables,
            **properties.get("Environment", {}).get("Variables", {}),
        }
        assert function.timeout == function_setting(raw, logical_id, "Timeout", DEFAULT_FUNCTION_TIMEOUT)
        assert function.memory_size == function_setting(raw, logical_id, "MemorySize", DEFAULT_FUNCTION_MEMORY)
        assert [d.name for d in function.layer_dirs] == ["globesms"]


def test_routes(raw: dict[str, Any], template: Template) -> None:
    expected = events_of(raw, "Api")
    assert expected
    found = {(r.function_id, r.event_name): r for r in template.routes if r.event_name in events_of_function(raw)}
    assert set(found) == {(f, e) for f, e, _ in expected}
    for function_id, event_name, properties in expected:
        route = found[(function_id, event_name)]
        api = raw["Resources"][properties["RestApiId"]["Ref"]]["Properties"]
        assert (route.path, route.method) == (properties["Path"], properties["Method"].upper())
        # The API requires a key unless the event says otherwise (the providers' receipt and reply pushes cannot send
        # one).
        expected_key = properties.get("Auth", {}).get("ApiKeyRequired", api["Auth"]["ApiKeyRequired"])
        assert route.api_key_required is expected_key
        assert expected_key is True or route.path.startswith(("/v1/receipts/", "/v1/replies/{provider}/"))


def events_of_function(raw: dict[str, Any]) -> set[str]:
    return {event for _, event, _ in events_of(raw, "Api")}


@pytest.mark.parametrize(("setting", "key_required"), [(None, False), ("false", False), ("true", True)])
def test_the_docs_routes_need_a_key_as_the_parameter_says(
    template: Template, setting: str | None, key_required: bool
) -> None:
    """The docs routes are written in the API's DefinitionBody, each method an Fn::If on DocsRequireApiKey (SAM
    takes an event's ApiKeyRequired only as a literal): the local gateway resolves it as CloudFormation would."""
    environ = {} if setting is None else {"LOCAL_PARAMETERS": json.dumps({"DocsRequireApiKey": setting})}
    gateway = build_gateway({"SendApiFunction": ["in-process"], "ReceiptsFunction": ["in-process"]}, environ)
    for path in ("/v1/docs", "/v1/openapi.json"):
        matched = gateway.match("GET", path)
        assert matched is not None, path
        assert (matched[0].route.function_id, matched[0].route.api_key_required) == ("SendApiFunction", key_required)
    # Every other route of the API keeps its own setting.
    assert gateway.match("POST", "/v1/messages")[0].route.api_key_required is True  # type: ignore[index]


def test_sqs_event_sources(raw: dict[str, Any], template: Template) -> None:
    expected = events_of(raw, "SQS")
    assert expected
    found = {(s.function_id, s.event_name): s for s in template.sqs_event_sources}
    assert set(found) == {(f, e) for f, e, _ in expected}
    for function_id, event_name, properties in expected:
        source = found[(function_id, event_name)]
        assert source.queue_id == properties["Queue"]["Fn::GetAtt"][0]
        assert source.batch_size == properties["BatchSize"]
        assert source.maximum_batching_window_seconds == properties.get("MaximumBatchingWindowInSeconds", 0)
        assert source.report_batch_item_failures


# ---------------------------------------------------------------- rules the template keeps


def test_every_sqs_event_source_reports_batch_item_failures(raw: dict[str, Any]) -> None:
    for function_id, event_name, properties in events_of(raw, "SQS"):
        assert "ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []), (function_id, event_name)


def test_visibility_timeout_is_at_least_six_times_the_consumer_timeout(raw: dict[str, Any]) -> None:
    # AWS's guidance for SQS event sources: otherwise a batch still being processed is delivered again.
    queues = resources_of(raw, "AWS::SQS::Queue")
    for function_id, _, properties in events_of(raw, "SQS"):
        queue = queues[properties["Queue"]["Fn::GetAtt"][0]]
        timeout = function_setting(raw, function_id, "Timeout", DEFAULT_FUNCTION_TIMEOUT)
        assert queue.get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT) >= 6 * timeout, function_id


def test_every_queue_but_a_dead_letter_queue_has_a_redrive_policy(raw: dict[str, Any]) -> None:
    dead_letter_queues = dead_letter_queue_ids(raw)
    assert dead_letter_queues
    # A stream event source's on-failure destination is terminal too: what lands there is for an operator.
    for function in resources_of(raw, "AWS::Serverless::Function").values():
        for event in function.get("Events", {}).values():
            destination = event.get("Properties", {}).get("DestinationConfig", {}).get("OnFailure", {})
            if "Destination" in destination:
                dead_letter_queues.add(destination["Destination"]["Fn::GetAtt"][0])
    for logical_id, properties in resources_of(raw, "AWS::SQS::Queue").items():
        if logical_id in dead_letter_queues:
            assert "RedrivePolicy" not in properties, f"{logical_id} is a dead-letter queue with its own DLQ"
        else:
            assert "RedrivePolicy" in properties, f"{logical_id} has no dead-letter queue"


# ---------------------------------------------------------------- resolving intrinsics locally


def test_local_parameters_point_at_emulators_and_blank_the_secrets(template: Template) -> None:
    values = local_parameter_values(
        template, {"AWS_ENDPOINT_URL": "http://127.0.0.1:5999", "GLOBESMS_HUAWEI_ENDPOINT": "http://127.0.0.1:7000"}
    )
    assert values["AwsEndpointUrl"] == "http://127.0.0.1:5999"
    assert values["AliyunEndpoint"] == f"http://127.0.0.1:{EMULATOR_PORTS['aliyun']}"
    assert values["TencentEndpoint"] == f"http://127.0.0.1:{EMULATOR_PORTS['tencent']}"
    assert values["HuaweiEndpoint"] == "http://127.0.0.1:7000"
    assert values["AliyunSecretName"] == values["TencentSecretName"] == values["HuaweiSecretName"] == ""
    assert values["Stage"] == template.parameters["Stage"].default


def test_sub_resolves_pseudo_parameters_and_parameters(raw: dict[str, Any], template: Template) -> None:
    context = ResolveContext(
        parameters={"AliyunSecretName": "globesms/aliyun"},
        region="eu-west-1",
        account_id="111122223333",
        stack_name="s",
    )
    role = template.raw["Resources"]["AliyunDispatchFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    statement = template.raw["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][1]
    assert resolve(statement["Resource"], context) == (
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:globesms/aliyun-??????"
    )


def test_function_environment_resolves_against_provisioned_resources(template: Template) -> None:
    environ = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": ""}
    with mock_aws():
        stack = LocalStack.deploy(environ=environ, template=template)
        send_api = stack.function_environment(template.functions["SendApiFunction"])
        tencent = stack.function_environment(template.functions["TencentDispatchFunction"])
    assert send_api["GLOBESMS_TABLE_NAME"] == stack.resources.table_names["MessagesTable"]
    assert send_api["GLOBESMS_ALIYUN_QUEUE_URL"] == stack.resources.queue_urls["AliyunQueue"]
    assert send_api["GLOBESMS_RETENTION_DAYS"] == str(template.parameters["RetentionDays"].default)
    assert tencent["GLOBESMS_PROVIDER"] == "tencent"
    assert tencent["GLOBESMS_TENCENT_SECRET_NAME"] == ""
    assert tencent["GLOBESMS_TENCENT_ENDPOINT"] == f"http://127.0.0.1:{EMULATOR_PORTS['tencent']}"
    assert tencent["AWS_LAMBDA_FUNCTION_TIMEOUT"] == str(template.functions["TencentDispatchFunction"].timeout)
    assert stack.outputs()["IntakeQueueUrl"] == stack.resources.queue_urls["IntakeQueue"]


def test_a_host_given_the_runners_resources_resolves_the_same_without_any_aws_call(
    template: Template, mocker: MockerFixture
) -> None:
    environ = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": ""}
    with mock_aws():
        runner = LocalStack.deploy(environ=environ, template=template)
    no_aws = mocker.patch("local.stack.provision", side_effect=AssertionError("an AWS call"))
    host = LocalStack.deploy(environ={**environ, PROVISIONED_ENV: runner.resources.to_json()}, template=template)
    no_aws.assert_not_called()
    assert host.resources == runner.resources
    function = template.functions["AliyunDispatchFunction"]
    assert host.function_environment(function) == runner.function_environment(function)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"table_names": {}}',
        '{"table_names": {}, "table_arns": {}, "queue_urls": {}, "queue_arns": []}',
        '{"table_names": {"T": 1}, "table_arns": {}, "queue_urls": {}, "queue_arns": {}}',
    ],
)
def test_resources_passed_in_the_environment_are_refused_unless_well_formed(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected|not JSON"):
        Provisioned.from_json(text)


# ---------------------------------------------------------------- provisioning on moto


def test_provisioning_creates_what_the_template_declares_and_is_idempotent(
    raw: dict[str, Any], template: Template
) -> None:
    with mock_aws():
        context = parameter_context(template, {"AWS_DEFAULT_REGION": "us-east-1"})
        first = provision(template, context, {})
        again = provision(template, context, {})
        assert again == first
        sqs = boto3.client("sqs", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        for logical_id, properties in resources_of(raw, "AWS::SQS::Queue").items():
            attributes = sqs.get_queue_attributes(QueueUrl=first.queue_urls[logical_id], AttributeNames=["All"])
            attributes = attributes["Attributes"]
            assert int(attributes["VisibilityTimeout"]) == properties.get(
                "VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT
            )
            if "RedrivePolicy" in properties:
                policy = json.loads(attributes["RedrivePolicy"])
                target = properties["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
                assert policy["deadLetterTargetArn"] == first.queue_arns[target]
                assert int(policy["maxReceiveCount"]) == parameter_value(
                    raw, properties["RedrivePolicy"]["maxReceiveCount"]
                )
        for logical_id, properties in resources_of(raw, "AWS::DynamoDB::Table").items():
            name = first.table_names[logical_id]
            table = dynamodb.describe_table(TableName=name)["Table"]
            assert table["KeySchema"] == properties["KeySchema"]
            assert [i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])] == [
                i["IndexName"] for i in properties.get("GlobalSecondaryIndexes", [])
            ]
            ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            assert ttl.get("AttributeName") == properties.get("TimeToLiveSpecification", {}).get("AttributeName")


def test_the_names_given_without_aws_are_those_provisioning_gets(template: Template) -> None:
    """`named` (the benchmarks' environments, no AWS call) names and locates every table and queue as AWS does."""
    with mock_aws():
        context = parameter_context(template, {"AWS_DEFAULT_REGION": "us-east-1"})
        assert named(template, context) == provision(template, context, {})


def test_every_route_path_matches_with_its_path_parameters(template: Template) -> None:
    for route in template.routes:
        compiled = compile_route(route, "dev")
        names = re.findall(r"\{(\w+)\}", route.path)
        concrete = route.path
        for name in names:
            concrete = concrete.replace("{" + name + "}", f"value-of-{name}.00001")
        found = compiled.pattern.match(concrete)
        assert found is not None, route.path
        assert list(found.groups()) == [f"value-of-{name}.00001" for name in names]
