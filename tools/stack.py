"""What the operator commands (redrive, recount, pumping) share about the AWS they reach: which stack, its messages
table, and what an AWS error means for their exit code.

A stack CloudFormation does not know, like `make run`'s (AWS_ENDPOINT_URL set), names its resources
`<stack>-<LogicalId>`; on AWS (AWS_ENDPOINT_URL unset) it is a mistyped --stack, which the commands refuse as a usage
error (StackNotFound, exit 2; redrive looks for the local names first and says neither exists). boto3 reads
AWS_ENDPOINT_URL and the per-service AWS_ENDPOINT_URL_<SERVICE> itself (`make run`'s DynamoDB is a moto process of
its own): a client is made without an explicit endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

DEFAULT_STACK = "globesms-dev"  # samconfig.toml's stack_name
LOCAL_STACK = "globesms-local"  # local/stack.py's STACK_NAME
#: Exit codes, as the `globesms` command line's (tools/cli/common.py ExitCode): refused, usage, unavailable.
REFUSED, USAGE, UNAVAILABLE = 1, 2, 3


class UsageError(Exception):
    """Arguments naming what AWS does not have (a stack, a queue): exit 2 (usage), the message says what and why."""


class StackNotFound(UsageError):
    def __init__(self, stack: str) -> None:
        super().__init__(f"stack {stack} does not exist (CloudFormation knows none of that name here); check --stack")


#: What reaching AWS can raise: caught by each command's main and told in one line, never a traceback.
AWS_ERRORS = (BotoCoreError, ClientError, UsageError)


def is_local(environ: Mapping[str, str]) -> bool:
    """AWS_ENDPOINT_URL set: the local stack of `make run`, which CloudFormation does not know."""
    return bool(environ.get("AWS_ENDPOINT_URL"))


def default_stack(environ: Mapping[str, str]) -> str:
    return LOCAL_STACK if is_local(environ) else DEFAULT_STACK


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str] | None:
    """The stack's outputs, or None when CloudFormation does not know the stack."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":  # "Stack with id ... does not exist"
            return None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def messages_table(stack: str, cloudformation: Any, environ: Mapping[str, str] | None = None) -> str:
    """The stack's messages table: its `TableName` output, or on the local stack (AWS_ENDPOINT_URL set, a stack
    CloudFormation does not know) the name the local stack gives it. On AWS, a stack CloudFormation does not know
    is StackNotFound: a mistyped --stack read a table of that made-up name and failed with AWS's ResourceNotFound."""
    outputs = stack_outputs(cloudformation, stack)
    if outputs is not None and "TableName" in outputs:
        return outputs["TableName"]
    if outputs is not None:
        raise UsageError(f"stack {stack} has no output TableName: not a globesms stack? check --stack")
    if not is_local(os.environ if environ is None else environ):
        raise StackNotFound(stack)
    return f"{stack}-MessagesTable"


def exit_for_aws_error(exc: Exception) -> tuple[int, str]:
    """The exit code and its kind for an AWS error: AWS refused (1), the environment needs fixing (no credentials,
    no region: 2), AWS unreachable, throttling or failing (3: safe to run again)."""
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
        if status >= 500 or exc.response.get("Error", {}).get("Code") in ("Throttling", "ThrottlingException"):
            return UNAVAILABLE, "unavailable"
        return REFUSED, "refused"
    if isinstance(exc, ConnectionError | HTTPClientError):  # endpoint unreachable, timeouts
        return UNAVAILABLE, "unavailable"
    return USAGE, "usage"  # UsageError, and botocore's own: no credentials, no region
