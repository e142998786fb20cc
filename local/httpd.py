"""The small HTTP plumbing the API server and the function hosts share (standard library only: they must start
fast, and neither needs more than read a request and write a response)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from local.processes import adopt_socket, listen_on

log = logging.getLogger("local.httpd")


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; access lines go to logging at DEBUG instead of stderr."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def respond(self, status: int, body: bytes, headers: Mapping[str, str | list[str]] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            if name.lower() in ("content-length", "connection", "transfer-encoding"):
                continue
            for item in value if isinstance(value, list) else [value]:
                self.send_header(name, item)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def serve_in_background(
    handler: type[BaseHTTPRequestHandler], port: int, *, listen_fd: int | None = None, host: str = "127.0.0.1"
) -> ThreadingHTTPServer:
    """Listen on host:port (loopback unless told otherwise), or on the socket the runner reserved (`listen_fd`,
    then `port` and `host` are ignored), and serve from a daemon thread; `.shutdown()` stops it. Call it last, when
    the process can serve: connections are accepted from here on."""
    if listen_fd is None:
        server = ThreadingHTTPServer((host, port), handler)
    else:
        server = ThreadingHTTPServer(("", 0), handler, bind_and_activate=False)
        server.socket.close()  # the unbound socket the constructor made
        server.socket = adopt_socket(listen_fd)
        host, port = server.socket.getsockname()[:2]
        server.server_address = (host, port)
        server.server_name, server.server_port = str(host), int(port)  # what server_bind() would have set
        listen_on(server.socket, server.request_queue_size)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"http-{server.server_address[1]}", daemon=True).start()
    return server
