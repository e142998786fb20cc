"""An operator's view of and release for OTP held as suspected SMS pumping (docs/guardrails.md).

    python -m tools.pumping status HK [--stack NAME | --table NAME]
    python -m tools.pumping release HK [--minutes 60] [--stack NAME | --table NAME]
    make pumping-release COUNTRY=HK [MINUTES=60] [STACK=globesms-prod]

`status` prints the country's volume in the window, its baseline, the threshold and whether it is held (the guard
refuses its next OTP: the window holds the threshold already), under the rule of limits.json as this shell reads
it (the shipped one, or the SSM path GLOBESMS_GUARDRAILS_PARAMETERS names).
`release` lifts the hold for MINUTES whatever the volume (after that the rule applies again: a burst still going on
trips it again). The table is the stack's output `TableName` (CloudFormation; a stack it does not know is a usage
error, exit 2), or --table; AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_DYNAMODB reach the local stack of `make run` (whose
stack, globesms-local, is then the default, and its table globesms-local-MessagesTable).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

import boto3

from globesms.aws.dynamodb_otp import DynamoDBOtpCounters
from globesms.config import GuardrailsSettings, settings
from globesms.guardrails import pumping
from globesms.guardrails.documents import DocumentUnavailable
from globesms.guardrails.limits import current_limits
from tools.stack import AWS_ERRORS, default_stack, exit_for_aws_error, messages_table


def status(counters: DynamoDBOtpCounters, country: str, now: int) -> dict[str, Any]:
    counts = counters.read([], [country])[1][country]
    verdict = pumping.verdict(country, counts, current_limits().pumping, now)
    return {
        "country": country,
        "recent": verdict.recent,
        "baseline": str(verdict.baseline),
        "threshold": str(verdict.threshold),
        "held": verdict.allowance == 0,  # the guard's own verdict: it refuses the next OTP there
        "released_until": counts.released_until or None,
    }


def release(counters: DynamoDBOtpCounters, country: str, minutes: int, now: int) -> dict[str, Any]:
    counters.release_country(country, now + minutes * 60)
    return {"country": country, "released_until": now + minutes * 60}


def unlisted_prefix(unit: str) -> str | None:
    """Why `unit` is no pumping unit of the limits in force, or None. A prefix counts on its own only when
    pumping.prefixes lists it (a number under any other counts in its country): releasing an unlisted one released
    nothing and said it had. None as well when the limits cannot be read: a release need not wait for them."""
    if not unit.startswith("+"):
        return None
    try:
        prefixes = current_limits().pumping.prefixes
    except DocumentUnavailable:
        return None
    if unit in prefixes:
        return None
    listed = ", ".join(prefixes) or "none"
    parameter = settings(GuardrailsSettings).parameter("limits")
    source = (
        f"SSM {parameter}"
        if parameter
        else "the shipped limits.json; GLOBESMS_GUARDRAILS_PARAMETERS=<the stack's GuardrailsParametersPath> reads "
        "the deployed ones"
    )
    return (
        f"country: {unit} is not in the limits' pumping.prefixes ({listed}; read from {source}): numbers under it "
        "are counted, held and released with their country"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.pumping", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["status", "release"])
    parser.add_argument(
        "country",
        type=str.upper,
        help="ISO 3166 alpha-2, e.g. HK (ZZ: numbers with no country), or a prefix listed in pumping.prefixes "
        "(+4470): a prefix the deployed limits (the SSM parameter under GLOBESMS_GUARDRAILS_PARAMETERS) do not list "
        "is refused; without that variable, one the shipped limits.json does not list is only warned about",
    )
    parser.add_argument("--minutes", type=int, default=60, help="release: how long the hold stays lifted")
    default = default_stack(os.environ)
    parser.add_argument("--stack", default=default, help=f"stack name (default: {default})")
    parser.add_argument("--table", help="the messages table, instead of the stack's output")
    arguments = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Z]{2}|\+[1-9][0-9]{1,14}", arguments.country):
        parser.error("country: two letters (ISO 3166 alpha-2), or a number prefix in E.164 (+4470)")
    if not 1 <= arguments.minutes <= 7 * 24 * 60:
        parser.error("--minutes: between 1 and 10080 (a week)")
    if problem := unlisted_prefix(arguments.country):
        # Refused only against the deployed limits: the shipped file need not be what the stack runs with, and an
        # emergency release must not be blocked by a check against the wrong document.
        if not settings(GuardrailsSettings).parameter("limits"):
            print(f"pumping: warning: {problem}", file=sys.stderr)
        else:
            parser.error(problem)
    try:
        print(json.dumps(_run(arguments)))
    except AWS_ERRORS as exc:  # no such stack, no credentials, access denied, unreachable: one line, no traceback
        code, kind = exit_for_aws_error(exc)
        print(f"pumping: {kind}: {exc}", file=sys.stderr)
        return code
    except DocumentUnavailable as exc:  # the limits parameter named here unreadable or invalid: the rule is unknown
        print(f"pumping: guardrails: {exc}", file=sys.stderr)
        return 1
    return 0


def _run(arguments: argparse.Namespace) -> dict[str, Any]:
    # boto3 reads AWS_ENDPOINT_URL_DYNAMODB, then AWS_ENDPOINT_URL, itself (`make run` sets both: its DynamoDB is a
    # moto process of its own).
    table = arguments.table or messages_table(arguments.stack, boto3.client("cloudformation"))
    counters = DynamoDBOtpCounters(table, lambda: boto3.client("dynamodb"))
    now = int(time.time())
    if arguments.action == "release":
        done = release(counters, arguments.country, arguments.minutes, now)
    else:
        done = status(counters, arguments.country, now)
    # Which deployment it was: STACK falls back to globesms-dev, and a release on the wrong stack lifts nothing where
    # the attack is (a review).
    return {"stack": None if arguments.table else arguments.stack, "table": table, **done}


if __name__ == "__main__":
    sys.exit(main())
