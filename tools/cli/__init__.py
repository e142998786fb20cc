"""`globesms`, the command line: send through the HTTPS API, follow messages and batches, redrive dead-letter queues.

Installed as a console script by `pip install -e '.[cli]'` (docs/cli.md). The `cli` extra brings typer and rich,
which the Lambda layer does not ship; `main` says so plainly when they are missing instead of a bare ImportError.
"""

from __future__ import annotations

import sys

MISSING_EXTRA_EXIT = 2  # the usage-error code: the command cannot run as installed


def main() -> None:
    try:
        from tools.cli.app import run
    except ModuleNotFoundError as exc:
        if exc.name not in ("typer", "rich"):
            raise
        print(
            f"globesms: {exc.name} is not installed; install the command line with: pip install -e '.[cli]'",
            file=sys.stderr,
        )
        sys.exit(MISSING_EXTRA_EXIT)
    run()
