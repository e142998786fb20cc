"""`make run`: the whole stack on this machine, wired from template.yaml.

    python -m local.run [--api-port 3000] [--moto-port 5000] [--moto-dynamodb-port 5001]
                        [--emulator-port aliyun=9101 ...] [--no-emulators]
                        [--webhook-receiver-port 9200] [--no-webhook-receiver] [--function-concurrency N]
                        [--function-hosts LOGICAL_ID=N ...] [--restart-functions]
                        [--huawei-receipt-format form|batch]

Starts moto as two child processes (unless AWS_ENDPOINT_URL points elsewhere): DynamoDB and its streams on one
(AWS_ENDPOINT_URL_DYNAMODB), SQS and every other service on the other (AWS_ENDPOINT_URL), so that moto can use two
cores. It creates the template's tables and queues, then starts as child processes: the provider emulators (unless
GLOBESMS_<P>_ENDPOINT points elsewhere), a customer's webhook endpoint (local/webhook_receiver.py), one process per
function (local/lambda_host.py: its SQS pollers and its Invoke API; `--function-concurrency N`: up to N per
function, as Lambda runs several execution environments; `--function-hosts` sets one function's) and the API
server. Ctrl-C or SIGTERM stops them all; so does any child exiting on its own (a stack with a piece missing is
worse than none), except a function host that timed out (local/lambda_host.py) or, with `--restart-functions`,
exited for any reason: that one is started again.

The first minute: every port is bound by this runner first (any port given as 0 gets a free one; the line
`globesms local ports: {...}` says which) and handed to the process that serves it, which listens only once it
can serve. The API server is started last and listens only once every process behind it does. So a connection to
any port is refused until it can be served, and a request sent the moment it connects gets its real answer, never a
5xx.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Mapping, MutableMapping

from local.api_server import DEFAULT_API_KEY_ID, api_key, api_keys
from local.aws import apply_local_credentials, moto_endpoints
from local.lambda_host import POWERTOOLS_LOCAL_DEFAULTS, STREAM_POSITIONS_ENV, TIMED_OUT_EXIT_CODE
from local.processes import Child, ProcessGroup, configure_logging, reserve_port
from local.settings import (
    API_PORT,
    EMULATOR_PORTS,
    LOCAL_ENV_DEFAULTS,
    MOTO_DYNAMODB_PORT,
    MOTO_PORT,
    WEBHOOK_RECEIVER_PORT,
)
from local.stack import PARAMETERS_ENV, PROVISIONED_ENV, LocalStack
from local.template import REPO_ROOT
from local.webhook_receiver import EVENTS_PATH

READY_LINE = "globesms local stack is ready"
PORTS_LINE = "globesms local ports:"  # + a JSON object, printed before any of them listens
STARTUP_TIMEOUT_SECONDS = 60

log = logging.getLogger("local.run")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run globesms locally, wired from template.yaml")
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT", API_PORT)))
    parser.add_argument(
        "--moto-port", type=int, default=MOTO_PORT, help="moto for SQS and the rest; unused with AWS_ENDPOINT_URL"
    )
    parser.add_argument(
        "--moto-dynamodb-port",
        type=int,
        default=None,
        help=f"moto for DynamoDB and its streams (default {MOTO_DYNAMODB_PORT}, or 0 when --moto-port is 0); unused "
        "with AWS_ENDPOINT_URL",
    )
    parser.add_argument(
        "--emulator-port", action="append", default=[], metavar="PROVIDER=PORT", help="move an emulator"
    )
    parser.add_argument("--no-emulators", action="store_true", help="start no provider emulator")
    parser.add_argument(
        "--webhook-receiver-port",
        type=int,
        default=WEBHOOK_RECEIVER_PORT,
        help="where local.webhook_receiver listens on 127.0.0.1 (a status_callback target; default %(default)s)",
    )
    parser.add_argument("--no-webhook-receiver", action="store_true", help="start no local webhook receiver")
    parser.add_argument(
        "--function-concurrency",
        type=int,
        default=int(os.environ.get("LOCAL_FUNCTION_CONCURRENCY", "1")),
        metavar="N",
        help="execution environments (host processes) per function, at most the MaximumConcurrency of its SQS "
        "event sources; the API server sends each request to a free one (default %(default)s)",
    )
    parser.add_argument(
        "--function-hosts",
        action="append",
        default=[],
        metavar="LOGICAL_ID=N",
        help="execution environments of one function instead of --function-concurrency's, with the same cap "
        "(repeatable; e.g. AliyunDispatchFunction=3: Lambda scales each queue's pollers with its backlog)",
    )
    parser.add_argument(
        "--restart-functions",
        action="store_true",
        help="start a function host that exits (e.g. killed by `make soak`) again instead of stopping the stack (one "
        "that timed out is started again in any case, as Lambda does)",
    )
    parser.add_argument(
        "--huawei-receipt-format",
        choices=["form", "batch"],
        default="batch",
        help="Huawei's receipts: each send carries statusCallback and gets one form-encoded report per request, or "
        "(batch) sends carry none and come back in statusReportList pushes to the application's address",
    )
    parser.add_argument(
        "--bind",
        default="127.0.0.1",
        help="address moto, the emulators and the webhook receiver listen on; 0.0.0.0 lets `sam local` "
        "containers reach them (the API server and the function hosts stay on loopback)",
    )
    args = parser.parse_args(argv)
    if args.function_concurrency < 1:
        parser.error("--function-concurrency must be at least 1")
    if args.moto_dynamodb_port is None:  # `--moto-port 0` (tests, benches): every moto port a free one
        args.moto_dynamodb_port = 0 if args.moto_port == 0 else MOTO_DYNAMODB_PORT
    args.hosts_of = {}
    for item in args.function_hosts:
        logical_id, _, count = item.partition("=")
        if not logical_id or not count.isdigit() or int(count) < 1:
            parser.error(f"--function-hosts wants LOGICAL_ID=N with N at least 1, got {item!r}")
        args.hosts_of[logical_id] = int(count)
    args.emulator_ports = dict(EMULATOR_PORTS)
    for item in args.emulator_port:
        provider, _, port = item.partition("=")
        if provider not in EMULATOR_PORTS or not port.isdigit():
            parser.error(f"--emulator-port wants one of {', '.join(EMULATOR_PORTS)}=PORT, got {item!r}")
        args.emulator_ports[provider] = int(port)
    return args


def apply_local_defaults(environ: MutableMapping[str, str]) -> None:
    """What the stack's processes inherit, never overriding what the user set."""
    for name, value in {**LOCAL_ENV_DEFAULTS, **POWERTOOLS_LOCAL_DEFAULTS}.items():
        environ.setdefault(name, value)
    apply_local_credentials(environ)
    environ.setdefault("GLOBESMS_API_KEY", api_key(environ))


