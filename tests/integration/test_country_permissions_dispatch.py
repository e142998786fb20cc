"""The country permissions read again at dispatch, on moto's SSM: the dispatcher's role may read the parameter
(DispatchGuardrailsPolicy), and a refusal its cached copy would make is confirmed past the cache."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from globesms.config import settings
from globesms.dispatch.service import dispatch_pack
from globesms.domain.status import Status
from globesms.guardrails import permissions as permissions_module
from globesms.guardrails.permissions import current_permissions
from globesms.models.outbound import ProviderName
from globesms.models.packs import DispatchPack
from tests.fakes import MemoryStore, ScriptedProvider, memory_dispatch_deps
from tests.integration.test_dispatch_metrics_emitted import TENCENT, invoked, tencent_event, value

PARAMETER = "/globesms/guardrails/permissions"


def test_a_dispatcher_reads_the_country_permissions_parameter_and_sends_nothing_to_a_country_denied_since(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With GuardrailsParametersPath set, the dispatcher reads `<path>/permissions` (its role may: the template's
    DispatchGuardrailsPolicy) and a recipient of a country denied after accept is recorded FAILED, not sent."""
    from globesms.aws import wiring

    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name=PARAMETER, Value='{"version": 1, "default": {"deny": ["HK"]}}', Type="String"
    )
    permissions_module.reset_cache()
    parameters.clear_caches()
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="tencent")
    monkeypatch.setenv("GLOBESMS_GUARDRAILS_PARAMETERS", "/globesms/guardrails")  # GuardrailsParametersPath
    settings.cache_clear()
    provider = ScriptedProvider(name=ProviderName.TENCENT)
    dispatch._provider = lambda: provider
    request = tencent_event(2)
    body = json.loads(request["Records"][0]["body"])
    body["recipients"][0]["country"] = "HK"  # as accept set it; the second recipient's pack carries none
    request["Records"][0]["body"] = json.dumps(body)
    try:
        response, lines = invoked(dispatch, request, lambda_context, capsys)
    finally:
        permissions_module.reset_cache()
    assert response == {"batchItemFailures": []}
    assert [m.message_id for call in provider.calls for m in call] == [body["recipients"][1]["id"]]
    found = wiring.message_store().get_message(body["recipients"][0]["id"])
    assert found is not None
    assert (found[0].status, found[0].error_code) == ("FAILED", "COUNTRY_NOT_ALLOWED")
    assert value(lines, "RecipientsFailed", TENCENT) == 1


def test_a_country_allowed_before_accept_is_not_refused_by_a_dispatchers_older_copy(
    stack, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A warm dispatcher read `allow: [HK]` for an earlier pack; the operator then added GB, and a fresh accept
    allowed an OTP to GB. The dispatcher's copy (Powertools' cache, 5 minutes) refused it, FAILED "changed after the
    message was accepted" (found by a review): its refusal is now read again past the cache, and GB goes."""
    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name=PARAMETER, Value='{"version": 1, "types": {"OTP": {"allow": ["HK"]}}}', Type="String")
    monkeypatch.setenv("GLOBESMS_GUARDRAILS_PARAMETERS", "/globesms/guardrails")
    settings.cache_clear()
    permissions_module.reset_cache()
    parameters.clear_caches()
    try:
        assert current_permissions().refusal("GB", "OTP") is not None  # type: ignore[arg-type]  # the older copy
        allowed = '{"version": 1, "types": {"OTP": {"allow": ["HK", "GB"]}}}'
        ssm.put_parameter(Name=PARAMETER, Value=allowed, Type="String", Overwrite=True)
        pack = DispatchPack.model_validate(
            {
                "pack_id": "B:aliyun:0",
                "batch_id": "B",
                "provider": "aliyun",
                "created_at": "2026-12-07T09:59:59.000000Z",
                "contents": [{"type": "OTP", "text": "code 1"}],
                "recipients": [{"id": "B.00000", "to": "+447911123456", "c": 0, "country": "GB"}],
            }
        )
        store = MemoryStore()
        deps = memory_dispatch_deps(store, permissions=current_permissions)
        dispatch_pack(pack, deps, now=datetime(2026, 12, 7, 10, 0, tzinfo=UTC), last_attempt=False)
        assert store.messages["B.00000"].status is Status.SUBMITTED
    finally:
        permissions_module.reset_cache()
        parameters.clear_caches()
