"""What the operator commands (redrive, recount, pumping) share about the AWS they reach: which stack, its messages
table, and what an AWS error means for their exit code.

A stack CloudFormation does not know, like `make run`'s (AWS_ENDPOINT_URL set), names its resources
`<stack>-<LogicalId>`. boto3 reads AWS_ENDPOINT_URL and the per-service AWS_ENDPOINT_URL_<SERVICE> itself (`make
run`'s DynamoDB is a moto process of its own): a client is made without an explicit endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

DEFAULT_STACK = "globesms-dev"  # samconfig.toml's stack_name
LOCAL_STACK = "globesms-local"  # local/stack.py's STACK_NAME
#: Exit codes, as the `globesms` command line's (tools/cli/common.py ExitCode): refused, usage, unavailable.
REFUSED, USAGE, UNAVAILABLE = 1, 2, 3
#: What an AWS call can raise: caught by each command's main and told in one line, never a traceback.
AWS_ERRORS = (BotoCoreError, ClientError)


def default_stack(environ: Mapping[str, str]) -> str:
    return LOCAL_STACK if environ.get("AWS_ENDPOINT_URL") else DEFAULT_STACK


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str] | None:
    """The stack's outputs, or None when CloudFormation does not know the stack."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":  # "Stack with id ... does not exist"
            return None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def messages_table(stack: str, cloudformation: Any) -> str:
    """The stack's messages table: its `TableName` output, or for a stack CloudFormation does not know (the local
    stack) the name the local stack gives it."""
    outputs = stack_outputs(cloudformation, stack)
    if outputs is not None and "TableName" in outputs:
        return outputs["TableName"]
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
    return USAGE, "usage"
