"""What every command shares: exit codes, the options that reach the API, `--json`, and how failures are told.

A new command group is a module with a `register(app)` function, listed in tools/cli/app.py; it takes its
dependencies from `deps(ctx)` (so tests can hand it an httpx.MockTransport) and reports failures through
`reported_failures`, which turns them into the exit codes below.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.text import Text

from globesms.models.limits import MAX_RECIPIENTS_PER_REQUEST
from tools.cli.api import (
    API_KEY_ENV,
    API_URL_ENV,
    DEFAULT_API_KEY,
    ApiClient,
    ApiRefused,
    ApiUnavailable,
    Connection,
    RetryPolicy,
)


class ExitCode(IntEnum):
    """What scripts can rely on (docs/cli.md, "Exit codes")."""

    OK = 0
    REFUSED = 1  # the API (or AWS) answered and refused; or a send whose every recipient was rejected
    USAGE = 2  # the command line itself is wrong: an option, a file, a queue that does not exist
    UNAVAILABLE = 3  # no useful answer: cannot connect, timeout, 5xx, throttled; running it again later is safe


def _aws_clients() -> tuple[Any, Any]:
    from tools import redrive  # boto3 is imported only by the command that needs it

    return redrive.aws_clients()


@dataclass
class Deps:
    """Everything a command reaches outside the process, replaceable in tests (`CliRunner.invoke(..., obj=Deps(…))`)."""

    transport: httpx.BaseTransport | None = None  # None: real HTTP
    sleep: Callable[[float], None] = time.sleep
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Recipients per POST /v1/messages: the API's own cap, read from its models so the two never drift apart.
    chunk_size: int = MAX_RECIPIENTS_PER_REQUEST
    aws_clients: Callable[[], tuple[Any, Any]] = _aws_clients  # (sqs, cloudformation) for redrive
    # No markup: what is printed holds numbers, texts and the API's messages, in which `[/]` would be read as a tag
    # (a MarkupError after the send had gone out, its batch id lost). The one styled line styles a Text.
    out: Console = field(default_factory=lambda: Console(highlight=False, markup=False))
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, markup=False))

    def api(self, connection: Connection) -> ApiClient:
        return ApiClient(connection, transport=self.transport, retry=self.retry, sleep=self.sleep)


def deps(ctx: typer.Context) -> Deps:
    if not isinstance(ctx.obj, Deps):
        ctx.obj = Deps()
    return ctx.obj


def _checked_url(value: str) -> str:
    """An http(s) URL with a host: anything else fails at the first request (a traceback for one httpx cannot parse,
    retries and "unavailable" for one without a scheme), where it is a usage error."""
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError) as exc:
        raise typer.BadParameter(f"not a URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise typer.BadParameter("must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:3000")
    return value


def _checked_key(value: str) -> str:
    """Printable ASCII without spaces, as API Gateway's keys are (an HTTP header carries no other): a key pasted with a
    non-breaking space failed with a traceback. The key itself is never shown."""
    if not value or not all("!" <= char <= "~" for char in value):
        raise typer.BadParameter("must be printable ASCII without spaces (API Gateway's keys are letters and digits)")
    return value


ApiUrl = Annotated[
    str,
    typer.Option(
        "--api-url",
        envvar=API_URL_ENV,
        help="The API's base URL (with its stage path when deployed).",
        metavar="URL",
        callback=_checked_url,
    ),
]
ApiKey = Annotated[
    str,
    typer.Option(
        "--api-key",
        envvar=API_KEY_ENV,
        help=f"The API key, sent as x-api-key. Default: make run's local key ({DEFAULT_API_KEY}).",
        show_default=False,  # never print a key someone put in the environment
        metavar="KEY",
        callback=_checked_key,
    ),
]
JsonOutput = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout (stable keys, docs/cli.md) instead of text.")
]


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def error_document(exc: ApiRefused | ApiUnavailable) -> dict[str, Any]:
    if isinstance(exc, ApiRefused):
        return {"kind": "refused", "status": exc.status, "code": exc.code, "message": exc.message, "fields": exc.fields}
    return {"kind": "unavailable", "status": exc.status, "code": exc.code, "message": exc.message, "fields": []}


def exit_code_of(exc: ApiRefused | ApiUnavailable) -> ExitCode:
    return ExitCode.REFUSED if isinstance(exc, ApiRefused) else ExitCode.UNAVAILABLE


def tell_failure(d: Deps, exc: ApiRefused | ApiUnavailable) -> None:
    """The failure in words on stderr, each refused field with its rule."""
    what = "refused" if isinstance(exc, ApiRefused) else "no answer"
    d.err.print(Text.assemble((f"{what}:", "bold red"), f" {exc}"), soft_wrap=True)
    for item in getattr(exc, "fields", []):
        d.err.print(f"  {item.get('field', '?')}: {item.get('rule', '')}", markup=False, soft_wrap=True)


@contextmanager
def reported_failures(d: Deps, json_output: bool) -> Iterator[None]:
    """Turn the API's failures into the documented exit code, told as JSON (`{"error": …}` on stdout) or words."""
    try:
        yield
    except (ApiRefused, ApiUnavailable) as exc:
        if json_output:
            print_json({"error": error_document(exc)})
        else:
            tell_failure(d, exc)
        raise typer.Exit(exit_code_of(exc)) from exc
