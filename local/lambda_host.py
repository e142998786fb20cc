"""One Lambda function in its own process, the way Lambda runs it: `python -m local.lambda_host <LogicalId>`.

Why a process per function: the functions differ only in their environment (the three dispatchers share code and
differ in GLOBESMS_PROVIDER), read it once per process (`globesms.config.settings` caches it) and all call their
module `app`.

The process takes the function's environment from template.yaml, puts its layers and CodeUri on sys.path, imports
the real handler and then
- runs the pollers of each of its SQS event sources (local/pollers.py: LOCAL_SQS_POLLERS per queue),
- reads each of its DynamoDB stream event sources (local/streams.py),
- invokes it on each of its `rate()` schedules (local/schedules.py; LOCAL_SCHEDULE_SECONDS, when set, replaces every
  rate, so tests need not wait a minute) unless started with `--no-schedules` (a second host of the same function:
  EventBridge invokes a schedule once), and
- serves Lambda's Invoke API on 127.0.0.1:<port> (`POST /2015-03-31/functions/<name>/invocations`), which the
  API server calls for API events (and `aws lambda invoke --endpoint-url` can call too).
Invocations are serialised, as in one Lambda execution environment: handlers keep per-invocation state in module
globals (the API resolver's current event, the batch processor's records). A batch a poller received while the
environment was busy starts the moment it is free.

An invocation that outlives the function's Timeout ends the process, as Lambda ends the execution environment: the
host logs Lambda's `Task timed out after N seconds` line and exits with TIMED_OUT_EXIT_CODE, and the runner starts
it again (`local.run.supervise`). What the invocation held comes back as on Lambda: an SQS batch after the queue's
visibility timeout, a stream batch from its same first record, the attempt counted (local/streams.py keeps both in
a file across the restart); an API caller has had API Gateway's 504 at 29 s already. Its side effects stop there,
so a retry after the deadline does not run beside the attempt it retries (the accept's `accepting_until` lease
counts on that), to within the longest call that holds the interpreter: the timer is a thread of this process.

A fault for `make soak`: SIGUSR1 arms a crash. The invocation running then, or else the next one, is ended by a
SIGKILL of this process a random 0.05 s to LOCAL_CRASH_MAX_DELAY_SECONDS (default 1) after it started (after the
signal, if it was already running then); one that finishes first passes the crash on to the next. So the host dies
mid-batch — after claiming a pack, between provider calls, or while recording — as a Lambda environment does
when it runs out of time or memory (`local.run --restart-functions` starts it again).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import random
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.aws import aws_endpoint
from local.httpd import QuietHandler, serve_in_background
from local.pollers import SqsPoller, join_pollers, settle_pollers, start_pollers
from local.processes import add_listen_fd_argument, configure_logging
from local.schedules import start_schedules
from local.stack import LocalStack, function_arn, function_name
from local.streams import JsonStreamsClient, StreamPoller, StreamReader, start_stream_pollers
from local.template import FunctionSpec, StreamEventSource

# Powertools outside AWS: no X-Ray daemon to send traces to; metrics (EMF lines on stdout) are off unless asked
# for with POWERTOOLS_METRICS_DISABLED=false.
POWERTOOLS_LOCAL_DEFAULTS = {"POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_DISABLED": "true"}

INVOKE_PATH = "/2015-03-31/functions/{name}/invocations"

log = logging.getLogger("local.lambda_host")


@dataclass
class LocalLambdaContext:
    """The context object the Lambda runtime passes to a handler (the attributes Powertools and handlers read)."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    tenant_id: str | None = None
    _started: float = field(default_factory=time.monotonic)

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/[{self.function_version}]{os.getpid()}"

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self._started
        return max(int((self.timeout_seconds - elapsed) * 1000), 0)


STREAM_POSITIONS_ENV = "LOCAL_STREAM_POSITIONS"  # a folder, made by local.run for its run
TIMED_OUT_EXIT_CODE = 124  # `timeout`'s: the runner starts a host that exits with it again