def receipt_url(provider: str, api_port: int) -> str:
    """Where a provider pushes receipts: the real ones are told in their consoles (Alibaba, Tencent) or by the
    `statusCallback` of each request (Huawei); the emulators are told here."""
    token = os.environ[f"GLOBESMS_{provider.upper()}_RECEIPT_TOKEN"]
    return f"http://127.0.0.1:{api_port}/v1/receipts/{provider}/{token}"


def reply_url(provider: str, api_port: int) -> str:
    """Where a provider pushes replies (its console's reply URL; the emulators' `POST /_emulator/reply`)."""
    token = os.environ[f"GLOBESMS_{provider.upper()}_REPLY_TOKEN"]
    return f"http://127.0.0.1:{api_port}/v1/replies/{provider}/{token}"


def forward_replies_to_the_receiver(environ: MutableMapping[str, str], receiver_port: int | None) -> None:
    """message.received events go to the local webhook receiver: the template's ReplyCallbackUrl, set as a local
    parameter unless LOCAL_PARAMETERS names one already."""
    if receiver_port is None:
        return
    parameters = json.loads(environ.get(PARAMETERS_ENV) or "{}")
    parameters.setdefault("ReplyCallbackUrl", f"http://127.0.0.1:{receiver_port}{EVENTS_PATH}")
    environ[PARAMETERS_ENV] = json.dumps(parameters)


