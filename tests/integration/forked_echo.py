"""A stand-in function host for tests/integration/test_host_forks.py, run as `python -m
tests.integration.forked_echo --listen-fd N` in a process local.host_forks forks: it says what it was given (one
JSON line), listens on its socket, then waits for a signal."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

if __name__ == "__main__":
    listen_fd = int(sys.argv[sys.argv.index("--listen-fd") + 1])
    sock = socket.socket(fileno=listen_fd)
    print(
        json.dumps(
            {
                "argv": sys.argv,
                "marker": os.environ.get("FORKED_ECHO_MARKER"),
                "own_session": os.getsid(0) == os.getpid(),
                "cwd": os.getcwd(),
                "stdin_is_empty": sys.stdin.read() == "",
            }
        ),
        flush=True,
    )
    sock.listen(1)
    signal.pause()
