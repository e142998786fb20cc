"""What the handlers would record in X-Ray: run with the template's environment (with TracerSubsegments on, the one
deployment whose functions record subsegments) and a recording tracer provider, no traced annotation or metadata
may hold a full phone number or a receipt token. With the parameter's default, no handler builds the Tracer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from globesms.models.outbound import ProviderName
from globesms.observability import tracer
from tests.fakes import ScriptedProvider
from tests.integration.conftest import MotoStack, deployed_on_moto

EVENTS = Path(__file__).resolve().parents[2] / "events"
NUMBERS = ("+85251234567", "85251234567", "+6591234567", "6591234567", "+447911123456", "447911123456")
TOKEN = "local-tencent-receipts-0001"


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return loaded


class _Recorded:
    """A subsegment that keeps what the Tracer puts on it."""

    def __init__(self, name: str, log: list[dict[str, Any]]) -> None:
        self.name = name
        self._log = log

    def put_annotation(self, key: str, value: Any) -> None:
        self._log.append({"segment": self.name, "annotation": key, "value": value})

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self._log.append({"segment": self.name, "metadata": key, "value": value, "namespace": namespace})

    def add_exception(self, exception: BaseException, stack: Any = None, remote: bool = False) -> None:
        self._log.append({"segment": self.name, "exception": repr(exception)})


class RecordingProvider:
    """Powertools' tracer provider interface, recording instead of sending to X-Ray."""

    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []

    @contextmanager
    def in_subsegment(self, name: str | None = None, **_: Any) -> Iterator[_Recorded]:
        yield _Recorded(name or "", self.log)

    def put_annotation(self, key: str, value: Any) -> None:
        self.log.append({"annotation": key, "value": value})

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.log.append({"metadata": key, "value": value, "namespace": namespace})

    def patch(self, modules: Any) -> None:
        return None

    def patch_all(self) -> None:
        return None


@pytest.fixture
def stack() -> Iterator[MotoStack]:
    """This module's handlers are loaded with the environment of a deployment with TracerSubsegments on."""
    with deployed_on_moto({"TracerSubsegments": "true"}) as deployed:
        yield deployed


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> RecordingProvider:
    provider = RecordingProvider()
    monkeypatch.setattr(tracer.real, "provider", provider)
    return provider


def text_of(provider: RecordingProvider) -> str:
    return json.dumps(provider.log, default=str)


def test_no_handler_records_a_full_number_in_its_trace(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, recorded
) -> None:
    api = load_handler("send_api")
    accepted = api.lambda_handler(event("send_api_post_messages"), lambda_context)
    assert accepted["statusCode"] == 202 and "+85251234567" in accepted["body"]  # the answer holds numbers
    message_id = json.loads(accepted["body"])["messages"][0]["id"]
    get = event("send_api_get_message")
    get["path"], get["pathParameters"] = f"/v1/messages/{message_id}", {"id": message_id}
    assert api.lambda_handler(get, lambda_context)["statusCode"] == 200
    load_handler("intake").lambda_handler(event("intake_batch"), lambda_context)
    dispatch = load_handler("dispatch", GLOBESMS_PROVIDER="aliyun")
    dispatch._provider = lambda: ScriptedProvider(name=ProviderName.ALIYUN)
    dispatch.lambda_handler(event("dispatch_aliyun"), lambda_context)

    traced = text_of(recorded)
    assert '"annotation": "ColdStart"' in traced  # the recording provider did see the handlers' subsegments
    for number in NUMBERS:
        assert number not in traced


def test_a_receipt_push_records_neither_its_token_nor_numbers(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, monkeypatch, recorded
) -> None:
    monkeypatch.setenv("GLOBESMS_TENCENT_RECEIPT_TOKEN", TOKEN)
    response = load_handler("receipts").lambda_handler(event("receipts_tencent"), lambda_context)
    assert response["statusCode"] == 200
    forged = event("receipts_tencent")
    forged["path"] = forged["path"].replace(TOKEN, "x" * 32)
    forged["requestContext"]["path"] = forged["requestContext"]["path"].replace(TOKEN, "x" * 32)
    assert load_handler("receipts").lambda_handler(forged, lambda_context)["statusCode"] == 403
    traced = text_of(recorded)
    assert '"annotation": "ColdStart"' in traced
    assert TOKEN not in traced and "x" * 32 not in traced and "/v1/receipts" not in traced
    for number in NUMBERS:
        assert number not in traced


def test_traces_stop_at_the_functions(stack) -> None:  # type: ignore[no-untyped-def]
    raw = stack.deployed.template.raw
    # API Gateway's own segment would record every request URL, receipt tokens included.
    assert raw["Resources"]["GlobesmsApi"]["Properties"]["TracingEnabled"] is False
    assert tracer.real._config["patch_modules"] == ("botocore",)  # X-Ray's httpx patch records every URL


def test_the_tracer_is_on_with_the_template_parameter(stack) -> None:  # type: ignore[no-untyped-def]
    environments = [stack.deployed.function_environment(f) for f in stack.deployed.template.functions.values()]
    assert {env["POWERTOOLS_TRACE_DISABLED"] for env in environments} == {"false"}


def test_the_tracer_is_off_by_default() -> None:
    with deployed_on_moto() as default:
        environments = [default.deployed.function_environment(f) for f in default.deployed.template.functions.values()]
    assert {env["POWERTOOLS_TRACE_DISABLED"] for env in environments} == {"true"}
