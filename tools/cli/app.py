"""The `globesms` application: the root command and the command groups it is made of.

To add commands (quotes, opt-outs, stats…), write a module with a `register(app)` function (top-level commands
with `app.command`, or a group of them with `app.add_typer`) and add it to COMMAND_GROUPS.
"""

from __future__ import annotations

import typer

from tools.cli import batches, messages, queues, send
from tools.cli.common import deps

HELP = """globesms from the command line: send SMS through the HTTPS API, follow messages and batches, redrive
dead-letter queues.

The API is --api-url / GLOBESMS_API_URL with the key --api-key / GLOBESMS_API_KEY; without them, the local stack of
`make run`. Every command takes --json. Exit codes: 0 success, 1 refused by the API, 2 usage error, 3 the API could
not be reached (docs/cli.md).
"""

COMMAND_GROUPS = (send, messages, batches, queues)

app = typer.Typer(
    name="globesms",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",  # help texts are paragraphs: their line breaks are the source's, not the reader's
    pretty_exceptions_show_locals=False,  # a traceback must never print the API key held in a local variable
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(ctx: typer.Context) -> None:
    deps(ctx)  # the dependencies the caller gave (tests), else the real ones


for group in COMMAND_GROUPS:
    group.register(app)


def run() -> None:
    app()
