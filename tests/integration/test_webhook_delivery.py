"""One webhook delivery over real sockets on 127.0.0.1: the address it may reach, the address it connects to, and
its overall deadline — and the sender handler keeping one slow customer from delaying another."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from globesms.domain.clock import utc_now
from globesms.models.webhooks import WebhookDelivery
from globesms.webhooks.sender import WebhookFailed, deliver

EVENTS = Path(__file__).resolve().parents[2] / "events"
SECRET = "whsec_delivery"
NAME = "hooks.example.test"  # resolvable only through the resolver each test passes: no DNS is ever asked


def delivery(url: str) -> WebhookDelivery:
    body = json.loads((EVENTS / "webhooks_batch.json").read_text())["Records"][0]["body"]
    return WebhookDelivery.model_validate_json(body).model_copy(update={"url": url})


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.seen.append({"host": self.headers.get("host", ""), "path": self.path})
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


class _SlowHeaders(socketserver.BaseRequestHandler):
    """Answers one byte of its status line every 0.5 s (each read well under the 5 s read timeout), for at most
    20 s, then closes: an endpoint that holds a delivery as long as it likes unless the sender has a deadline."""

    def handle(self) -> None:
        self.request.settimeout(1.0)
        try:
            self.request.recv(65536)
        except OSError:
            return
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        stop = time.monotonic() + 20
        for byte in answer[:-1]:
            if time.monotonic() > stop:
                return
            try:
                self.request.sendall(bytes([byte]))
            except OSError:
                return  # the sender closed the connection at its deadline
            time.sleep(0.5)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@pytest.fixture
def servers() -> Iterator[list[socketserver.BaseServer]]:
    started: list[socketserver.BaseServer] = []
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


def start(servers: list[socketserver.BaseServer], server: socketserver.BaseServer) -> int:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    servers.append(server)
    return int(server.server_address[1])


def recorder(servers: list[socketserver.BaseServer], tls: ssl.SSLContext | None = None) -> tuple[int, list[Any]]:
    seen: list[dict[str, str]] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = _Server(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    return start(servers, server), seen


def slow_headers(servers: list[socketserver.BaseServer]) -> int:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SlowHeaders)
    server.daemon_threads = True
    return start(servers, server)


def to_loopback(calls: list[str]) -> Any:
    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    return resolve


# ---------------------------------------------------------------- which addresses, and which one is connected


def test_a_name_resolving_to_loopback_is_refused_and_never_connected(servers, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", raising=False)
    port, seen = recorder(servers)
    with pytest.raises(WebhookFailed) as failed:
        deliver(delivery(f"https://{NAME}:{port}/x"), secret=SECRET, now=utc_now(), resolve=to_loopback([]))
    assert failed.value.permanent and "loopback" in failed.value.reason
    assert seen == []


@pytest.mark.parametrize(
    "host",
    ["169.254.169.254", "10.0.0.1", "127.0.0.1", "[::1]", "[::ffff:169.254.169.254]", "[fd00::1]", "0x7f000001"],
)
def test_addresses_a_callback_may_not_reach_are_refused_at_delivery_without_resolving(host: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", raising=False)
    calls: list[str] = []
    with pytest.raises(WebhookFailed) as failed:
        deliver(delivery(f"https://{host}/x"), secret=SECRET, now=utc_now(), resolve=to_loopback(calls))
    assert failed.value.permanent and "callback URL refused" in failed.value.reason
    assert calls == []


def test_one_bad_answer_among_the_addresses_of_a_name_refuses_it(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", raising=False)
    with pytest.raises(WebhookFailed) as failed:
        deliver(
            delivery(f"https://{NAME}/x"),
            secret=SECRET,
            now=utc_now(),
            resolve=lambda host, port: ["93.184.216.34", "169.254.169.254"],
        )
    assert failed.value.permanent


def test_the_delivery_connects_to_the_vetted_address_with_the_callbacks_host_name(servers, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", "true")  # the local stack's setting
    port, seen = recorder(servers)
    calls: list[str] = []
    deliver(delivery(f"http://localhost:{port}/hooks?k=1"), secret=SECRET, now=utc_now(), resolve=to_loopback(calls))
    assert calls == ["localhost"]  # resolved once, by the resolver whose answer was vetted
    assert seen == [{"host": f"localhost:{port}", "path": "/hooks?k=1"}]


def test_an_address_that_refuses_the_connection_is_passed_for_the_next_one_and_the_event_goes_once(  # type: ignore[no-untyped-def]
    servers, monkeypatch
) -> None:
    """A host whose first address is down (nothing listens on 127.0.0.2 here) still gets its event, once, through
    the next address it resolves to, as a browser would reach it; until 2026-12-07 only the first was tried and
    every event to such a host failed until it dead-lettered. Every address is still vetted first (above)."""
    monkeypatch.setenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", "true")
    port, seen = recorder(servers)
    deliver(
        delivery(f"http://localhost:{port}/hooks"),
        secret=SECRET,
        now=utc_now(),
        resolve=lambda host, port: ["127.0.0.2", "127.0.0.1", "127.0.0.1"],
    )
    assert seen == [{"host": f"localhost:{port}", "path": "/hooks"}]
    with pytest.raises(WebhookFailed, match="connection error"):  # none takes it: the last one's error
        deliver(
            delivery(f"http://localhost:{port}/hooks"),
            secret=SECRET,
            now=utc_now(),
            resolve=lambda h, p: ["127.0.0.2", "127.0.0.3"],
        )


def _certificate_for(name: str) -> tuple[bytes, bytes, bytes]:
    """A throwaway CA and a leaf certificate for `name` (PEM: CA certificate, leaf certificate, leaf key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "globesms test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        # Python 3.13's default context verifies strictly (VERIFY_X509_STRICT): a leaf must name its issuer's key.
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), leaf.public_bytes(pem), key_pem


