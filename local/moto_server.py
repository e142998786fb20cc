"""One moto server process of the local stack (`local.run` starts two: DynamoDB and its streams on one, SQS and
every other service on the other; see `local.aws.DYNAMODB_ENDPOINT_VARIABLES`).

    python -m local.moto_server --serves dynamodb --listen-fd N

`--serves` names what the stack sends to this server, for `ps` and the bench's CPU accounting; moto itself answers
any service on any server, so a request sent to the wrong one finds none of the other's resources.

Garbage collection: moto keeps every item of every table as Python objects (the utilisation run of `make bench`
leaves ~120,000 records with their stream records), and the collector's full pass walks all of them. In that run
it paused the DynamoDB server for 1.3, 1.5, 1.8, 2.3 and 2.8 s, every 15-25 s: every dispatcher waited, and each
pause was a second with no provider call. So every `FREEZE_SECONDS` the objects that survived a young collection
are moved out of the collector's sight (`gc.freeze()`): a full pass walks only what came since, and refcounting
still frees them all as before. What this gives up: a reference cycle that was already garbage when frozen is never
freed (a full pass found 160-7,300 such objects per pass, among millions), a little memory over a long run.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading
import time

from local.aws import serve_moto
from local.processes import add_listen_fd_argument, adopt_socket, configure_logging

FREEZE_SECONDS = 5.0


def freeze_long_lived_objects(interval: float = FREEZE_SECONDS) -> threading.Thread:
    """A daemon thread that, every `interval` seconds, collects the young generations and freezes what is left."""

    def run() -> None:
        while True:
            time.sleep(interval)
            gc.collect(1)
            gc.freeze()

    thread = threading.Thread(target=run, name="gc-freeze", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a moto server of the local stack")
    parser.add_argument("--serves", required=True, help="the services the stack sends here, e.g. dynamodb")
    add_listen_fd_argument(parser)
    args = parser.parse_args(argv)
    if args.listen_fd is None:
        parser.error("--listen-fd is required: local.run binds the port")
    configure_logging()
    server = serve_moto(adopt_socket(args.listen_fd))
    freeze_long_lived_objects()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    server.thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