def intake_belongs_to_the_default_key(environ: MutableMapping[str, str]) -> None:
    """SQS intake messages carry no API key; deployed they belong to the template's IntakeOwner (docs/guardrails.md).
    Locally they belong to GLOBESMS_API_KEY's id, so the key `make run` prints reads the batches it drops on the
    intake, unless LOCAL_PARAMETERS names another owner."""
    parameters = json.loads(environ.get(PARAMETERS_ENV) or "{}")
    parameters.setdefault("IntakeOwner", DEFAULT_API_KEY_ID)
    environ[PARAMETERS_ENV] = json.dumps(parameters)


def reserve_ports(args: argparse.Namespace) -> dict[str, socket.socket]:
    """Bind the API's port, and those of moto, the emulators and the webhook receiver this run starts, before
    anything else (see `reserve_port`); raises OSError naming the port something else has."""
    wanted = {"api": ("127.0.0.1", args.api_port)}
    if not os.environ.get("AWS_ENDPOINT_URL"):
        wanted["moto"] = (args.bind, args.moto_port)
        wanted["moto-dynamodb"] = (args.bind, args.moto_dynamodb_port)
    if not args.no_webhook_receiver:
        wanted["webhook-receiver"] = (args.bind, args.webhook_receiver_port)
    if not args.no_emulators:
        for provider, port in args.emulator_ports.items():
            if not os.environ.get(f"GLOBESMS_{provider.upper()}_ENDPOINT"):
                wanted[provider] = (args.bind, port)
    sockets: dict[str, socket.socket] = {}
    try:
        for name, (host, port) in wanted.items():
            try:
                sockets[name] = reserve_port(host, port)
            except OSError as exc:
                raise OSError(exc.errno, f"{name} port {host}:{port}: {exc.strerror}") from exc
    except OSError:
        for sock in sockets.values():
            sock.close()
        raise
    return sockets


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def start_moto_servers(children: ProcessGroup, sockets: dict[str, socket.socket]) -> list[Child]:
    """moto's two processes, when this run has their ports, pointed to by the AWS endpoint variables every process
    of the stack inherits."""
    if "moto" not in sockets:
        return []  # AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_DYNAMODB, if the user set it) say where AWS is
    servers = [
        children.start(
            name,
            [sys.executable, "-m", "local.moto_server", "--serves", serves],
            os.environ,
            sockets[name],
            stop_last=True,
        )
        for name, serves in (("moto", "sqs,others"), ("moto-dynamodb", "dynamodb,dynamodbstreams"))
    ]
    os.environ.update(moto_endpoints({name: port_of(sockets[name]) for name in ("moto", "moto-dynamodb")}))
    return servers