def _tls_server_context(tmp_path: Path, leaf: bytes, key: bytes) -> ssl.SSLContext:
    (tmp_path / "leaf.pem").write_bytes(leaf)
    (tmp_path / "key.pem").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "key.pem")
    seen_sni: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: seen_sni.append(name)  # type: ignore[assignment,misc,return-value]
    context.seen_sni = seen_sni  # type: ignore[attr-defined]
    return context


def test_https_to_the_vetted_address_sends_sni_and_checks_the_certificate_of_the_host_name(  # type: ignore[no-untyped-def]
    servers, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", "true")
    ca, leaf, key = _certificate_for(NAME)
    server_context = _tls_server_context(tmp_path, leaf, key)
    port, seen = recorder(servers, tls=server_context)
    client_context = ssl.create_default_context(cadata=ca.decode())
    url = f"https://{NAME}:{port}/hooks"
    deliver(delivery(url), secret=SECRET, now=utc_now(), resolve=to_loopback([]), ssl_context=client_context)
    assert seen == [{"host": f"{NAME}:{port}", "path": "/hooks"}]
    assert server_context.seen_sni == [NAME]  # type: ignore[attr-defined]
    # The certificate is checked against the callback's host name, not the address connected to.
    other = f"https://other.example.test:{port}/hooks"
    with pytest.raises(WebhookFailed, match="connection error"):
        deliver(delivery(other), secret=SECRET, now=utc_now(), resolve=to_loopback([]), ssl_context=client_context)
    assert len(seen) == 1


@pytest.mark.parametrize("host", ["xn--bcher-kva.example.test", "bücher.example.test"])
def test_an_internationalised_callback_host_is_delivered_under_its_idna_name(  # type: ignore[no-untyped-def]
    servers, monkeypatch, tmp_path, host
) -> None:
    # The connection was pinned to httpx's Unicode form of the host while it asks for the IDNA one: every delivery
    # to such a host failed as a connection error until dead-lettered.
    monkeypatch.setenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", "true")  # only to reach the local server
    idna_name = "xn--bcher-kva.example.test"
    ca, leaf, key = _certificate_for(idna_name)
    server_context = _tls_server_context(tmp_path, leaf, key)
    port, seen = recorder(servers, tls=server_context)
    calls: list[str] = []
    url = f"https://{host}:{port}/hooks"
    client_context = ssl.create_default_context(cadata=ca.decode())
    deliver(delivery(url), secret=SECRET, now=utc_now(), resolve=to_loopback(calls), ssl_context=client_context)
    assert calls == [idna_name]  # the name resolved and vetted is the one connected to
    assert seen == [{"host": f"{idna_name}:{port}", "path": "/hooks"}]
    assert server_context.seen_sni == [idna_name]  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the deadline


def test_an_endpoint_sending_its_headers_slowly_fails_at_the_delivery_deadline(servers, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", "true")
    port = slow_headers(servers)
    with pytest.raises(WebhookFailed) as failed:
        deliver(delivery(f"http://127.0.0.1:{port}/hooks"), secret=SECRET, now=utc_now())
    assert failed.value.reason.startswith("deadline") and not failed.value.permanent


def test_slow_customers_never_delay_a_fast_one_in_this_or_the_next_invocation(  # type: ignore[no-untyped-def]
    stack, load_handler, lambda_context, servers, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("GLOBESMS_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("GLOBESMS_ALLOW_LOOPBACK_CALLBACKS", "true")
    # More than the delivery deadline (5 s); a slow endpoint takes ~19 s, longer than two invocations.
    monkeypatch.setattr(lambda_context, "get_remaining_time_in_millis", lambda: 8_000, raising=False)
    slow = slow_headers(servers)
    fast, seen = recorder(servers)
    sender = load_handler("webhooks")
    template = json.loads((EVENTS / "webhooks_batch.json").read_text())

    def batch(urls: list[str]) -> dict[str, Any]:
        records = []
        for n, url in enumerate(urls):
            record = json.loads(json.dumps(template["Records"][0]))
            body = json.loads(record["body"])
            body["url"], body["event"]["id"] = url, f"{body['event']['id']}.{n}"
            record["body"], record["messageId"] = json.dumps(body), f"m-{len(urls)}-{n}"
            records.append(record)
        return {"Records": records}

    monkeypatch.setattr(sender, "_retry_later", lambda record, seconds: True)  # no queue round trip needed here
    with caplog.at_level(logging.INFO):
        first = sender.lambda_handler(batch([f"http://127.0.0.1:{slow}/s"] * 10), lambda_context)
        assert len(first["batchItemFailures"]) == 10
        second = sender.lambda_handler(batch([f"http://127.0.0.1:{fast}/f"]), lambda_context)
    assert second["batchItemFailures"] == []
    assert [s["path"] for s in seen] == ["/f"]
    reasons = [getattr(r, "reason", "") for r in caplog.records if r.getMessage().startswith("webhook failed")]
    assert len(reasons) == 10 and all(reason.startswith("deadline") for reason in reasons)


def test_the_loopback_resolver_check_uses_real_addresses() -> None:
    # The system resolver the sender uses by default answers with addresses ipaddress reads.
    from globesms.domain.addresses import system_resolver

    assert all(ipaddress.ip_address(a).is_loopback for a in system_resolver("localhost", 80))
    assert socket.getaddrinfo  # the default resolver is the system's