class Deadline:
    """Ends this process when the invocation running outlives `timeout_seconds` (see the module's docstring)."""

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        self._lock = threading.Lock()
        self._running: object | None = None  # a token for the invocation running; None when none runs

    @contextlib.contextmanager
    def running(self, request_id: str, seconds_left: float) -> Iterator[None]:
        """`seconds_left`: what the invocation's context says (its clock started first)."""
        token = object()
        timer = threading.Timer(seconds_left, self._expire, args=(token, request_id))
        timer.daemon = True
        with self._lock:
            self._running = token
        timer.start()
        try:
            yield
        finally:
            with self._lock:  # after this, a timer that fired late finds another token (or none) and does nothing
                self._running = None
            timer.cancel()

    def _expire(self, token: object, request_id: str) -> None:
        with self._lock:  # held to the end: the invocation cannot be reported finished meanwhile
            if self._running is not token:
                return
            log.error("%s Task timed out after %.2f seconds", request_id, self.timeout_seconds)
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(TIMED_OUT_EXIT_CODE)


CRASH_MAX_DELAY_ENV = "LOCAL_CRASH_MAX_DELAY_SECONDS"
CRASH_MIN_DELAY_SECONDS = 0.05


class CrashFault:
    """Armed by SIGUSR1: SIGKILL this process partway through an invocation (see the module's docstring)."""

    def __init__(self, max_delay: float | None = None) -> None:
        self.max_delay = max_delay if max_delay is not None else float(os.environ.get(CRASH_MAX_DELAY_ENV, "1"))
        self._lock = threading.Lock()
        self._armed = False
        self._invocation = 0  # the invocation running, numbered; 0 when none runs
        self._count = 0

    def arm(self) -> None:
        with self._lock:
            self._armed = True
            if self._invocation:
                self._schedule(self._invocation)

    def started(self) -> None:
        with self._lock:
            self._count += 1
            self._invocation = self._count
            if self._armed:
                self._schedule(self._invocation)

    def finished(self) -> None:
        with self._lock:
            self._invocation = 0

    def _schedule(self, invocation: int) -> None:
        delay = random.uniform(CRASH_MIN_DELAY_SECONDS, max(self.max_delay, CRASH_MIN_DELAY_SECONDS))
        timer = threading.Timer(delay, self._fire, args=(invocation,))
        timer.daemon = True
        timer.start()

    def _fire(self, invocation: int) -> None:
        with self._lock:
            if self._invocation != invocation:
                return  # that invocation finished first: the next one (or the running one) carries the crash
            log.warning("crash fault: killing this function host (pid %d) during an invocation", os.getpid())
            os.kill(os.getpid(), signal.SIGKILL)


class FunctionRuntime:
    """The imported handler and how to call it."""

    def __init__(self, function: FunctionSpec, stack: LocalStack) -> None:
        self.function = function
        self.name = function_name(function.logical_id)
        self.arn = function_arn(function.logical_id, stack.context)
        self._lock = threading.Lock()
        for name, value in POWERTOOLS_LOCAL_DEFAULTS.items():
            os.environ.setdefault(name, value)
        os.environ.update(stack.function_environment(function))
        # Lambda's sys.path: the function's code first, then the layers' content (/opt/python).
        for path in reversed([function.code_uri, *function.layer_dirs]):
            sys.path.insert(0, str(path))
        module_name, handler_name = function.handler.rsplit(".", 1)
        self.handler = getattr(importlib.import_module(module_name), handler_name)
        self.crash = CrashFault()
        self.deadline = Deadline(function.timeout)

    def invoke(self, event: Any, started: Callable[[], None] | None = None) -> Any:
        """Run the handler once the environment is free; `started` is called when it starts."""
        with self._lock:
            if started is not None:
                started()
            context = LocalLambdaContext(
                function_name=self.name,
                invoked_function_arn=self.arn,
                memory_limit_in_mb=self.function.memory_size,
                timeout_seconds=self.function.timeout,
            )
            self.crash.started()
            try:
                with self.deadline.running(context.aws_request_id, context.get_remaining_time_in_millis() / 1000):
                    return self.handler(event, context)
            finally:
                self.crash.finished()


