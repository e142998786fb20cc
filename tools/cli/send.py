"""`globesms send`: POST /v1/messages for numbers given on the command line or a CSV file of any size."""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from globesms.models.api import IDEMPOTENCY_KEY_PATTERN, IDEMPOTENCY_KEY_RULE
from globesms.models.outbound import MessageType, ProviderName
from tools.cli.api import DEFAULT_API_KEY, DEFAULT_API_URL, ApiClient, ApiRefused, ApiUnavailable, Connection
from tools.cli.common import (
    ApiKey,
    ApiUrl,
    Deps,
    ExitCode,
    JsonOutput,
    deps,
    error_document,
    exit_code_of,
    tell_failure,
)
from tools.cli.recipients import (
    Recipient,
    RecipientsProblem,
    chunk_idempotency_key,
    chunks,
    read_csv,
    request_body,
    scan_csv,
)

ERRORS_SHOWN = 50  # rejected recipients listed in text output; --json lists them all
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)

SEND_HELP = """Send a message to NUMBERS, or to every row of a CSV --file.

Give --text, or --template with its parameters (--param code=123456, repeatable). A CSV file has a header row: a
column `to` (or `number`) and one column per template parameter, e.g. `to,code`. It is checked whole before
anything is sent, then sent in requests of at most the API's per-request cap of recipients.

Safe to run again. Each request carries an Idempotency-Key: with --file it is derived from that chunk's content
(its numbers and parameters, from the file, and the message) and its position, so after a failure (exit code 3,
or Ctrl-C) the same command sends the rest: the API answers a chunk it already took with its first answer and
sends nobody anything twice (for as long as the API keeps the batch: 90 days by default). To send the same file and
message again on purpose, pass a new --idempotency-key, which is mixed into every chunk's key; a run answered
"replayed" says so on stderr. For NUMBERS the key is --idempotency-key as
given, else a new random one (retries within the run are then still safe, reruns are new sends).

Exit codes: 0 sent (some recipients may be rejected: see the output), 1 refused by the API or every recipient
rejected, 2 usage error, 3 the API could not be reached (what was sent before is in the output).
"""


@dataclass
class ChunkResult:
    chunk: int
    idempotency_key: str
    batch_id: str
    replayed: bool
    accepted: int
    rejected: int
    messages: list[dict[str, Any]]
    errors: list[dict[str, Any]]

    def document(self) -> dict[str, Any]:
        return {
            "chunk": self.chunk,
            "batch_id": self.batch_id,
            "idempotency_key": self.idempotency_key,
            "replayed": self.replayed,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "messages": self.messages,
            "errors": self.errors,
        }


def _errors_with_lines(answer: dict[str, Any], chunk: list[Recipient]) -> list[dict[str, Any]]:
    """The API's per-recipient errors, each with its recipient's CSV line (an error names its `index`)."""
    out = []
    for error in answer.get("errors", []):
        index = error.get("index")
        line = chunk[index].line if isinstance(index, int) and 0 <= index < len(chunk) else None
        out.append({**error, "line": line})
    return out


def _message_positions(answer: dict[str, Any], chunk: list[Recipient]) -> list[dict[str, Any]]:
    # A message id is `<batch_id>.<index>`, so each accepted message names its recipient's position.
    out = []
    for message in answer.get("messages", []):
        suffix = str(message.get("id", "")).rpartition(".")[2]
        index = int(suffix) if suffix.isdigit() else None
        line = chunk[index].line if index is not None and index < len(chunk) else None
        out.append({**message, "line": line})
    return out


@dataclass
class Failure:
    """The request a run stopped at: what the API said (or that it said nothing) and the key it carried."""

    error: ApiRefused | ApiUnavailable
    idempotency_key: str
    chunk: int


EVERY_RECIPIENT_REJECTED = {
    "kind": "rejected",
    "status": 202,
    "code": "EVERY_RECIPIENT_REJECTED",
    "message": "the API took the request(s) but rejected every recipient: see errors",
    "fields": [],
}