def start_emulators(
    children: ProcessGroup,
    sockets: dict[str, socket.socket],
    *,
    enabled: bool,
    bind: str,
    api_port: int,
    emulator_ports: dict[str, int],
    huawei_receipt_format: str,
) -> None:
    """Start each provider's emulator unless its GLOBESMS_<P>_ENDPOINT is set, on the socket reserved for it;
    point the functions at it."""
    if huawei_receipt_format == "form":
        # Each send carries the receipt URL as statusCallback; with "batch" none does, and the emulator pushes to the
        # address configured on the application (its knob), as docs/deploy.md configures Huawei.
        os.environ.setdefault("GLOBESMS_HUAWEI_STATUS_CALLBACK", receipt_url("huawei", api_port))
    for provider, configured_port in emulator_ports.items():
        endpoint_variable = f"GLOBESMS_{provider.upper()}_ENDPOINT"
        if os.environ.get(endpoint_variable):
            print(f"{provider}: using {os.environ[endpoint_variable]} ({endpoint_variable})")
            continue
        if not enabled:
            os.environ[endpoint_variable] = f"http://127.0.0.1:{configured_port}"
            print(f"{provider}: not started (--no-emulators); expected at {os.environ[endpoint_variable]}")
            continue
        listen_socket = sockets[provider]
        os.environ[endpoint_variable] = f"http://127.0.0.1:{port_of(listen_socket)}"
        module = f"local.emulators.{provider}"
        knobs = json.dumps(
            {
                "receipt_callback_url": receipt_url(provider, api_port),
                "receipt_delay_seconds": 1.0,
                "reply_callback_url": reply_url(provider, api_port),
            }
        )
        argv = [sys.executable, "-m", module, "--host", bind, "--knobs", knobs]
        if provider == "huawei":
            argv += ["--receipt-format", huawei_receipt_format]
        children.start(f"{provider}-emulator", argv, os.environ, listen_socket, fork=True, stop_last=True)


def start_webhook_receiver(children: ProcessGroup, listen_socket: socket.socket | None, bind: str) -> None:
    """A customer's endpoint for `status_callback`: verifies each event's signature with GLOBESMS_WEBHOOK_SECRET
    (the same variable the sender signs with) and prints it. None: not started (--no-webhook-receiver)."""
    if listen_socket is None:
        return
    argv = [sys.executable, "-m", "local.webhook_receiver", "--host", bind]
    children.start("webhook-receiver", argv, os.environ, listen_socket, stop_last=True)


def host_count(stack: LocalStack, logical_id: str, concurrency: int) -> int:
    """How many execution environments a function gets: `concurrency`, but never more than the MaximumConcurrency
    of any of its SQS event sources (Lambda never runs more for that source); one for a function that reads a
    DynamoDB stream (Lambda runs one invocation per shard at a time, and moto's stream has one shard)."""
    if stack.template.stream_sources_of(logical_id):
        return 1
    caps = [s.maximum_concurrency for s in stack.template.event_sources_of(logical_id) if s.maximum_concurrency]
    return max(1, min([concurrency, *caps]))


def start_functions(
    children: ProcessGroup, stack: LocalStack, concurrency: int = 1, hosts_of: Mapping[str, int] | None = None
) -> dict[str, list[Child]]:
    """`host_count` processes per function, named `<LogicalId>`, `<LogicalId>#2`, ...; each polls the function's
    queues and serves its Invoke API on a port of its own. `hosts_of`: a function's own concurrency, instead of
    `concurrency` (a name the template does not have is refused)."""
    hosts_of = hosts_of or {}
    unknown = sorted(set(hosts_of) - set(stack.template.functions))
    if unknown:
        raise ValueError(f"--function-hosts names no function of the template: {', '.join(unknown)}")
    hosts: dict[str, list[Child]] = {}
    for logical_id in stack.template.functions:
        for n in range(1, host_count(stack, logical_id, hosts_of.get(logical_id, concurrency)) + 1):
            argv = [sys.executable, "-m", "local.lambda_host", logical_id]
            if n > 1:
                argv.append("--no-schedules")  # EventBridge invokes a function once per period, not once per host
            name = logical_id if n == 1 else f"{logical_id}#{n}"
            invoke_socket = reserve_port("127.0.0.1", 0)
            hosts.setdefault(logical_id, []).append(children.start(name, argv, os.environ, invoke_socket, fork=True))
    return hosts


def start_api(
    children: ProcessGroup, stack: LocalStack, hosts: dict[str, list[Child]], listen_socket: socket.socket
) -> Child:
    """The API server, in front of the function hosts with API events (started beside the hosts: it listens only
    once every host does, `--wait-for`)."""
    api_functions = sorted({route.function_id for route in stack.template.routes})
    argv = [sys.executable, "-m", "local.api_server"]
    for logical_id in api_functions:
        argv += [f"--function={logical_id}=http://127.0.0.1:{host.port}" for host in hosts[logical_id]]
    argv += [f"--wait-for=http://127.0.0.1:{host.port}" for group in hosts.values() for host in group]
    return children.start("api", argv, os.environ, listen_socket)


