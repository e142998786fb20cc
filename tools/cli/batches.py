"""`globesms batch BATCH_ID [--watch] [--messages]`: a batch's counts by status, its rejections, its messages.

Which statuses are final comes from the layer package (globesms.domain.status), so this command and the API never
disagree on when a batch is done.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from globesms.accept.queries import MAX_PAGE
from globesms.domain.status import FINAL_STATUSES, Status
from tools.cli.api import DEFAULT_API_KEY, DEFAULT_API_URL, ApiClient, Connection
from tools.cli.common import ApiKey, ApiUrl, Deps, JsonOutput, deps, print_json, reported_failures

STATUS_ORDER = {status.value: position for position, status in enumerate(Status)}
MESSAGE_COLUMNS = ("id", "to", "status", "provider")


def all_final(view: dict[str, Any]) -> bool:
    """Every accepted recipient has a final status (a batch that accepted nobody is final once accept is done)."""
    if view.get("state") == "ACCEPTING":
        return False
    counts: dict[str, int] = view.get("counts", {})
    recorded = sum(counts.values())
    final = sum(n for status, n in counts.items() if status in FINAL_STATUSES)
    return final == recorded and recorded >= int(view.get("accepted", 0))


def counts_table(view: dict[str, Any]) -> Group:
    counts: dict[str, int] = view.get("counts", {})
    table = Table("status", "recipients", "final")
    for status in sorted(counts, key=lambda s: (STATUS_ORDER.get(s, len(STATUS_ORDER)), s)):
        table.add_row(status, str(counts[status]), "yes" if status in FINAL_STATUSES else "")
    final = sum(n for status, n in counts.items() if status in FINAL_STATUSES)
    headline = (
        f"batch {view.get('batch_id')}  {view.get('state')}  accepted {view.get('accepted')}  "
        f"rejected {view.get('rejected')}  final {final}/{view.get('accepted')}"
    )
    return Group(headline, table)


def show_details(d: Deps, view: dict[str, Any], messages: list[dict[str, Any]] | None) -> None:
    refusal = view.get("refusal")
    if refusal:
        d.out.print(f"refused: {refusal.get('code')}: {refusal.get('message')}", markup=False)
        for item in refusal.get("fields") or []:
            d.out.print(f"  {item.get('field')}: {item.get('rule')}", markup=False)
    if view.get("errors"):
        table = Table("index", "to", "code", "message", title="rejected recipients (the first 100)")
        for error in view["errors"]:
            table.add_row(str(error.get("index")), error.get("to", ""), error.get("code", ""), error.get("message", ""))
        d.out.print(table)
    if messages is not None:
        table = Table(*MESSAGE_COLUMNS, title="messages")
        for message in messages:
            table.add_row(*(str(message.get(column, "")) for column in MESSAGE_COLUMNS))
        d.out.print(table)


def watch(d: Deps, api: ApiClient, batch_id: str, interval: float, live: bool) -> dict[str, Any]:
    """Poll the batch until every recipient is final; with `live`, a table of counts redrawn after each poll."""
    view = api.batch(batch_id, limit=1)
    if not live:
        while not all_final(view):
            d.sleep(interval)
            view = api.batch(batch_id, limit=1)
        return view
    with Live(counts_table(view), console=d.out, auto_refresh=False) as screen:
        while not all_final(view):
            d.sleep(interval)
            view = api.batch(batch_id, limit=1)
            screen.update(counts_table(view), refresh=True)
    return view


def document(view: dict[str, Any], messages: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The API's batch view with every page of messages (or none), `final` added and the page cursor dropped."""
    fields = {key: value for key, value in view.items() if key not in ("messages", "next")}
    return {**fields, "final": all_final(view), "messages": messages or []}


def batch(
    ctx: typer.Context,
    batch_id: Annotated[str, typer.Argument(help="The batch id send printed.")],
    watch_it: Annotated[
        bool, typer.Option("--watch", help="Refresh the counts until every recipient has a final status.")
    ] = False,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between refreshes with --watch.")] = 2.0,
    messages: Annotated[bool, typer.Option("--messages", help="Also list every message, page after page.")] = False,
    page_size: Annotated[int, typer.Option(min=1, max=MAX_PAGE, help="Messages per request with --messages.")] = 100,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = DEFAULT_API_KEY,
    json_output: JsonOutput = False,
) -> None:
    """Show a batch: its state, counts by status and rejected recipients (--messages: every message too).

    --watch redraws the counts until every accepted recipient is DELIVERED, UNDELIVERED, EXPIRED, REJECTED, FAILED
    or CANCELED, then exits 0 (with --json it prints only the final document). Exit codes: 0 shown, 1 refused (404: no
    such batch), 2 usage error, 3 the API could not be reached."""
    d = deps(ctx)
    with reported_failures(d, json_output), d.api(Connection(api_url, api_key)) as api:
        view = watch(d, api, batch_id, interval, live=not json_output) if watch_it else api.batch(batch_id, limit=1)
        listed = list(api.batch_messages(batch_id, page_size=page_size)) if messages else None
    if json_output:
        print_json(document(view, listed))
        return
    if not watch_it:  # --watch left the last counts on the screen
        d.out.print(counts_table(view))
    show_details(d, view, listed)


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)
