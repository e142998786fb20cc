"""`globesms status MESSAGE_ID`: one message, its status and its history (GET /v1/messages/{id})."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tools.cli.api import DEFAULT_API_KEY, DEFAULT_API_URL, Connection
from tools.cli.common import ApiKey, ApiUrl, Deps, JsonOutput, deps, print_json, reported_failures

FIELDS = (
    ("id", "id"),
    ("batch", "batch_id"),
    ("to", "to"),
    ("status", "status"),
    ("type", "type"),
    ("provider", "provider"),
    ("provider's id", "provider_message_id"),
    ("segments", "segments"),
    ("client ref", "client_ref"),
    ("created", "created_at"),
    ("updated", "updated_at"),
    ("submitted", "submitted_at"),
)
EVENT_COLUMNS = ("at", "type", "status", "raw_status", "error_code", "description", "provider_time")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def show_message(d: Deps, view: dict[str, Any]) -> None:
    summary = Table.grid(padding=(0, 2))
    for label, key in FIELDS:
        if view.get(key) is not None:
            summary.add_row(label, _text(view[key]))
    error = view.get("error")
    if error:
        summary.add_row("error", " ".join(_text(error.get(k)) for k in ("category", "code", "message") if error.get(k)))
    d.out.print(summary)
    events = Table(*EVENT_COLUMNS, title="history, oldest first")
    for event in view.get("events", []):
        events.add_row(*(_text(event.get(column)) for column in EVENT_COLUMNS))
    d.out.print(events)


def status(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(help="A message id, `<batch id>.<index>`, as send prints it.")],
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = DEFAULT_API_KEY,
    json_output: JsonOutput = False,
) -> None:
    """Show a message: status, provider, error and its history. --json prints the API's answer as it is.

    Exit codes: 0 shown, 1 refused (404: no such message), 2 usage error, 3 the API could not be reached."""
    d = deps(ctx)
    with reported_failures(d, json_output), d.api(Connection(api_url, api_key)) as api:
        view = api.message(message_id)
    if json_output:
        print_json(view)
    else:
        show_message(d, view)


def register(app: typer.Typer) -> None:
    app.command("status")(status)