def webhook_lines(api_url: str, key: str, receiver_port: int | None) -> str:
    """The banner's webhook example: a message whose status events go to the local receiver."""
    if receiver_port is None:
        return "Webhooks       no receiver (--no-webhook-receiver): python -m local.webhook_receiver --port N\n"
    receiver = f"http://127.0.0.1:{receiver_port}"
    body = f'{{"to":"+85251234567","text":"hello","status_callback":"{receiver}/hooks"}}'
    return f"""Webhooks       {receiver}/hooks   (checks each event's signature; see the webhook-receiver lines)
  curl -s -X POST {api_url}/v1/messages -H "x-api-key: {key}" -H 'content-type: application/json' \\
       -d '{body}'
  curl -s {receiver}/_receiver/events      # what arrived: id, type, status, attempts, acknowledged
"""


def dynamodb_line() -> str:
    """The banner's line for DynamoDB's own endpoint, when it has one."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    return f"   (DynamoDB: {endpoint}, AWS_ENDPOINT_URL_DYNAMODB)" if endpoint else ""


def print_banner(stack: LocalStack, api_port: int, receiver_port: int | None = None) -> None:
    outputs = stack.outputs()
    api_url = f"http://127.0.0.1:{api_port}"
    key = api_key()
    named = sorted(n for n in api_keys().values() if n != DEFAULT_API_KEY_ID)  # GLOBESMS_API_KEYS: names only
    body = '{"to":["+85251234567","+6591234567","+447911123456"],"text":"hello"}'
    intake_body = '{"batch_id":"demo-1","to":"+85251234567","text":"hello from SQS"}'
    print(
        f"""
API            {api_url}   (routes: {", ".join(f"{r.method} {r.path}" for r in stack.template.routes)})
API key        {key}{f"   (and GLOBESMS_API_KEYS: {', '.join(named)})" if named else ""}
AWS endpoint   {os.environ["AWS_ENDPOINT_URL"]}{dynamodb_line()}
Intake queue   {outputs.get("IntakeQueueUrl", "-")}
Table          {outputs.get("TableName", "-")}

Try:
  curl -s -X POST {api_url}/v1/messages -H "x-api-key: {key}" -H 'content-type: application/json' \\
       -d '{body}'
  curl -s {api_url}/v1/batches/<batch_id> -H "x-api-key: {key}"
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={stack.context.region} \\
  aws --endpoint-url {os.environ["AWS_ENDPOINT_URL"]} sqs send-message \\
       --queue-url {outputs.get("IntakeQueueUrl", "<IntakeQueueUrl>")} --message-body '{intake_body}'
  curl -s {api_url}/v1/batches/demo-1 -H "x-api-key: {key}"

{webhook_lines(api_url, key, receiver_port)}
{READY_LINE} (Ctrl-C stops it)
""",
        flush=True,
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def start_stack(args: argparse.Namespace, children: ProcessGroup, sockets: dict[str, socket.socket]) -> list[Child]:
    """Start every child, the API server last (it listens once the function hosts do); wait until all listen. Returns
    the function hosts (the children `--restart-functions` starts again)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    api_port = port_of(sockets["api"])
    children.start_host_forks(os.environ)  # its imports overlap moto's: the function hosts are forked from it
    moto = start_moto_servers(children, sockets)  # importing moto takes a while: meanwhile the emulators start
    start_emulators(
        children,
        sockets,
        enabled=not args.no_emulators,
        bind=args.bind,
        api_port=api_port,
        emulator_ports=args.emulator_ports,
        huawei_receipt_format=args.huawei_receipt_format,
    )
    start_webhook_receiver(children, sockets.get("webhook-receiver"), args.bind)
    children.wait_until_listening(deadline - time.monotonic(), moto)
    os.environ.pop(PROVISIONED_ENV, None)  # one inherited from elsewhere names another stack's resources
    stack = LocalStack.deploy()  # after the emulators: their endpoints are parameters of the functions
    os.environ[PROVISIONED_ENV] = stack.resources.to_json()  # the hosts need not provision again (local/stack.py)
    hosts = start_functions(children, stack, args.function_concurrency, args.hosts_of)
    host_children = [host for group in hosts.values() for host in group]
    # The emulators and the webhook receiver (long up by now): the API opens once every other part of the stack
    # listens; it waits for the function hosts itself (--wait-for), importing meanwhile.
    children.wait_until_listening(
        deadline - time.monotonic(), [c for c in children.children if all(c is not h for h in host_children)]
    )
    start_api(children, stack, hosts, sockets["api"])
    children.wait_until_listening(deadline - time.monotonic())
    receiver = sockets.get("webhook-receiver")
    print_banner(stack, api_port, None if receiver is None else port_of(receiver))
    return host_children