@dataclass
class SendOutput:
    """How the run is told: one JSON document written as chunks finish (so nothing piles up in memory), or a
    progress bar and a summary (the first ERRORS_SHOWN rejections kept, the rest counted)."""

    d: Deps
    json_output: bool
    total: int
    detailed: bool  # numbers from the command line: list each message in the text summary
    accepted: int = 0
    rejected: int = 0
    replayed: int = 0  # requests the API had taken before: nothing was sent for them this time
    results: list[ChunkResult] = field(default_factory=list)  # text output only, without messages for a file
    errors: list[dict[str, Any]] = field(default_factory=list)  # text output only, at most ERRORS_SHOWN
    progress: Progress | None = None

    def __enter__(self) -> SendOutput:
        if self.json_output:
            sys.stdout.write('{"batches": [')
        else:
            self.progress = Progress(
                TextColumn("sending"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("recipients"),
                TimeElapsedColumn(),
                console=self.d.err,
            )
            self.progress.start()
            self._task = self.progress.add_task("send", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()  # also on Ctrl-C: leave the terminal as it was

    def chunk_done(self, result: ChunkResult, size: int) -> None:
        self.accepted += result.accepted
        self.rejected += result.rejected
        self.replayed += result.replayed
        if self.json_output:
            separator = ", " if result.chunk else ""
            sys.stdout.write(separator + json.dumps(result.document(), ensure_ascii=False))
            sys.stdout.flush()
            return
        self.errors.extend(result.errors[: ERRORS_SHOWN - len(self.errors)])
        result.errors = []
        if not self.detailed:
            result.messages = []  # a file's summary shows counts per request: keep memory flat
        self.results.append(result)
        assert self.progress is not None
        self.progress.advance(self._task, size)

    def finish(self, failure: Failure | None) -> ExitCode:
        every_rejected = failure is None and self.accepted == 0 and self.rejected > 0
        if self.json_output:
            error: dict[str, Any] | None = None
            if failure is not None:
                error = {**error_document(failure.error), "idempotency_key": failure.idempotency_key}
            elif every_rejected:
                error = EVERY_RECIPIENT_REJECTED
            tail = {"accepted": self.accepted, "rejected": self.rejected, "error": error}
            sys.stdout.write("], " + json.dumps(tail, ensure_ascii=False)[1:] + "\n")
            sys.stdout.flush()
        else:
            assert self.progress is not None
            self.progress.stop()
            self._summary()
            if failure is not None:
                self._tell_stop(failure)
        if self.replayed:
            self._tell_replayed()
        if failure is not None:
            return exit_code_of(failure.error)
        return ExitCode.REFUSED if every_rejected else ExitCode.OK

    def _tell_replayed(self) -> None:
        """On stderr, whatever the output: a rerun of the same file and message answered "replayed" for the whole
        run sent nobody anything, and exits 0 as a send does (a week's reminder run again a week later; a review)."""
        requests = "request was" if self.replayed == 1 else "requests were"
        self.d.err.print(
            f"note: {self.replayed} {requests} taken by the API before (replayed): nothing was sent for them now. "
            "The API keeps a keyed request's batch for its retention (90 days by default); to send the same "
            "message again on purpose, run it with a new --idempotency-key."
        )

    def _summary(self) -> None:
        out = self.d.out
        if self.detailed and self.results:
            table = Table("message id", "to", "status", "provider", title=f"batch {self.results[0].batch_id}")
            for message in self.results[0].messages:
                table.add_row(message["id"], message["to"], message["status"], message["provider"])
            out.print(table)
        elif self.results:
            table = Table("chunk", "batch id", "accepted", "rejected", "replayed")
            for r in self.results:
                table.add_row(str(r.chunk), r.batch_id, str(r.accepted), str(r.rejected), "yes" if r.replayed else "")
            out.print(table)
        if self.errors:
            where = "index" if self.detailed else "line"
            table = Table(where, "to", "code", "message", title="rejected")
            for e in self.errors:
                table.add_row(str(e[where]), e["to"], e["code"], e["message"])
            out.print(table)
            if self.rejected > len(self.errors):
                out.print(f"… and {self.rejected - len(self.errors)} more rejected recipients (--json lists them all)")
        if self.results:
            out.print(f"accepted {self.accepted}, rejected {self.rejected}")

    def _tell_stop(self, failure: Failure) -> None:
        tell_failure(self.d, failure.error)
        if isinstance(failure.error, ApiRefused):
            advice = "correct the request: the requests before this one were sent (above)"
        elif self.detailed:
            advice = (
                "the request may or may not have been taken. To try again without risk of sending twice, run it "
                f"again with --idempotency-key {failure.idempotency_key}"
            )
        else:
            advice = (
                f"stopped at request {failure.chunk}. Run the same command again: the requests the API already took "
                "are answered again, not sent twice, and the rest are sent"
            )
        self.d.err.print(advice, markup=False, soft_wrap=True)


def _parse_params(values: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for value in values:
        name, equals, given = value.partition("=")
        if not equals or not name.strip():
            raise typer.BadParameter(f"{value!r}: write NAME=VALUE", param_hint="--param")
        params[name.strip()] = given
    return params


def _content(
    text: str | None, template: str | None, params: dict[str, str], optional: dict[str, Any]
) -> dict[str, Any]:
    """The spec fields shared by every recipient, named as the API names them (models/api.py, MessageSpec)."""
    if (text is None) == (template is None):
        raise typer.BadParameter("give exactly one of --text or --template", param_hint="--text / --template")
    if text is not None and params:
        raise typer.BadParameter("parameters go with --template, not --text", param_hint="--param")
    content: dict[str, Any] = {"text": text} if text is not None else {"template": {"id": template}}
    if params:
        content["template"]["params"] = params
    content.update({name: value for name, value in optional.items() if value is not None and value is not False})
    return content


@dataclass
class Plan:
    total: int
    recipients: Iterable[Recipient]
    key: Callable[[dict[str, Any], str], str]  # (body, position in the file: `chunks`) -> Idempotency-Key
    detailed: bool


def _plan(numbers: list[str], file: Path | None, content: dict[str, Any], salt: str | None, cap: int) -> Plan:
    if salt is not None and not _IDEMPOTENCY_KEY.fullmatch(salt):
        raise typer.BadParameter(f"must be {IDEMPOTENCY_KEY_RULE}", param_hint="--idempotency-key")
    if file is not None:
        if numbers:
            raise typer.BadParameter("give NUMBERS or --file, not both", param_hint="--file")
        try:
            layout = scan_csv(file)
        except (RecipientsProblem, OSError) as exc:
            raise typer.BadParameter(f"{file}: {exc}", param_hint="--file") from exc
        columns = set(layout.param_columns)
        if columns and "text" in content:
            extra = ", ".join(sorted(columns))
            raise typer.BadParameter(
                f"columns {extra} would be template parameters, but the message is --text", param_hint="--file"
            )
        both = columns & set(content.get("template", {}).get("params", {}))
        if both:
            name = sorted(both)[0]
            raise typer.BadParameter(f"parameter {name!r} is both a --param and a column", param_hint="--param")
        return Plan(
            layout.rows,
            read_csv(file, layout),
            lambda body, i: chunk_idempotency_key(body, i, salt or ""),
            detailed=False,
        )
    if not numbers:
        raise typer.BadParameter("give NUMBERS or --file", param_hint="NUMBERS")
    if len(numbers) > cap:
        raise typer.BadParameter(f"{len(numbers)} numbers; at most {cap} per request: use --file", param_hint="NUMBERS")
    key = salt or str(uuid.uuid4())
    return Plan(len(numbers), [Recipient(n, {}) for n in numbers], lambda body, i: key, detailed=True)


def _send_all(api: ApiClient, plan: Plan, content: dict[str, Any], output: SendOutput, cap: int) -> ExitCode:
    for index, (position, chunk) in enumerate(chunks(plan.recipients, cap, content)):
        body = request_body(content, chunk)
        key = plan.key(body, position)
        try:
            answer = api.send(body, idempotency_key=key)
        except (ApiRefused, ApiUnavailable) as exc:
            return output.finish(Failure(exc, key, index))
        result = ChunkResult(
            chunk=index,
            idempotency_key=key,
            batch_id=str(answer.body.get("batch_id", "")),
            replayed=answer.replayed,
            accepted=int(answer.body.get("accepted", 0)),
            rejected=int(answer.body.get("rejected", 0)),
            messages=_message_positions(answer.body, chunk),
            errors=_errors_with_lines(answer.body, chunk),
        )
        output.chunk_done(result, len(chunk))
    return output.finish(None)


def send(
    ctx: typer.Context,
    numbers: Annotated[
        list[str] | None, typer.Argument(help="E.164 numbers, e.g. +6591234567", show_default=False)
    ] = None,
    text: Annotated[str | None, typer.Option(help="The message text.")] = None,
    template: Annotated[str | None, typer.Option(help="A template id (the registry's, or a provider's own).")] = None,
    param: Annotated[list[str] | None, typer.Option(help="A template parameter, NAME=VALUE; repeatable.")] = None,
    message_type: Annotated[MessageType | None, typer.Option("--type", help="The API's default is NOTIFY.")] = None,
    file: Annotated[
        Path | None, typer.Option(help="A CSV of recipients: column to (or number) + one per template parameter.")
    ] = None,
    sender_id: Annotated[str | None, typer.Option(help="Sender id.")] = None,
    provider: Annotated[ProviderName | None, typer.Option(help="Pin a provider instead of routing.")] = None,
    validity: Annotated[int | None, typer.Option(help="Validity in seconds (60 to 259200).")] = None,
    client_ref: Annotated[str | None, typer.Option(help="Your reference, echoed back.")] = None,
    status_callback: Annotated[str | None, typer.Option(help="https URL for signed status events.")] = None,
    callback_on_submitted: Annotated[
        bool, typer.Option("--callback-on-submitted", help="Also an event on SUBMITTED.")
    ] = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Your Idempotency-Key (NUMBERS), or a salt mixed into each chunk's (--file).")
    ] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = DEFAULT_API_KEY,
    json_output: JsonOutput = False,
) -> None:
    d = deps(ctx)
    optional = {
        "type": message_type.value if message_type else None,
        "sender_id": sender_id,
        "provider": provider.value if provider else None,
        "validity_seconds": validity,
        "client_ref": client_ref,
        "status_callback": status_callback,
        "status_callback_on_submitted": callback_on_submitted,
    }
    content = _content(text, template, _parse_params(param or []), optional)
    plan = _plan(numbers or [], file, content, idempotency_key, d.chunk_size)
    with d.api(Connection(api_url, api_key)) as api, SendOutput(d, json_output, plan.total, plan.detailed) as output:
        code = _send_all(api, plan, content, output, d.chunk_size)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("send", help=SEND_HELP)(send)
