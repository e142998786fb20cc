"""Every DynamoDB and SQS call a handler makes in these tests is one its function's role grants (template.yaml as SAM
translates it). moto enforces no IAM, so a permission the code needs and the template lacks showed only once
deployed: on 2026-12-06 four did (the receipts function's BatchGetItem, its Recipient index and templates table, the
dispatchers' DeleteItem). `load_handler` (conftest.py) checks each call of the handler it loaded as it is made, and
fails the test at teardown with every call not granted.

A call is the IAM actions it needs on the resources it names: a transaction's items each their own action
(TransactWriteItems' Put needs dynamodb:PutItem, ConditionCheck dynamodb:ConditionCheckItem), a Query on an index the
index's ARN, SQS's batch operations their single action. Secrets Manager and SSM are left out: their resources are
parameters of the stack, not resources it creates, and tests/integration/test_least_privilege.py holds them.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The module attribute `load_handler` sets on a handler it loads: which function of the template it is.
FUNCTION_ATTRIBUTE = "__globesms_function__"
_SINGLE_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
_TRANSACTION_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


@functools.cache
def _translated() -> dict[str, Any]:
    from tests.integration.test_least_privilege import _TRANSLATE, TEMPLATE

    result = subprocess.run(
        [sys.executable, "-c", _TRANSLATE, str(TEMPLATE)],
        capture_output=True,
        text=True,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
        check=True,
        timeout=120,
    )
    resources: dict[str, Any] = json.loads(result.stdout)["translated"]["Resources"]
    return resources


def _statements(function_id: str) -> list[dict[str, Any]]:
    """The Allow statements of the function's role: its own policies and the stand-alone policies attached to it."""
    resources = _translated()
    role = resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    documents = [p["PolicyDocument"] for p in resources[role]["Properties"].get("Policies", [])]
    documents += [
        r["Properties"]["PolicyDocument"]
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"].get("Roles", [])
    ]
    return [s for d in documents for s in _as_list(d["Statement"]) if s.get("Effect") == "Allow"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _names(resource: Any) -> Iterator[str]:
    """A statement's resource as `Logical` or `Logical/index/Name` (both branches of a condition), else nothing."""
    if isinstance(resource, list):
        for item in resource:
            yield from _names(item)
    elif isinstance(resource, dict) and "Fn::If" in resource:
        yield from _names(resource["Fn::If"][1:])
    elif isinstance(resource, dict) and "Fn::GetAtt" in resource and resource["Fn::GetAtt"][1] == "Arn":
        yield str(resource["Fn::GetAtt"][0])
    elif isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), str):
        text = resource["Fn::Sub"]
        if text.startswith("${") and ".Arn}" in text:
            yield text[2 : text.index(".Arn}")] + text[text.index(".Arn}") + 5 :]


def granted(function_id: str, action: str, resource: str) -> bool:
    for statement in _statements(function_id):
        if not any(fnmatch.fnmatchcase(action, pattern) for pattern in _as_list(statement["Action"])):
            continue
        if statement.get("Resource") == "*" or any(
            fnmatch.fnmatchcase(resource, n) for n in _names(statement["Resource"])
        ):
            return True
    return False


@dataclass
class CallCheck:
    """Resolves the stack's physical names (`refs`: logical id -> name or URL) and keeps what was not granted."""

    refs: Mapping[str, str]
    missing: set[tuple[str, str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._logical = {str(physical): logical for logical, physical in self.refs.items()}

    def call(self, function_id: str, service: str, operation: str, params: Mapping[str, Any]) -> None:
        for action, resource in self._needs(service, operation, params):
            if resource is not None and not granted(function_id, action, resource):
                self.missing.add((function_id, action, resource))

    def _needs(self, service: str, operation: str, params: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
        if service == "sqs":
            yield f"sqs:{_SINGLE_ACTIONS.get(operation, operation)}", self._logical.get(str(params.get("QueueUrl")))
        elif service == "dynamodb" and operation.startswith("Transact"):
            for item in params.get("TransactItems", []):
                for kind, body in item.items():
                    yield f"dynamodb:{_TRANSACTION_ACTIONS[kind]}", self._logical.get(body["TableName"])
        elif service == "dynamodb" and operation.startswith("Batch"):
            for table in params.get("RequestItems", {}):
                yield f"dynamodb:{operation}", self._logical.get(table)
        elif service == "dynamodb" and "TableName" in params:
            table = self._logical.get(params["TableName"])
            index = params.get("IndexName")
            yield f"dynamodb:{operation}", None if table is None else table + (f"/index/{index}" if index else "")


def calling_function() -> str | None:
    """The template function whose loaded handler is on the stack (the innermost), if any."""
    frame = sys._getframe(2)
    while frame is not None:
        function_id = frame.f_globals.get(FUNCTION_ATTRIBUTE)
        if function_id is not None:
            return str(function_id)
        frame = frame.f_back
    return None
