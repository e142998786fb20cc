"""What every provider emulator shares: fault knobs, the request ledger, rate gates and the receipt pusher.

Each emulator is a Flask app built by its module's `create_app(knobs)`; `register_admin_routes` adds
`GET /_emulator/stats` (`?sent=false`: without the per-recipient counts), `POST /_emulator/knobs` and
`POST /_emulator/reset` so tests and `make soak` can turn knobs at run time and read what the emulator received
(per-second call counts, per-recipient send counts, and with `?received=true` when each recipient's request
arrived: the latency figure of `make bench`).
Each module's `main` reads the command line with `emulator_arguments` and runs the app with `serve`.

What is *not* shared, on purpose: each emulator checks its provider's signature, field rules and limits with its own
code, written from the provider's documents, independent of the client package (which no emulator imports: see
tests/integration/emulators/test_emulators_are_independent.py) and of the other emulators.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import logging
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from flask import Flask, Response, g, has_request_context, jsonify, request
from werkzeug.serving import make_server

from local.processes import add_listen_fd_argument, adopt_socket, listen_on
from local.settings import EMULATOR_PORTS

log = logging.getLogger("globesms.emulator")


@dataclass
class Knobs:
    """Fault and behaviour settings. `error_rates` maps a provider error code to the probability that a call
    fails with it (checked before the call is accepted); a code `HTTP_<status>` answers that bare HTTP status
    instead, as a proxy or load balancer in front of the provider would (`bare_status`): 502 and 503 before the
    call is processed (nothing sent), any other status after it was (sent, receipts pushed, the answer lost).
    `timeout_rate` is the probability that the emulator accepts the call and then holds the answer for
    `timeout_seconds` (a client read timeout: unknown outcome). Receipts are pushed (`push_receipts`) after
    `receipt_delay_seconds` plus a random share of `receipt_delay_jitter_seconds`, so with a jitter they (and
    their duplicates) arrive in any order, some before the send is recorded."""

    error_rates: dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    timeout_rate: float = 0.0
    timeout_seconds: float = 30.0
    rate_limits: dict[str, float] = field(default_factory=dict)  # operation -> calls per second (0 = none)
    receipt_callback_url: str | None = None
    receipt_delay_seconds: float = 1.0
    receipt_mix: dict[str, float] = field(default_factory=lambda: {"DELIVERED": 1.0})
    receipt_duplicate_rate: float = 0.0
    receipt_delay_jitter_seconds: float = 0.0
    receipts_across_calls: bool = False  # Alibaba: one push carries the due receipts of many calls (up to 100)
    push_receipts: bool = True
    reply_callback_url: str | None = None  # where POST /_emulator/reply pushes a reply (the provider's reply URL)
    # Status queries (Alibaba QueryMessage, Tencent PullSmsSendStatus*): a share of receipts that are never pushed
    # (the status stays queryable); what the query answers for those: "final" (the outcome) or "pending" (still
    # delivering / nothing to pull); and the carrier code UNDELIVERED receipts carry (None: the emulator's own).
    receipt_withhold_rate: float = 0.0
    status_query_answers: str = "final"
    undelivered_code: str | None = None
    seed: int | None = None

    def update(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if not hasattr(self, key):
                raise ValueError(f"unknown knob {key!r}")
            setattr(self, key, value)


def request_arrival_time() -> float:
    """Epoch seconds at which the request being served arrived (before its signature was checked), else now."""
    if has_request_context():
        return float(g.get("arrived_at", time.time()))
    return time.time()


class Ledger:
    """What the emulator saw: calls per operation per wall-clock second, and how often each recipient was
    accepted for sending (the duplicate counter of the reliability tests) and in which second, per operation
    (the utilisation figure of `make bench`), and when the request that first carried each recipient arrived
    (the latency figure)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls_per_second: dict[str, Counter[int]] = defaultdict(Counter)
        self.throttled: Counter[str] = Counter()
        self.sent_to: Counter[str] = Counter()  # our message id (echo field) or number -> accepted sends
        self.received_at: dict[str, float] = {}  # the same key -> epoch seconds its first accepted request arrived
        self.recipients_per_second: dict[str, Counter[int]] = defaultdict(Counter)  # accepted, per operation
        self.rejected_signatures = 0

    def record_call(self, operation: str, second: int) -> int:
        with self._lock:
            self.calls_per_second[operation][second] += 1
            return self.calls_per_second[operation][second]

    def record_sent(self, key: str, operation: str | None = None) -> None:
        with self._lock:
            self.sent_to[key] += 1
            self.received_at.setdefault(key, request_arrival_time())
            if operation is not None:
                self.recipients_per_second[operation][int(time.time())] += 1

    def record_rejected_signature(self) -> None:
        with self._lock:
            self.rejected_signatures += 1

    def snapshot(self, *, per_recipient: bool = True, received: bool = False) -> dict[str, Any]:
        """Everything but the arrival times (`received_at`, only with `received`), or without the per-recipient
        counts (`sent`, `duplicates`: large after a long run), which leaves what a caller polling during a run
        needs."""
        with self._lock:
            answer: dict[str, Any] = {
                "calls_per_second": {op: {str(s): n for s, n in c.items()} for op, c in self.calls_per_second.items()},
                "max_calls_in_a_second": {op: max(c.values(), default=0) for op, c in self.calls_per_second.items()},
                "throttled": dict(self.throttled),
                "recipients_sent": sum(self.sent_to.values()),
                "recipients_per_second": {
                    op: {str(s): n for s, n in c.items()} for op, c in self.recipients_per_second.items()
                },
                "rejected_signatures": self.rejected_signatures,
            }
            if per_recipient:
                answer["sent"] = dict(self.sent_to)
                answer["duplicates"] = {k: n for k, n in self.sent_to.items() if n > 1}
            if received:
                answer["received_at"] = dict(self.received_at)
            return answer


