"""`globesms redrive QUEUE`: `make redrive` as a command: the same functions of tools/redrive.py, and exit codes.

It talks to AWS (SQS, CloudFormation), not to the HTTPS API: credentials and region as for the AWS CLI, and
AWS_ENDPOINT_URL for the local stack.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tools.cli.common import Deps, ExitCode, JsonOutput, deps, print_json

if TYPE_CHECKING:
    from tools.redrive import RedriveResult


def _failure(d: Deps, json_output: bool, code: ExitCode, kind: str, message: str) -> typer.Exit:
    if json_output:
        print_json({"error": {"kind": kind, "status": None, "code": kind.upper(), "message": message, "fields": []}})
    else:
        d.err.print(f"redrive: {message}", markup=False, soft_wrap=True)
    return typer.Exit(code)


def _exit_for_aws_error(exc: Exception) -> tuple[ExitCode, str]:
    from tools.stack import exit_for_aws_error

    code, kind = exit_for_aws_error(exc)
    return ExitCode(code), kind


def _listed(result: RedriveResult) -> list[dict[str, Any]]:
    from globesms.domain.masking import mask_message_body  # as the command's other imports: on use

    return [
        {
            "message_id": m["MessageId"],
            "receives": m.get("Attributes", {}).get("ApproximateReceiveCount"),
            "body_start": mask_message_body(m["Body"])[:100],  # masked whole: a number cut at 100 would not be
        }
        for m in result.listed
    ]


def redrive(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The DLQ or its source queue: a URL or a logical id (Aliyun…).")],
    stack: Annotated[
        str | None, typer.Option(help="Stack name (default globesms-dev; globesms-local with AWS_ENDPOINT_URL).")
    ] = None,
    to: Annotated[str | None, typer.Option(help="The destination; default: the DLQ's source queue.")] = None,
    maximum: Annotated[int | None, typer.Option("--max", min=1, help="Move at most this many messages.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the messages, move nothing.")] = False,
    wait_seconds: Annotated[int, typer.Option(min=0, max=20, help="Long-poll time of each receive.")] = 2,
    json_output: JsonOutput = False,
) -> None:
    """Move a dead-letter queue's messages back to their queue (what `make redrive` does).

    Exit codes: 0 moved (or listed), 1 some messages could not be moved or AWS refused (access denied), 2 usage
    error (including a queue that does not exist, or no AWS credentials), 3 AWS could not be reached."""
    # boto3 is imported here, not with the other commands: sending need not pay for it.
    from botocore.exceptions import BotoCoreError, ClientError

    from tools import redrive as redrive_tool
    from tools.stack import default_stack

    d = deps(ctx)
    stack_name = stack or default_stack(os.environ)

    def log(line: str) -> None:
        if not json_output:
            d.out.print(line, markup=False, soft_wrap=True)

    result: RedriveResult | None = None
    try:
        sqs, cloudformation = d.aws_clients()
        source, destination = redrive_tool.plan(queue, to=to, stack=stack_name, sqs=sqs, cloudformation=cloudformation)
        log(f"{'dry run: ' if dry_run else ''}from {source}\n  to {destination}")
        result = redrive_tool.RedriveResult(source=source, destination=destination)
        redrive_tool.redrive(
            sqs,
            source,
            destination,
            maximum=maximum,
            dry_run=dry_run,
            wait_seconds=wait_seconds,
            log=log,
            result=result,
        )
    except redrive_tool.RedriveError as exc:
        raise _failure(d, json_output, ExitCode.USAGE, "usage", str(exc)) from exc
    except (BotoCoreError, ClientError) as exc:
        code, kind = _exit_for_aws_error(exc)
        # Stopped midway, some messages may have moved (and some be in both queues): say how many so far.
        so_far = "" if result is None else f" (stopped after: {redrive_tool.summary(result, dry_run=dry_run)})"
        raise _failure(d, json_output, code, kind, f"{type(exc).__name__}: {exc}{so_far}") from exc
    incomplete = bool(result.failed or result.not_deleted)
    if json_output:
        print_json(
            {
                "source": result.source,
                "destination": result.destination,
                "dry_run": dry_run,
                "moved": result.moved,
                "failed": result.failed,
                "not_deleted": result.not_deleted,
                "listed": _listed(result),
            }
        )
    else:
        log(redrive_tool.summary(result, dry_run=dry_run))
    raise typer.Exit(ExitCode.REFUSED if incomplete else ExitCode.OK)


def register(app: typer.Typer) -> None:
    app.command("redrive")(redrive)