def supervise(children: ProcessGroup, hosts: list[Child], *, restart_hosts: bool) -> int:
    """Until a child exits: a function host that timed out is started again (Lambda starts a new execution environment
    after a timeout), any host with `restart_hosts` (`--restart-functions`) too; any other exit stops the stack
    (returns 1)."""
    while True:
        exited = children.first_exited()
        if exited is None:
            time.sleep(0.2)
            continue
        code = exited.process.returncode
        if any(exited is host for host in hosts) and (restart_hosts or code == TIMED_OUT_EXIT_CODE):
            print(f"{exited.name} exited with code {code}: starting it again", flush=True)
            children.restart(exited)
            continue
        print(f"{exited.name} exited with code {code}: stopping the stack", flush=True)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    apply_local_defaults(os.environ)
    try:
        api_keys()  # a bad GLOBESMS_API_KEYS stops here, before anything starts
    except ValueError as exc:
        sys.exit(f"local.run: {exc}")
    for signum in (signal.SIGINT, signal.SIGTERM):  # explicitly: a shell may start us with SIGINT ignored
        signal.signal(signum, _interrupt)

    sockets: dict[str, socket.socket] = {}
    children = ProcessGroup(cwd=REPO_ROOT)
    # The stream readers' positions, kept across a function host's restarts for this run only (moto's streams end
    # with it too).
    positions = tempfile.TemporaryDirectory(prefix="globesms-stream-positions-", ignore_cleanup_errors=True)
    os.environ[STREAM_POSITIONS_ENV] = positions.name
    try:
        try:
            sockets = reserve_ports(args)  # the API's among them: taken, refusing connections until it serves
            ports = {name: port_of(sock) for name, sock in sockets.items()}
            forward_replies_to_the_receiver(os.environ, ports.get("webhook-receiver"))
            intake_belongs_to_the_default_key(os.environ)
            print(f"{PORTS_LINE} {json.dumps(ports)}", flush=True)
            hosts = start_stack(args, children, sockets)
        # ValueError: a --function-hosts name the template does not have
        except (RuntimeError, TimeoutError, OSError, ValueError) as exc:
            print(f"the local stack did not start: {exc}", file=sys.stderr, flush=True)
            return 1
        return supervise(children, hosts, restart_hosts=args.restart_functions)
    except KeyboardInterrupt:
        return 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the cleanup short
            signal.signal(signum, signal.SIG_IGN)
        print("stopping the local stack", flush=True)
        children.stop_all()
        for sock in sockets.values():  # those no child took (a start that failed half way)
            sock.close()
        positions.cleanup()


def ports_from_output(text: str) -> dict[str, int] | None:
    """The ports a runner reserved, from its output (`PORTS_LINE`); None until it printed them."""
    for line in text.splitlines():
        if line.startswith(PORTS_LINE):
            ports: dict[str, int] = json.loads(line[len(PORTS_LINE) :])
            return ports
    return None


if __name__ == "__main__":
    sys.exit(main())