class RateGate:
    """Counts calls per operation in each whole second; a call past the configured limit is throttled.
    Calls that are throttled still count as arrivals (the ledger shows what the provider saw)."""

    def __init__(self, knobs: Knobs, ledger: Ledger) -> None:
        self._knobs = knobs
        self._ledger = ledger

    def admit(self, operation: str) -> bool:
        second = int(time.time())
        seen = self._ledger.record_call(operation, second)
        limit = self._knobs.rate_limits.get(operation, 0)
        if limit and seen > limit:
            with self._ledger._lock:
                self._ledger.throttled[operation] += 1
            return False
        return True


class Faults:
    def __init__(self, knobs: Knobs) -> None:
        self._knobs = knobs
        self._random = random.Random(knobs.seed)
        self.injected: Counter[str] = Counter()  # what was injected so far: error codes, "timeout"

    def injected_error(self) -> str | None:
        """A provider error code to answer with instead of processing the call, or None."""
        for code, rate in self._knobs.error_rates.items():
            if rate and self._random.random() < rate:
                self.injected[code] += 1
                return code
        return None

    def delay(self) -> None:
        if self._knobs.latency_ms:
            time.sleep(self._knobs.latency_ms / 1000)

    def hold_after_accept(self) -> None:
        """Simulates a response that never arrives in time, after the provider accepted the call."""
        if self._knobs.timeout_rate and self._random.random() < self._knobs.timeout_rate:
            self.injected["timeout"] += 1
            time.sleep(self._knobs.timeout_seconds)

    def receipt_outcome(self) -> str:
        mix = self._knobs.receipt_mix or {"DELIVERED": 1.0}
        return self._random.choices(list(mix), weights=list(mix.values()))[0]

    def withhold_receipt(self) -> bool:
        rate = self._knobs.receipt_withhold_rate
        return bool(rate) and self._random.random() < rate

    def duplicate_receipt(self) -> bool:
        return bool(self._knobs.receipt_duplicate_rate) and self._random.random() < self._knobs.receipt_duplicate_rate

    def receipt_jitter(self) -> float:
        jitter = self._knobs.receipt_delay_jitter_seconds
        return self._random.uniform(0, jitter) if jitter > 0 else 0.0


BARE_STATUS_PREFIX = "HTTP_"
#: Bare statuses answered instead of processing the call (a gateway with no backend to take it).
BARE_STATUSES_BEFORE = frozenset({502, 503})


def bare_status(code: str | None) -> int | None:
    """The HTTP status an injected `HTTP_<status>` code stands for, or None for a provider code."""
    if code is None or not code.startswith(BARE_STATUS_PREFIX) or not code[len(BARE_STATUS_PREFIX) :].isdigit():
        return None
    return int(code[len(BARE_STATUS_PREFIX) :])


