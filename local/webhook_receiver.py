"""A customer's webhook endpoint, locally: verifies each event's signature and prints it.

    python -m local.webhook_receiver [--host 127.0.0.1] [--port 9200] [--fail-first N]

`make run` starts one on 9200; beside it, start another on a free port (`--port 9201`) and send there.

Send messages with `"status_callback": "http://127.0.0.1:9200/hooks"` (plain http is allowed to loopback only,
with GLOBESMS_ALLOW_LOOPBACK_CALLBACKS=true, which `make run` sets). It verifies `Globesms-Signature` with
GLOBESMS_WEBHOOK_SECRET (default: the local stack's) or any API key's own secret in GLOBESMS_WEBHOOK_KEY_SECRETS
(one receiver stands in for every client service's endpoint), answers
- 401 to a request whose signature does not verify (wrong secret, altered body, stale timestamp),
- 500 to the first N deliveries of each event id with --fail-first N (to watch the sender's backoff and retries),
- 200 otherwise; a repeated event id is acknowledged again and marked as a duplicate (receivers dedupe by id).
`GET /_receiver/events` lists what arrived: id, type, status, attempts, and whether it was acknowledged.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from http.server import ThreadingHTTPServer
from typing import Any

from globesms.webhooks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, verify
from local.httpd import QuietHandler, serve_in_background
from local.processes import add_listen_fd_argument
from local.settings import LOCAL_ENV_DEFAULTS, WEBHOOK_RECEIVER_PORT

SECRET_VARIABLE = "GLOBESMS_WEBHOOK_SECRET"
KEY_SECRETS_VARIABLE = "GLOBESMS_WEBHOOK_KEY_SECRETS"
EVENTS_PATH = "/_receiver/events"


@dataclass
class Received:
    id: str
    type: str
    status: str | None
    attempts: int = 0
    acknowledged: bool = False


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    line: str | None  # what to print, if anything


class WebhookReceiver:
    """The receiver's logic, without HTTP: one call per delivery."""

    def __init__(self, secrets: Sequence[str], *, fail_first: int = 0, clock: Callable[[], float] = time.time):
        self.secrets = list(secrets)
        self.fail_first = fail_first
        self.clock = clock
        self.events: dict[str, Received] = {}
        self._lock = threading.Lock()

    def receive(self, headers: Mapping[str, str], body: bytes) -> Answer:
        headers = {name.lower(): value for name, value in headers.items()}
        signature = headers.get(SIGNATURE_HEADER.lower(), "")
        if not verify(self.secrets, signature, body, self.clock()):
            return Answer(401, {"error": "invalid signature"}, "REFUSED  bad or stale signature (401)")
        try:
            event = json.loads(body)
            event_id, event_type = str(event["id"]), str(event["type"])
            message = event.get("message") or {}
        except (ValueError, KeyError, TypeError):
            return Answer(400, {"error": "not an event"}, "REFUSED  signed, but not an event (400)")
        status = message.get("status") if isinstance(message, dict) else None
        with self._lock:
            received = self.events.setdefault(event_id, Received(event_id, event_type, status))
            received.attempts += 1
            attempt, duplicate = received.attempts, received.acknowledged
            fail = attempt <= self.fail_first
            received.acknowledged = received.acknowledged or not fail
        note = " (header id differs!)" if headers.get(EVENT_ID_HEADER.lower(), event_id) != event_id else ""
        summary = f"{event_id} {event_type} status={status} attempt={attempt}{note}"
        if fail:
            return Answer(500, {"error": "failing on purpose"}, f"FAILING  {summary} -> 500 (--fail-first)")
        if duplicate:
            return Answer(200, {"ok": True, "duplicate": True}, f"DUPLICATE {summary} -> 200 (already had it)")
        return Answer(200, {"ok": True}, f"VERIFIED {summary} -> 200")

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(r) for r in self.events.values()]


def handler_class(receiver: WebhookReceiver, out: Callable[[str], None] = print) -> type[QuietHandler]:
    class ReceiverHandler(QuietHandler):
        def do_POST(self) -> None:
            answer = receiver.receive({k: v for k, v in self.headers.items()}, self.read_body())
            if answer.line:
                out(answer.line)
            self._json(answer.status, answer.body)

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != EVENTS_PATH:
                self._json(404, {"error": f"POST events here; GET {EVENTS_PATH} lists them"})
                return
            self._json(200, {"events": receiver.listing()})

        def _json(self, status: int, body: Any) -> None:
            self.respond(status, json.dumps(body).encode(), {"Content-Type": "application/json"})

    return ReceiverHandler


def serve(
    receiver: WebhookReceiver,
    port: int,
    out: Callable[[str], None] = print,
    *,
    host: str = "127.0.0.1",
    listen_fd: int | None = None,
) -> ThreadingHTTPServer:
    """Listen on host:port (0: any free port, see `.server_address`), or on the socket local.run reserved
    (`listen_fd`), in the background."""
    return serve_in_background(handler_class(receiver, out), port, listen_fd=listen_fd, host=host)


def secrets_from_environment(environ: Mapping[str, str]) -> list[str]:
    value = environ.get(SECRET_VARIABLE) or LOCAL_ENV_DEFAULTS.get(SECRET_VARIABLE, "")
    try:
        per_key = json.loads(environ.get(KEY_SECRETS_VARIABLE) or "{}")
    except ValueError:
        per_key = {}  # the sender refuses it (and says so); here it only adds nothing
    own = [v for v in per_key.values() if isinstance(v, str)] if isinstance(per_key, dict) else []
    return value.split() + [secret for v in own for secret in v.split()]


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} is in use (make run's receiver uses {WEBHOOK_RECEIVER_PORT}): "
            f"start this one with --port {port + 1}, say, and send status_callback there"
        )
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=WEBHOOK_RECEIVER_PORT, help="port (default %(default)s)")
    add_listen_fd_argument(parser)
    parser.add_argument("--fail-first", type=int, default=0, metavar="N", help="answer 500 to N tries of each event")
    args = parser.parse_args(argv)
    secrets = secrets_from_environment(os.environ)
    if not secrets:
        parser.error(f"set {SECRET_VARIABLE} to the secret the sender signs with")
    try:
        server = serve(
            WebhookReceiver(secrets, fail_first=args.fail_first),
            args.port,
            lambda line: print(line, flush=True),
            host=args.host,
            listen_fd=args.listen_fd,
        )
    except OSError as exc:  # one line, not a traceback: most often `make run`'s own receiver has the port
        parser.exit(1, f"local.webhook_receiver: {cannot_listen(args.host, args.port, exc)}\n")
    host, port = server.server_address[:2]
    print(f"webhook receiver on http://{host!s}:{port}/ (fail first {args.fail_first})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
