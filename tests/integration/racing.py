"""Races of concurrent writers, as concurrent Lambdas reach DynamoDB, through a moto server in a child process:
library-mode moto is not safe under concurrent transactions, and the server's speed-ups patch moto for the whole
process, so the race runs in a process of its own. A test module runs itself as the child (`race_in_child`), its
`__main__` block calls `child_main` with its race, and the race writes through `moto_messages_table`."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def race_in_child(test_file: str) -> dict[str, Any]:
    """Run `test_file` as a script and return the JSON its race printed last."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "layers" / "globesms")])}
    completed = subprocess.run(
        [sys.executable, test_file], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    answer: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
    return answer


@contextmanager
def moto_messages_table() -> Iterator[str]:
    """A moto server of this process with a table `messages` keyed as the template's; yields its URL."""
    import boto3

    from local.aws import create_messages_like_table, start_moto
    from local.processes import free_port

    port = free_port()
    server = start_moto(port)
    try:
        url = f"http://127.0.0.1:{port}"
        create_messages_like_table(boto3.client("dynamodb", endpoint_url=url))
        yield url
    finally:
        server.stop()


def child_main(race: Callable[[], dict[str, Any]]) -> None:
    """The child's whole work: fake credentials, no endpoint from outside, the race's answer on the last line."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    print(json.dumps(race()))
