"""moto with the tables and queues of template.yaml, and the real handlers loaded with their template environment."""

import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from moto import mock_aws

from globesms.aws import clients, wiring
from globesms.config import settings
from globesms.models.outbound import ProviderName
from globesms.secrets import forget_stored_secrets
from local.aws import DYNAMODB_ENDPOINT_VARIABLES
from local.stack import PARAMETERS_ENV, LocalStack
from local.streams import StreamReader
from tests.integration import iam_calls

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class MotoStack:
    deployed: LocalStack
    table_name: str
    queue_urls: dict[ProviderName, str]
    dynamodb: Any
    sqs: Any

    def receive(self, provider: ProviderName) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.queue_urls[provider], MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


@pytest.fixture
def stack() -> Iterator[MotoStack]:
    with deployed_on_moto() as deployed:
        yield deployed


@contextmanager
def deployed_on_moto(parameters: dict[str, str] | None = None) -> Iterator[MotoStack]:
    """template.yaml on moto, with its parameters' defaults or `parameters` (as `sam deploy` would take them)."""
    environ = {"AWS_DEFAULT_REGION": "us-east-1"}
    if parameters:
        environ[PARAMETERS_ENV] = json.dumps(parameters)
    with mock_aws():
        deployed = LocalStack.deploy(environ=environ)
        refs = deployed.context.refs
        clients.reset()
        wiring.reset()
        settings.cache_clear()
        forget_stored_secrets()
        yield MotoStack(
            deployed=deployed,
            table_name=refs["MessagesTable"],
            queue_urls={p: refs[f"{p.value.capitalize()}Queue"] for p in ProviderName},
            dynamodb=boto3.client("dynamodb"),
            sqs=boto3.client("sqs"),
        )
        clients.reset()
        settings.cache_clear()


# botocore sends stream calls naming a stream ARN to an account endpoint moto does not serve: name the regional one.
STREAMS_ENDPOINT = "https://streams.dynamodb.us-east-1.amazonaws.com"


@pytest.fixture
def counted(stack, load_handler, lambda_context):  # type: ignore[no-untyped-def]
    """A reader of the table's stream from its start, handing batches to the StatusCountsFunction handler as its
    event source mapping does (local/streams.py); the batches it handed over; the handler."""
    handler = load_handler("status_counts")
    source = next(s for s in stack.deployed.template.stream_event_sources if s.function_id == "StatusCountsFunction")
    arn = stack.dynamodb.describe_table(TableName=stack.table_name)["Table"]["LatestStreamArn"]
    handed: list[dict[str, Any]] = []

    def invoke(event: dict[str, Any]) -> None:
        handed.append(event)
        handler.lambda_handler(event, lambda_context)

    streams = boto3.client("dynamodbstreams", endpoint_url=STREAMS_ENDPOINT)
    reader = StreamReader(streams, arn, source, invoke, from_start=True)
    return reader, handed, handler


@pytest.fixture
def load_handler(stack: MotoStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ModuleType]]:
    """Imports functions/<folder>/app.py afresh with the environment the template gives that function. Every
    DynamoDB and SQS call the handler makes must be one its role grants (`iam_calls`): checked at teardown."""
    check = iam_calls.CallCheck(stack.deployed.context.refs)
    api_call = BaseClient._make_api_call

    def checked_call(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        function_id = iam_calls.calling_function()
        if function_id is not None:
            check.call(function_id, client.meta.service_model.service_name, operation, params)
        return api_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", checked_call)

    def load(folder: str, **overrides: str) -> ModuleType:
        candidates = [
            f
            for f in stack.deployed.template.functions.values()
            if Path(f.code_uri).resolve() == ROOT / "functions" / folder
        ]
        environments = [stack.deployed.function_environment(f) for f in candidates]
        chosen = next(i for i, e in enumerate(environments) if all(e.get(k, v) == v for k, v in overrides.items()))
        environment = environments[chosen]
        for name, value in {**environment, **overrides}.items():
            if not name.startswith("AWS_ENDPOINT_URL"):
                monkeypatch.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL", *DYNAMODB_ENDPOINT_VARIABLES):
            monkeypatch.delenv(name, raising=False)
        settings.cache_clear()
        wiring.reset()
        spec = importlib.util.spec_from_file_location(f"handler_{folder}", ROOT / "functions" / folder / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        setattr(module, iam_calls.FUNCTION_ATTRIBUTE, candidates[chosen].logical_id)
        return module

    yield load
    assert not check.missing, "calls the function's role does not grant (template.yaml): " + ", ".join(
        f"{function} {action} on {resource}" for function, action, resource in sorted(check.missing)
    )
