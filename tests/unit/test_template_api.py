"""The API Gateway parts of template.yaml that keep the API's keys, tokens and capacity safe (docs/security.md)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from local.template import load_raw_template


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return load_raw_template()


def api(raw: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = raw["Resources"]["GlobesmsApi"]["Properties"]
    return properties


def receipts_path(raw: dict[str, Any]) -> str:
    path: str = raw["Resources"]["ReceiptsFunction"]["Properties"]["Events"]["Receipts"]["Properties"]["Path"]
    return path


def test_the_usage_plan_has_a_quota_from_a_parameter(raw: dict[str, Any]) -> None:
    quota = api(raw)["Auth"]["UsagePlan"]["Quota"]
    assert quota == {"Limit": {"Ref": "ApiQuotaPerDay"}, "Period": "DAY"}
    assert raw["Parameters"]["ApiQuotaPerDay"]["Type"] == "Number"


def test_access_logs_record_the_resource_path_never_the_raw_path(raw: dict[str, Any]) -> None:
    setting = api(raw)["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    log_format = setting["Format"]
    fields = json.loads(log_format)  # one JSON object per request
    assert fields["resourcePath"] == "$context.resourcePath"
    # $context.path and the request URL hold the receipt token (/v1/receipts/{provider}/<token>).
    variables = set(re.findall(r"\$context\.[A-Za-z.]+", log_format))
    assert not variables & {"$context.path", "$context.requestOverride.path", "$context.domainPrefix"}
    assert all(not v.startswith("$input") for v in variables)
    group = raw["Resources"]["ApiAccessLogGroup"]
    assert group["Type"] == "AWS::Logs::LogGroup" and group["Properties"]["RetentionInDays"] > 0


def test_api_gateway_tracing_is_off_so_receipt_tokens_stay_out_of_traces(raw: dict[str, Any]) -> None:
    # API Gateway's X-Ray segment records the request URL, token included; the functions keep Tracing: Active.
    assert api(raw).get("TracingEnabled", False) is False
    assert raw["Globals"]["Function"]["Tracing"] == "Active"


def test_the_receipts_route_has_its_own_method_throttle(raw: dict[str, Any]) -> None:
    settings = api(raw)["MethodSettings"]
    encoded = receipts_path(raw).replace("/", "~1")  # MethodSettings' spelling of a resource path
    (receipts,) = [s for s in settings if s["ResourcePath"] == f"/{encoded}"]
    assert receipts["HttpMethod"] == "POST"
    assert receipts["ThrottlingRateLimit"] == {"Ref": "ReceiptsThrottleRateLimit"}
    assert receipts["ThrottlingBurstLimit"] == {"Ref": "ReceiptsThrottleBurstLimit"}
    (stage_wide,) = [s for s in settings if s["ResourcePath"] == "/*"]
    assert stage_wide["ThrottlingRateLimit"] != receipts["ThrottlingRateLimit"]


def test_an_optional_web_acl_rate_limits_receipt_and_reply_pushes_per_address(raw: dict[str, Any]) -> None:
    resources = raw["Resources"]
    condition = raw["Conditions"]["HasReceiptsWebAcl"]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ReceiptsWebAclRateLimit"}, 0]}]}
    assert raw["Parameters"]["ReceiptsWebAclRateLimit"]["Default"] == 0
    acl = resources["ApiWebAcl"]
    association = resources["ApiWebAclAssociation"]
    assert (acl["Type"], association["Type"]) == ("AWS::WAFv2::WebACL", "AWS::WAFv2::WebACLAssociation")
    assert acl["Condition"] == association["Condition"] == "HasReceiptsWebAcl"
    properties = acl["Properties"]
    assert properties["Scope"] == "REGIONAL" and properties["DefaultAction"] == {"Allow": {}}
    (rule,) = properties["Rules"]
    statement = rule["Statement"]["RateBasedStatement"]
    assert statement["Limit"] == {"Ref": "ReceiptsWebAclRateLimit"} and statement["AggregateKeyType"] == "IP"
    # Both routes anyone can reach (no API key): the replies route was left out until 2026-12-06.
    matches = [s["ByteMatchStatement"] for s in statement["ScopeDownStatement"]["OrStatement"]["Statements"]]
    assert all(m["FieldToMatch"] == {"UriPath": {}} and m["PositionalConstraint"] == "CONTAINS" for m in matches)
    assert sorted(m["SearchString"] for m in matches) == ["/v1/receipts/", "/v1/replies/"]
    assert rule["Action"] == {"Block": {}}
    # Sampled requests keep the URI, receipt token included: off everywhere.
    for config in (properties["VisibilityConfig"], rule["VisibilityConfig"]):
        assert config["SampledRequestsEnabled"] is False
    arn = association["Properties"]["ResourceArn"]["Fn::Sub"]
    assert "/restapis/${GlobesmsApi}/stages/${GlobesmsApi.Stage}" in arn


def test_snapstart_is_a_parameter_off_by_default_for_the_api_and_receipts_functions(raw: dict[str, Any]) -> None:
    assert raw["Parameters"]["SnapStart"]["Default"] == "false"
    assert raw["Conditions"]["SnapStartOn"] == {"Fn::Equals": [{"Ref": "SnapStart"}, "true"]}
    for function_id in ("SendApiFunction", "ReceiptsFunction"):
        properties = raw["Resources"][function_id]["Properties"]
        # SnapStart applies to published versions: the alias the API invokes is there whether it is on or off.
        assert properties["AutoPublishAlias"] == "live"
        assert properties["SnapStart"] == {"ApplyOn": {"Fn::If": ["SnapStartOn", "PublishedVersions", "None"]}}


def test_the_keys_together_have_room_for_every_key_s_own_throttle(raw: dict[str, Any]) -> None:
    """API Gateway applies a stage's method throttle after the usage plan's, to every caller at once. The "/*"
    setting was 50/s, the same as one key's plan: all keys together shared 50 requests a second, and one service's
    burst throttled the others, which docs/api.md promised it never would (found by a review)."""
    parameters = raw["Parameters"]
    plan = api(raw)["Auth"]["UsagePlan"]["Throttle"]
    assert plan == {"RateLimit": {"Ref": "ApiKeyRateLimit"}, "BurstLimit": {"Ref": "ApiKeyBurstLimit"}}
    (stage_wide,) = [s for s in api(raw)["MethodSettings"] if s["ResourcePath"] == "/*"]
    assert stage_wide["ThrottlingRateLimit"] == {"Ref": "ApiStageRateLimit"}
    assert stage_wide["ThrottlingBurstLimit"] == {"Ref": "ApiStageBurstLimit"}
    keys = 1 + 5  # the default key and ClientApiKeyNames' at most 5
    assert parameters["ApiStageRateLimit"]["Default"] >= keys * parameters["ApiKeyRateLimit"]["Default"]
    assert parameters["ApiStageBurstLimit"]["Default"] >= keys * parameters["ApiKeyBurstLimit"]["Default"]
