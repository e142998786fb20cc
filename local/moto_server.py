"""One moto server process of the local stack (`local.run` starts two: DynamoDB and its streams on one, SQS and
every other service on the other; see `local.aws.DYNAMODB_ENDPOINT_VARIABLES`).

    python -m local.moto_server --serves dynamodb --listen-fd N

`--serves` names what the stack sends to this server, for `ps` and the bench's CPU accounting; moto itself answers
any service on any server, so a request sent to the wrong one finds none of the other's resources.
"""

from __future__ import annotations

import argparse
import signal
import sys

from local.aws import serve_moto
from local.processes import add_listen_fd_argument, adopt_socket, configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a moto server of the local stack")
    parser.add_argument("--serves", required=True, help="the services the stack sends here, e.g. dynamodb")
    add_listen_fd_argument(parser)
    args = parser.parse_args(argv)
    if args.listen_fd is None:
        parser.error("--listen-fd is required: local.run binds the port")
    configure_logging()
    server = serve_moto(adopt_socket(args.listen_fd))
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    server.thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