def bare_response(status: int) -> Response:
    """What a proxy answers: its own HTML page, none of the provider's JSON."""
    body = f"<html><body><h1>{status}</h1>An error occurred.</body></html>"
    return Response(body, status=status, content_type="text/html")


class ReceiptPusher:
    """Pushes receipts to the configured callback after the configured delay, from `threads` background threads
    (a provider pushes several at once; with 2, a provider pushing one report per call could not keep up with the
    receipts endpoint's answer time under a 70 recipients/s soak). A push that is not answered 2xx is retried a few
    times, as the providers do.

    `schedule` pushes what one closure sends (the receipts of one call, say). `schedule_report` puts a single
    report in an outbox per URL instead: when it is due, every due report of that URL goes out together, up to
    `per_push` in one JSON array (how Alibaba batches receipts of many calls, e.g. one-number OTP calls)."""

    def __init__(
        self, knobs: Knobs, attempts: int = 5, jitter: Callable[[], float] | None = None, threads: int = 4
    ) -> None:
        self._knobs = knobs
        self._jitter = jitter or (lambda: 0.0)
        self._attempts = attempts
        self._lock = threading.Condition()
        self._due: list[tuple[float, int, Callable[[httpx.Client], None]]] = []  # a heap
        self._sequence = itertools.count()  # ties in time keep their order, and closures are never compared
        self._outboxes: dict[str, list[tuple[float, int, Any]]] = {}  # url -> heap of (due, n, report)
        self._threads = [
            threading.Thread(target=self._run, name=f"receipt-pusher-{n}", daemon=True) for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def schedule(self, push: Callable[[httpx.Client], None], delay: float | None = None) -> None:
        if not self._knobs.push_receipts:
            return
        with self._lock:
            heapq.heappush(self._due, (self._when(delay), next(self._sequence), push))
            self._lock.notify()

    def schedule_report(self, url: str, report: Any, *, per_push: int, delay: float | None = None) -> None:
        if not self._knobs.push_receipts:
            return
        with self._lock:
            when = self._when(delay)
            heapq.heappush(self._outboxes.setdefault(url, []), (when, next(self._sequence), report))
            heapq.heappush(self._due, (when, next(self._sequence), lambda client: self._drain(client, url, per_push)))
            self._lock.notify()

    def _when(self, delay: float | None) -> float:
        return time.monotonic() + (self._knobs.receipt_delay_seconds if delay is None else delay) + self._jitter()

    def _drain(self, client: httpx.Client, url: str, per_push: int) -> None:
        """Push every report of `url` that is due, `per_push` at a time (an earlier drain may have left none)."""
        while True:
            with self._lock:
                outbox = self._outboxes.get(url, [])
                reports: list[Any] = []
                while outbox and outbox[0][0] <= time.monotonic() and len(reports) < per_push:
                    reports.append(heapq.heappop(outbox)[2])
            if not reports:
                return
            self.post(client, url, json=reports)

    def post(self, client: httpx.Client, url: str, **kwargs: Any) -> None:
        for attempt in range(self._attempts):
            try:
                if client.post(url, **kwargs).is_success:
                    return
            except httpx.HTTPError as exc:
                log.warning("receipt push to %s failed: %s", url, exc)
            time.sleep(min(2**attempt * 0.2, 5))

    def pending(self) -> int:
        """Pushes scheduled and not started yet."""
        with self._lock:
            return len(self._due)

    def _run(self) -> None:
        # The API's own limit (API Gateway's 29 s) bounds a push; a shorter wait would make a busy local stack
        # get every slow push twice, which only repeats work (duplicates are a knob of their own).
        with httpx.Client(timeout=httpx.Timeout(30.0, connect=5.0)) as client:
            while True:
                with self._lock:
                    while not self._due or self._due[0][0] > time.monotonic():
                        timeout = (self._due[0][0] - time.monotonic()) if self._due else None
                        self._lock.wait(timeout)
                    _, _, push = heapq.heappop(self._due)
                try:
                    push(client)
                except Exception:  # a broken push must not stop the pusher
                    log.exception("receipt push failed")


@dataclass
class EmulatorState:
    knobs: Knobs
    ledger: Ledger = field(default_factory=Ledger)

    def __post_init__(self) -> None:
        self.gate = RateGate(self.knobs, self.ledger)
        self.faults = Faults(self.knobs)
        self.pusher = ReceiptPusher(self.knobs, jitter=self.faults.receipt_jitter)
        # What each accepted message's status query answers: key -> (report, withheld); the emulators choose keys.
        self.statuses: dict[str, tuple[Any, bool]] = {}
        self.statuses_lock = threading.Lock()

    def remember_status(self, key: str, report: Any, *, withheld: bool) -> None:
        with self.statuses_lock:
            self.statuses[key] = (report, withheld)

    def status_of(self, key: str) -> tuple[Any, bool] | None:
        with self.statuses_lock:
            return self.statuses.get(key)


def register_admin_routes(app: Flask, state: EmulatorState) -> None:
    @app.before_request
    def note_arrival() -> None:
        g.arrived_at = time.time()

    @app.get("/_emulator/stats")
    def stats() -> Any:
        per_recipient = request.args.get("sent", "true").lower() not in ("0", "false", "no")
        received = request.args.get("received", "false").lower() in ("1", "true", "yes")
        answer = state.ledger.snapshot(per_recipient=per_recipient, received=received)
        answer["faults_injected"] = dict(state.faults.injected)
        answer["receipt_pushes_pending"] = state.pusher.pending()
        return jsonify(answer)

    @app.post("/_emulator/knobs")
    def set_knobs() -> Any:
        try:
            state.knobs.update(request.get_json(force=True) or {})
        except ValueError as exc:
            return jsonify({"error": str(exc)}), 400
        return jsonify(asdict(state.knobs))

    @app.post("/_emulator/reset")
    def reset() -> Any:
        state.ledger.__init__()  # type: ignore[misc]
        state.faults.injected.clear()
        return jsonify({"ok": True})


def knobs_from_json(text: str | None) -> Knobs:
    knobs = Knobs()
    if text:
        knobs.update(json.loads(text))
    return knobs


def emulator_arguments(provider: str, description: str) -> argparse.ArgumentParser:
    """The command line every emulator takes (`--host`, `--port`, default the provider's local port, and
    `--knobs`); an emulator adds its own options to it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=EMULATOR_PORTS[provider])
    parser.add_argument("--knobs", default=None, help="JSON object of Knobs fields")
    add_listen_fd_argument(parser)
    return parser


def serve(app: Flask, args: argparse.Namespace, provider: str) -> None:
    """Serve `app` (a thread per request) on `--host`/`--port`, or on the socket local.run reserved
    (`--listen-fd`), until the process is stopped. The app is built first: a connection is accepted only once it
    can be served."""
    if args.listen_fd is None:
        server = make_server(args.host, args.port, app, threaded=True)
        host, port = args.host, args.port
    else:
        reserved = adopt_socket(args.listen_fd)
        host, port = reserved.getsockname()[:2]
        server = make_server(host, 0, app, threaded=True, fd=reserved.fileno())  # werkzeug uses a duplicate
        reserved.close()
        listen_on(server.socket, server.request_queue_size)
    print(f"{provider} emulator on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def register_reply_route(app: Flask, state: EmulatorState, build: Callable[[str, str, str], tuple[bytes, str]]) -> None:
    """`POST /_emulator/reply {"from": "+6591234567", "text": "STOP", "to": "1069..."}`: the emulator pushes that
    reply now to `reply_callback_url`, in its provider's own format (`build(from, text, to)` -> body, content type,
    written by each emulator from its provider's document), and answers what the gateway answered."""

    @app.post("/_emulator/reply")
    def push_reply() -> Any:
        url = state.knobs.reply_callback_url
        asked = request.get_json(force=True, silent=True) or {}
        sender, text = asked.get("from"), asked.get("text")
        if not url or not isinstance(sender, str) or not isinstance(text, str):
            return jsonify({"error": "needs the reply_callback_url knob and a JSON body with from and text"}), 400
        body, content_type = build(sender, text, str(asked.get("to", "")))
        answer = httpx.post(url, content=body, headers={"content-type": content_type}, timeout=10)
        return jsonify({"status": answer.status_code, "answer": answer.text})