def invoke_handler_class(runtime: FunctionRuntime) -> type[QuietHandler]:
    invoke_path = INVOKE_PATH.format(name=runtime.name)

    class InvokeHandler(QuietHandler):
        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != invoke_path:
                self.respond(404, json.dumps({"Message": f"Function not found: {self.path}"}).encode())
                return
            try:
                event = json.loads(self.read_body() or b"{}")
            except ValueError:
                self.respond(400, b'{"Type": "User", "message": "Could not parse request body into json"}')
                return
            try:
                result = runtime.invoke(event)
            except Exception as exc:
                # Lambda answers 200 and marks the payload as an error; the caller (API Gateway) decides.
                log.exception("invocation of %s failed", runtime.name)
                error = {
                    "errorMessage": str(exc),
                    "errorType": type(exc).__name__,
                    "stackTrace": traceback.format_tb(exc.__traceback__),
                }
                self.respond(200, json.dumps(error).encode(), {"X-Amz-Function-Error": "Unhandled"})
                return
            self.respond(200, json.dumps(result, default=str).encode(), {"Content-Type": "application/json"})

    return InvokeHandler


def pollers_for(runtime: FunctionRuntime, stack: LocalStack) -> list[SqsPoller]:
    import boto3

    template = stack.template
    sources = [s for s in template.event_sources_of(runtime.function.logical_id) if s.enabled]
    sqs = boto3.session.Session(region_name=stack.context.region).client("sqs")
    return [
        SqsPoller(
            source,
            queue_url=stack.resources.queue_urls[source.queue_id],
            queue_arn=stack.resources.queue_arns[source.queue_id],
            region=stack.context.region,
            invoke=runtime.invoke,
            sqs=sqs,
        )
        for source in sources
    ]


def stream_positions(source: StreamEventSource) -> Path | None:
    """Where this source's position is kept across the host's restarts: a file in the runner's STREAM_POSITIONS_ENV
    folder (none for a host started on its own: it starts at the stream's end)."""
    folder = os.environ.get(STREAM_POSITIONS_ENV)
    return None if not folder else Path(folder) / f"{source.function_id}.{source.event_name}.json"


def stream_pollers_for(runtime: FunctionRuntime, stack: LocalStack) -> list[StreamPoller]:
    import boto3

    session = boto3.session.Session(region_name=stack.context.region)
    pollers = []
    for source in stack.template.stream_sources_of(runtime.function.logical_id):
        if not source.enabled:
            continue
        table = stack.context.refs[source.table_id]
        arn = session.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
        endpoint = aws_endpoint(os.environ, "dynamodbstreams")
        streams = JsonStreamsClient(endpoint, stack.context.region) if endpoint else session.client("dynamodbstreams")
        reader = StreamReader(streams, arn, source, runtime.invoke, positions=stream_positions(source))
        pollers.append(StreamPoller(reader, source))
    return pollers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("function", help="the function's logical id in template.yaml")
    parser.add_argument("--port", type=int, help="port of the Invoke API (127.0.0.1)")
    parser.add_argument("--no-schedules", action="store_true", help="run none of its schedules (another host does)")
    add_listen_fd_argument(parser)
    args = parser.parse_args(argv)
    if (args.port is None) == (args.listen_fd is None):
        parser.error("give one of --port and --listen-fd")
    configure_logging()

    stack = LocalStack.deploy()
    if args.function not in stack.template.functions:
        parser.error(f"no function {args.function} in template.yaml ({', '.join(stack.template.functions)})")
    runtime = FunctionRuntime(stack.template.functions[args.function], stack)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: runtime.crash.arm())
    sqs_pollers = pollers_for(runtime, stack)
    start_pollers(sqs_pollers, stop)
    if not args.no_schedules:
        schedules = stack.template.schedules_of(args.function)
        start_schedules(
            schedules, runtime.invoke, stop, region=stack.context.region, account_id=stack.context.account_id
        )
    stream_threads = start_stream_pollers(stream_pollers_for(runtime, stack), stop)
    # Listening last: a caller that can connect finds the handler imported and the pollers running.
    server = serve_in_background(invoke_handler_class(runtime), args.port or 0, listen_fd=args.listen_fd)
    while not stop.wait(0.5):  # a timed wait, so the signal handlers get to run promptly
        pass
    server.shutdown()
    settle_pollers(sqs_pollers, timeout=5)  # let a batch in progress settle, as Lambda finishes an invocation
    join_pollers(stream_threads, timeout=5)  # between reads they wait on `stop`: they end at once


if __name__ == "__main__":
    main()
