"""The whole pipeline in one process, driven the way AWS drives it, for `bench.aws_cost` to count what it costs.

- AWS is moto, with the template's table and queues (`local.stack.LocalStack`) and the secrets the deployed stack
  reads (provider credentials, receipt tokens, the webhook signing key), so Secrets Manager calls happen as deployed.
- The functions are the real handlers (`functions/*/app.py`), loaded with their template environment and called
  with the events Lambda would build: API Gateway proxy events for `POST /v1/messages` and the receipt pushes, SQS
  events for the queues. One warm instance per function (its own Powertools secret cache), no cold starts.
- SQS event sources are played as `local/pollers.py` plays them (ReceiveMessage for up to BatchSize messages, one
  invocation per receive, DeleteMessageBatch of the records that did not fail), one consumer per queue at a time;
  DelaySeconds are real (moto honours them), so deferred and retried packs come back when SQS would deliver them.
- The dispatchers use the deployed DynamoDB rate limiter at the default rates, on the wall clock.
- Providers are the emulators (`local/emulators/*`) reached through `httpx.WSGITransport`, answering after
  `provider_latency_ms`; they push delivery receipts in their own formats and batch sizes (Huawei: lists of up to
  50 to the URL configured on its application when `huawei_receipt_format` is "batch", as docs/deploy.md
  recommends; one form-encoded report per request to the `statusCallback` every send carries when "form") to a
  loopback collector, and each push becomes one receipts invocation, after every send is recorded.
- A share of recipients carries a `status_callback`; the webhook sender's event source takes each full batch of
  their events while receipts come in, and delivers them to a customer endpoint that answers 204 after
  `webhook_latency_ms`.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import httpx

from bench._cost_cpu import CpuSplit
from bench._cost_meter import UNBILLED, Meter, MotoTables, item_size
from globesms.models.outbound import ProviderName

ROOT = Path(__file__).resolve().parents[1]
PROVIDERS = (ProviderName.ALIYUN, ProviderName.TENCENT, ProviderName.HUAWEI)
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account

# The phases every AWS request is counted under (the meter's phase at the time of the request).
ACCEPT = "accept"  # POST /v1/messages: validation, records, packs on the provider queues
SPEND_LEDGER = "spend_ledger"  # the guardrails' spend reservation and month counters, made inside accept
DISPATCH = "dispatch"  # the provider queues' event sources and the dispatchers, to SUBMITTED
COUNTS_TO_SUBMITTED = "status_counts_stream_to_submitted"  # the stream's share for accept and dispatch writes
RECEIPTS = "receipts_to_delivered"
WEBHOOKS = "webhooks"
COUNTS_AFTER_SUBMITTED = "status_counts_stream_after_submitted"  # the stream's share for receipts' writes
RECONCILE = "reconcile"  # one scheduled run of ReconcileFunction once everything is final (a cost per run)
#: The reconcile run at the recipients' receipt deadlines: their deadline entries and the records they list, read
#: once each (every record final by then: nothing to query), a cost per recipient.
DEADLINES = "reconcile_at_deadlines"
PHASES = (
    ACCEPT,
    SPEND_LEDGER,
    DISPATCH,
    COUNTS_TO_SUBMITTED,
    RECEIPTS,
    WEBHOOKS,
    COUNTS_AFTER_SUBMITTED,
    DEADLINES,
    RECONCILE,
)
#: Every request made to take a recipient from the API request to SUBMITTED, the counters it updates included.
TO_SUBMITTED = (ACCEPT, SPEND_LEDGER, DISPATCH, COUNTS_TO_SUBMITTED)
STATUS_COUNTS = (COUNTS_TO_SUBMITTED, COUNTS_AFTER_SUBMITTED)
#: A phase that is a cost per scheduled run, not per recipient: shown, and left out of the per-recipient dollars.
PER_RUN = (RECONCILE,)

#: One spec per provider and per callback choice; routing (routes.json as shipped) picks the provider: free text
#: goes to Alibaba, a numeric template id to Tencent, another template id to Huawei. NOTIFY: Alibaba's batch API
#: takes NOTIFY and MKT (OTP goes one number per call).
SPEC_BODIES: dict[ProviderName, dict[str, Any]] = {
    ProviderName.ALIYUN: {"text": "Acme: your order 48213 has shipped and arrives tomorrow. Track it in the app."},
    ProviderName.TENCENT: {"template": {"id": "1234567", "params": {"code": "48213"}}},
    ProviderName.HUAWEI: {"template": {"id": "8ff55eac1d0b478ab3c06c3c6a492300", "params": {"code": "48213"}}},
}
CALLBACK_URL = "https://hooks.customer.example/globesms/status"
FUNCTION_FOLDERS = {
    "SendApiFunction": "send_api",
    "AliyunDispatchFunction": "dispatch",
    "TencentDispatchFunction": "dispatch",
    "HuaweiDispatchFunction": "dispatch",
    "ReceiptsFunction": "receipts",
    "WebhookSenderFunction": "webhooks",
    "StatusCountsFunction": "status_counts",
    "ReconcileFunction": "reconcile",
}
DISPATCHERS = {p: f"{p.value.capitalize()}DispatchFunction" for p in PROVIDERS}
POLL_PAUSE_SECONDS = 0.2  # between empty rounds while deferred packs wait out their DelaySeconds
DRAIN_TIMEOUT_SECONDS = 600.0


@dataclass(frozen=True)
class Invocation:
    function: str
    phase: str
    wall_seconds: float  # the handler call, in this process (shared with other work on a busy machine)
    cpu_seconds: float  # CPU time of this process during the call (moto standing in for AWS included)
    own_cpu_seconds: float  # of which the function's own work (bench._cost_cpu), at one full core
    aws_cpu_seconds: float  # of which moto's answers, standing in for the AWS round trips
    waited_seconds: float  # the latency the provider and customer endpoints were told to answer with
    log_bytes: int  # what the handler wrote to stdout/stderr (Powertools logs, EMF metrics)
    log_lines: int
    records: int  # SQS records, or receipts in a push


@dataclass
class PipelineRun:
    recipients: int
    accepted: int
    with_callback: int
    statuses: dict[str, int]
    webhooks_delivered: int
    receipt_pushes: dict[str, int]
    receipts: dict[str, int]
    packs: dict[str, int]  # pack deliveries per provider (deferred and retried packs included)
    provider_calls: dict[str, int]
    invocations: list[Invocation]
    api_requests: dict[str, int]
    meter: Meter
    memory_mb: dict[str, int]
    record_bytes: dict[str, int] = field(default_factory=dict)  # message items once DELIVERED (1 WRU per KB)
    wall_seconds: dict[str, float] = field(default_factory=dict)
    stream_records: dict[str, int] = field(default_factory=dict)  # message changes handed to StatusCountsFunction


# --------------------------------------------------------------------------------------------- helpers


class CountingStream(io.TextIOBase):
    """Where a handler's output goes during an invocation: counted (bytes and lines), not kept."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lines = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.bytes += len(text.encode())
        self.lines += text.count("\n")
        return len(text)


@contextmanager
def environment(values: Mapping[str, str], *, drop_prefixes: Sequence[str] = ()) -> Iterator[None]:
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(tuple(drop_prefixes)):
            del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def load_handler(logical_id: str, folder: str) -> ModuleType:
    """functions/<folder>/app.py as a module of its own (the three dispatchers share code, not module state)."""
    name = f"bench_cost_{logical_id}"
    spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / folder / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def api_event(
    path: str, resource: str, body: str, content_type: str, stage: str, **path_parameters: str
) -> dict[str, Any]:
    """A REST API proxy event (payload 1.0), as API Gateway hands it to the function."""
    now = time.time()
    return {
        "resource": resource,
        "path": path,
        "httpMethod": "POST",
        "headers": {"content-type": content_type, "Host": "api.example.com"},
        "multiValueHeaders": {"content-type": [content_type], "Host": ["api.example.com"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": "POST",
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "accountId": ACCOUNT_ID,
            "apiId": "benchapi",
            "identity": {"apiKey": None, "apiKeyId": None, "sourceIp": "203.0.113.9", "userAgent": "bench"},
            "requestTimeEpoch": int(now * 1000),
        },
        "body": body,
        "isBase64Encoded": False,
    }


def send_body(recipients: int, webhook_share: float) -> tuple[dict[str, Any], int]:
    """`recipients` spread evenly over the providers; in each provider's share, `webhook_share` of them with a
    status_callback. Distinct Hong Kong mobile numbers (every provider carries them)."""
    specs = []
    with_callback = 0
    for position, provider in enumerate(PROVIDERS):
        count = recipients // len(PROVIDERS) + (1 if position < recipients % len(PROVIDERS) else 0)
        numbers = [f"+8525{position + 1}{i:06d}" for i in range(count)]
        called = round(count * webhook_share)
        with_callback += called
        for group, extra in ((numbers[:called], {"status_callback": CALLBACK_URL}), (numbers[called:], {})):
            if group:
                specs.append({"to": group, "type": "NOTIFY", **SPEC_BODIES[provider], **extra})
    return {"messages": specs}, with_callback


def spend_ledger_request(name: str, params: Mapping[str, Any]) -> bool:
    """Whether a DynamoDB request reads or writes the spend ledger's items (a batch's reservation marker or a
    month's counter, told apart by their sort keys): the meter counts those under SPEND_LEDGER."""
    from globesms.aws.dynamodb_spend import COUNTER_SK, MARKER_SK

    if not name.startswith("dynamodb."):
        return False
    keys = [params.get("Key"), params.get("Item")]
    keys += [next(iter(action.values())).get("Key") for action in params.get("TransactItems", [])]
    keys += [next(iter(action.values())).get("Item") for action in params.get("TransactItems", [])]
    for requests in params.get("RequestItems", {}).values():
        if isinstance(requests, Mapping):  # BatchGetItem: {"Keys": [...]}
            keys += requests.get("Keys", [])
        else:  # BatchWriteItem: [{"PutRequest": {"Item": ...}} | {"DeleteRequest": {"Key": ...}}]
            keys += [body.get("Item") or body.get("Key") for r in requests for body in r.values()]
    return any(isinstance(k, Mapping) and (k.get("sk") or {}).get("S") in (MARKER_SK, COUNTER_SK) for k in keys)


# --------------------------------------------------------------------------------------------- receipt pushes


@dataclass(frozen=True)
class Push:
    path: str
    content_type: str
    body: bytes


class PushCollector:
    """The receipts URL the emulators push to: keeps each push (path, type, body) and answers 200."""

    def __init__(self) -> None:
        from local.httpd import QuietHandler, serve_in_background

        self.pushes: list[Push] = []
        lock = threading.Lock()
        pushes = self.pushes

        class Handler(QuietHandler):
            # Headers and body leave in two writes: without TCP_NODELAY each keep-alive push would wait ~40 ms for
            # a delayed ACK (Nagle), and the pushers would fall minutes behind.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                push = Push(self.path, self.headers.get("content-type", ""), self.read_body())
                with lock:
                    pushes.append(push)
                self.respond(200, b"{}", {"Content-Type": "application/json"})

        self._server = serve_in_background(Handler, 0)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --------------------------------------------------------------------------------------------- the run


class Pipeline:
    def __init__(
        self,
        meter: Meter,
        *,
        provider_latency_ms: float,
        webhook_latency_ms: float,
        huawei_receipt_format: str,
        cpu: CpuSplit,
    ) -> None:
        from local.emulators import aliyun, huawei, tencent
        from local.emulators.common import Knobs
        from local.settings import LOCAL_ENV_DEFAULTS
        from local.stack import LocalStack

        self.meter = meter
        self.cpu = cpu  # installed by run_pipeline: moto's answers and pool threads measured
        self.deployed = LocalStack.deploy(environ={"AWS_DEFAULT_REGION": REGION})
        self.template = self.deployed.template
        refs = self.deployed.context.refs
        self.table_name = refs["MessagesTable"]
        self.queue_urls = {p: refs[f"{p.value.capitalize()}Queue"] for p in PROVIDERS}
        self.webhook_queue_url = refs["WebhookQueue"]
        self.stage = str(self.template.parameters["Stage"].default)
        self.sqs: Any = boto3.client("sqs", region_name=REGION)

        # The deployed stack reads credentials and receipt tokens from one secret per provider, and the webhook key
        # from its own secret; the local stack blanks those names. Here they are set and the secrets exist.
        self.collector = PushCollector()
        self.tokens = {p: LOCAL_ENV_DEFAULTS[f"GLOBESMS_{p.upper()}_RECEIPT_TOKEN"] for p in PROVIDERS}
        receipt_urls = {p: f"{self.collector.base_url}/v1/receipts/{p.value}/{self.tokens[p]}" for p in PROVIDERS}
        secrets = boto3.client("secretsmanager", region_name=REGION)
        self.secret_names: dict[str, str] = {}
        for provider in PROVIDERS:
            name = str(self.template.parameters[f"{provider.value.capitalize()}SecretName"].default)
            values = {k: v for k, v in LOCAL_ENV_DEFAULTS.items() if k.startswith(f"GLOBESMS_{provider.upper()}_")}
            if provider is ProviderName.HUAWEI and huawei_receipt_format == "form":
                # Each send carries the receipt URL; in "batch" none does and Huawei pushes to the URL configured on
                # the application (the emulator's receipt_callback_url), as docs/deploy.md recommends.
                values["GLOBESMS_HUAWEI_STATUS_CALLBACK"] = receipt_urls[provider]
            secrets.create_secret(Name=name, SecretString=json.dumps(values))
            self.secret_names[f"GLOBESMS_{provider.upper()}_SECRET_NAME"] = name
            # Each receipt token in a secret of its own, as deployed (docs/security-edges.md).
            token_name = str(self.template.parameters[f"{provider.value.capitalize()}ReceiptTokenSecretName"].default)
            token = {f"GLOBESMS_{provider.upper()}_RECEIPT_TOKEN": self.tokens[provider]}
            secrets.create_secret(Name=token_name, SecretString=json.dumps(token))
            self.secret_names[f"GLOBESMS_{provider.upper()}_RECEIPT_SECRET_NAME"] = token_name
        webhook_secret = str(self.template.parameters["WebhookSecretName"].default)
        secrets.create_secret(
            Name=webhook_secret,
            SecretString=json.dumps({"GLOBESMS_WEBHOOK_SECRET": LOCAL_ENV_DEFAULTS["GLOBESMS_WEBHOOK_SECRET"]}),
        )

        modules = {ProviderName.ALIYUN: aliyun, ProviderName.TENCENT: tencent, ProviderName.HUAWEI: huawei}
        from globesms.dispatch.rate_limits import configured_rate_limits

        limits = {op: float(n) for op, n in configured_rate_limits().items()}
        self.emulators = {
            p: modules[p].create_app(
                Knobs(
                    latency_ms=provider_latency_ms,
                    rate_limits=dict(limits),  # the providers' own limits: the dispatchers must keep within them
                    receipt_callback_url=receipt_urls[p],
                    receipt_delay_seconds=0.0,
                    seed=7,
                ),
                dict(LOCAL_ENV_DEFAULTS),
                **({"receipt_format": huawei_receipt_format} if p is ProviderName.HUAWEI else {}),
            )
            for p in PROVIDERS
        }
        self.webhook_latency_ms = webhook_latency_ms
        self.provider_latency_ms = provider_latency_ms
        self.provider_http_calls = 0
        self.webhooks_delivered = 0
        self._webhook_lock = threading.Lock()
        self.invocations: list[Invocation] = []
        self.api_requests: dict[str, int] = {}
        self.handlers: dict[str, ModuleType] = {}
        self._secret_caches: dict[str, Any] = {}

    # --- functions --------------------------------------------------------------------------------------

    def function_environment(self) -> dict[str, str]:
        """What the functions' template environments hold between them (table, queues, secrets' names)."""
        merged: dict[str, str] = {}
        for logical_id in FUNCTION_FOLDERS:
            merged.update(self.deployed.function_environment(self.template.functions[logical_id]))
        for name in ("AWS_ENDPOINT_URL", "GLOBESMS_PROVIDER", "AWS_LAMBDA_FUNCTION_NAME", "_HANDLER"):
            merged.pop(name, None)
        merged.update(self.secret_names)
        return merged

    def load_functions(self) -> None:
        for logical_id, folder in FUNCTION_FOLDERS.items():
            provider = next((p for p, f in DISPATCHERS.items() if f == logical_id), None)
            if provider is not None:
                os.environ["GLOBESMS_PROVIDER"] = provider.value  # read once, when the module is imported
            with warnings.catch_warnings():
                # Each dispatcher module sets the shared Metrics' provider dimension on import; invoke() sets the
                # right one before each invocation.
                warnings.simplefilter("ignore")
                self.handlers[logical_id] = load_handler(logical_id, folder)
            if provider is not None:
                built = cache(self._provider_factory(provider))  # one client per dispatcher, as a warm one keeps
                self.handlers[logical_id]._provider = lambda calls_end_by=None, built=built: built()  # type: ignore[attr-defined]
        os.environ.pop("GLOBESMS_PROVIDER", None)
        transport = httpx.MockTransport(self.cpu.outside("endpoints", self._customer_endpoint))
        customer = httpx.Client(transport=transport, timeout=httpx.Timeout(5.0, connect=2.0), follow_redirects=False)
        sender = self.handlers["WebhookSenderFunction"]

        def send_to_customer(delivery: Any) -> None:
            # As the handler's own `_send`, through the mock customer endpoint instead of a connection of its own.
            sender.deliver(delivery, secret=sender.webhook_secrets(), now=sender.utc_now(), http=customer)

        sender._send = send_to_customer
        reconcile = self.handlers["ReconcileFunction"]
        reconcile.build_provider = lambda provider: self._provider_factory(provider)()  # the emulators' queries
        self._stream_reader = self._status_counts_reader()

    def _status_counts_reader(self) -> Any:
        """StatusCountsFunction's event source over moto's stream of the messages table (`local.streams`: batches
        of up to BatchSize, the template's filter), from the stream's start."""
        from local.streams import StreamReader

        source = next(s for s in self.template.stream_event_sources if s.function_id == "StatusCountsFunction")
        with self.meter.phase_of(UNBILLED):
            arn = boto3.client("dynamodb", region_name=REGION).describe_table(TableName=self.table_name)["Table"][
                "LatestStreamArn"
            ]
        streams = boto3.client(
            "dynamodbstreams", region_name=REGION, endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com"
        )

        def invoke(event: dict[str, Any]) -> None:
            with self.meter.phase_of(self._stream_phase):
                self.invoke("StatusCountsFunction", event, records=len(event["Records"]))

        self._stream_phase = UNBILLED
        return StreamReader(streams, arn, source, invoke, from_start=True)

    def drain_stream(self, phase: str) -> int:
        """Hand every message change since the last drain to StatusCountsFunction, its requests counted under
        `phase`. The stream reads themselves are not billed: AWS does not charge the GetRecords calls Lambda makes
        for a DynamoDB trigger. Returns the records handed over."""
        self._stream_phase = phase
        with self.meter.phase_of(UNBILLED):
            return int(self._stream_reader.read())

    def counts_of(self, batch_id: str) -> dict[str, int]:
        """The batch's counts item as the stream left it (read from moto directly: the bench's check)."""
        from globesms.aws.message_items import COUNTS_SK, batch_pk

        item = self.meter.tables.item(self.table_name, {"pk": {"S": batch_pk(batch_id)}, "sk": {"S": COUNTS_SK}})
        return {
            name.removeprefix("n_"): int(value["N"])
            for name, value in (item or {}).items()
            if name.startswith("n_") and int(value["N"])
        }

    def reconcile(self) -> Any:
        """One scheduled run of ReconcileFunction (the event EventBridge sends)."""
        event = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
        return self.invoke("ReconcileFunction", event, records=0)

    def reconcile_at(self, deadlines: Sequence[int]) -> Any:
        """The reconcile run when these deadlines have passed, as in a steady state where a run every minute had
        read everything due before the first of them (the watermark put just before it, unbilled)."""
        from globesms.aws.dynamodb_deadlines import DynamoDBReceiptDeadlines

        with self.meter.phase_of(UNBILLED):
            DynamoDBReceiptDeadlines(self.table_name).set_watermark(min(deadlines) - 1)
        handler = self.handlers["ReconcileFunction"]
        clock = handler.utc_now
        handler.utc_now = lambda: datetime.fromtimestamp(max(deadlines), UTC)
        try:
            return self.reconcile()
        finally:
            handler.utc_now = clock

    def _provider_factory(self, provider: ProviderName) -> Callable[[], Any]:
        """As `build_provider` (credentials from the provider's secret), over the emulator's WSGI app."""

        def build() -> Any:
            from globesms.providers import provider_environment
            from globesms.providers.aliyun.client import AliyunClient
            from globesms.providers.aliyun.client import settings_from_environment as aliyun_settings
            from globesms.providers.huawei.client import HuaweiClient
            from globesms.providers.huawei.client import settings_from_environment as huawei_settings
            from globesms.providers.tencent.client import TencentSettings, TencentSmsClient

            env = {
                **provider_environment(provider),
                f"GLOBESMS_{provider.upper()}_ENDPOINT": self._emulator_url(provider),
            }
            http = httpx.Client(
                transport=httpx.WSGITransport(app=self.cpu.outside("endpoints", self.emulators[provider])),
                event_hooks={"request": [self._count_provider_call]},
            )
            if provider is ProviderName.ALIYUN:
                return AliyunClient(aliyun_settings(env), http=http)
            if provider is ProviderName.TENCENT:
                return TencentSmsClient(TencentSettings.from_environment(env), http=http)
            return HuaweiClient(huawei_settings(env), http=http)

        return build

    def _count_provider_call(self, request: httpx.Request) -> None:
        self.provider_http_calls += 1

    @staticmethod
    def _emulator_url(provider: ProviderName) -> str:
        return f"http://{provider.value}.emulator.test"

    def _customer_endpoint(self, request: httpx.Request) -> httpx.Response:
        time.sleep(self.webhook_latency_ms / 1000)
        with self._webhook_lock:
            self.webhooks_delivered += 1
        return httpx.Response(204)

    def invoke(self, logical_id: str, event: dict[str, Any], *, records: int) -> Any:
        from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

        from globesms.observability import logger, metrics
        from local.lambda_host import LocalLambdaContext
        from local.stack import function_arn, function_name

        function = self.template.functions[logical_id]
        context = LocalLambdaContext(
            function_name=function_name(logical_id),
            invoked_function_arn=function_arn(logical_id, self.deployed.context),
            memory_limit_in_mb=function.memory_size,
            timeout_seconds=function.timeout,
        )
        # One warm instance per function: its own secret cache (Powertools keeps one per process).
        DEFAULT_PROVIDERS.pop("secrets", None)
        if logical_id in self._secret_caches:
            DEFAULT_PROVIDERS["secrets"] = self._secret_caches[logical_id]
        metrics.clear_default_dimensions()
        provider = next((p for p, f in DISPATCHERS.items() if f == logical_id), None)
        if provider is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "already added": the dimension set keeps the last dispatcher's
                metrics.set_default_dimensions(provider=provider.value)
        stream = CountingStream()
        previous = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
        provider_calls, deliveries = self.provider_http_calls, self.webhooks_delivered
        try:
            with redirect_stdout(stream), redirect_stderr(stream):
                started, cpu_started = time.perf_counter(), time.process_time()
                with self.cpu.invocation() as split:
                    result = self.handlers[logical_id].lambda_handler(event, context)
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        finally:
            logger.registered_handler.setStream(previous)  # type: ignore[attr-defined]
            if "secrets" in DEFAULT_PROVIDERS:
                self._secret_caches[logical_id] = DEFAULT_PROVIDERS["secrets"]
        # Provider calls are made one after another; a batch's webhooks are delivered in parallel.
        waited = (self.provider_http_calls - provider_calls) * self.provider_latency_ms / 1000
        if self.webhooks_delivered > deliveries:
            waited += self.webhook_latency_ms / 1000
        [used] = split
        self.invocations.append(
            Invocation(
                logical_id,
                self.meter.phase,
                wall,
                cpu,
                used.own_seconds,
                used.aws_seconds,
                waited,
                stream.bytes,
                stream.lines,
                records,
            )
        )
        return result

    # --- event sources ----------------------------------------------------------------------------------

    def drain(self, logical_id: str, queue_url: str) -> int:
        """One round of the function's SQS event source over `queue_url`: receive, invoke, delete what succeeded.
        Returns how many messages it received (0: nothing visible)."""
        from local.pollers import sqs_event

        source = next(s for s in self.template.event_sources_of(logical_id) if s.enabled)
        messages: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(source.batch_size, 10),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        arn = self.deployed.resources.queue_arns[source.queue_id]
        response = self.invoke(logical_id, sqs_event(messages, arn, REGION), records=len(messages))
        failed = {str(f.get("itemIdentifier")) for f in (response or {}).get("batchItemFailures", [])}
        if failed:
            # No faults are injected: a failed record is a bench bug, not a cost to count.
            raise RuntimeError(f"{logical_id} failed records {sorted(failed)}")
        self.sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        return len(messages)

    def queue_depth(self, queue_url: str) -> int:
        """Visible, in flight and delayed messages (asked as the bench, not billed)."""
        with self.meter.phase_of(UNBILLED):
            attributes = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        return sum(
            int(attributes.get(name, 0))
            for name in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )

    def run_until_empty(self, sources: Sequence[tuple[str, str]]) -> None:
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while True:
            received = sum(self.drain(logical_id, url) for logical_id, url in sources)
            if received:
                continue
            if all(self.queue_depth(url) == 0 for _, url in sources):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"queues not drained: {[(i, self.queue_depth(u)) for i, u in sources]}")
            time.sleep(POLL_PAUSE_SECONDS)

    # --- the phases -------------------------------------------------------------------------------------

    def accept(self, body: dict[str, Any]) -> dict[str, Any]:
        event = api_event("/v1/messages", "/v1/messages", json.dumps(body), "application/json", self.stage)
        self.api_requests["POST /v1/messages"] = self.api_requests.get("POST /v1/messages", 0) + 1
        response = self.invoke("SendApiFunction", event, records=0)
        if response.get("statusCode") != 202:
            raise RuntimeError(f"accept answered {response.get('statusCode')}: {response.get('body')}")
        answer: dict[str, Any] = json.loads(response["body"])
        return answer

    def wait_for_receipts(self, expected: int, timeout: float = 120.0) -> dict[str, list[tuple[Push, int]]]:
        """The pushes, by provider, each with its number of reports, once `expected` reports have arrived."""
        deadline = time.monotonic() + timeout
        by_provider: dict[str, list[tuple[Push, int]]] = {p.value: [] for p in PROVIDERS}
        seen = 0
        received = 0
        while True:
            for push in self.collector.pushes[seen:]:
                provider = push.path.split("/")[3]
                module = importlib.import_module(f"globesms.providers.{provider}.receipts")
                reports = len(module.parse_push(push.body, push.content_type).reports)
                by_provider[provider].append((push, reports))
                received += reports
                seen += 1
            if received >= expected:
                return by_provider
            if time.monotonic() > deadline:
                raise RuntimeError(f"{received} of {expected} receipts pushed in {timeout:g} s")
            time.sleep(0.1)

    def push_receipts(self, by_provider: Mapping[str, list[tuple[Push, int]]]) -> None:
        for provider, items in by_provider.items():
            for push, reports in items:
                path = push.path
                event = api_event(
                    path,
                    "/v1/receipts/{provider}/{token}",
                    push.body.decode(),
                    push.content_type,
                    self.stage,
                    provider=provider,
                    token=path.rsplit("/", 1)[1],
                )
                self.api_requests["POST /v1/receipts"] = self.api_requests.get("POST /v1/receipts", 0) + 1
                response = self.invoke("ReceiptsFunction", event, records=reports)
                if response.get("statusCode") != 200:
                    raise RuntimeError(f"receipts answered {response.get('statusCode')}: {response.get('body')}")
                self.send_full_webhook_batches()

    def send_full_webhook_batches(self) -> None:
        """The webhook sender's event source runs while receipts arrive, and takes each full batch as soon as it
        is there (as at a steady high volume). Also what keeps the queue short: moto's SQS checks every message
        in a queue on each call, so a queue of thousands makes each send and receive slow."""
        source = next(s for s in self.template.event_sources_of("WebhookSenderFunction") if s.enabled)
        with self.meter.phase_of(WEBHOOKS):
            while self.queue_depth(self.webhook_queue_url) >= source.batch_size:
                self.drain("WebhookSenderFunction", self.webhook_queue_url)

    def records(self, message_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Each message's item, read from moto's table directly: the bench's check, not the pipeline's work
        (through the store, moto would serialise every record of the run twice over, for minutes)."""
        from globesms.aws.message_items import batch_pk, message_sk
        from globesms.models.records import split_message_id

        items = []
        for message_id in message_ids:
            parts = split_message_id(message_id)
            assert parts is not None
            key = {"pk": {"S": batch_pk(parts[0])}, "sk": {"S": message_sk(parts[1])}}
            items.append(self.meter.tables.item(self.table_name, key))
        return items

    def statuses(self, message_ids: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.records(message_ids):
            status = "MISSING" if item is None else str(item["status"]["S"])
            counts[status] = counts.get(status, 0) + 1
        return counts

    def provider_calls(self) -> dict[str, int]:
        calls: dict[str, int] = {}
        for app in self.emulators.values():
            stats = app.test_client().get("/_emulator/stats?sent=false").get_json()
            for operation, seconds in stats["calls_per_second"].items():
                calls[operation] = calls.get(operation, 0) + sum(seconds.values())
        return calls

    def close(self) -> None:
        self.collector.close()


def run_pipeline(
    recipients: int,
    *,
    webhook_share: float,
    provider_latency_ms: float,
    webhook_latency_ms: float,
    check_index_queries: bool = False,
    huawei_receipt_format: str = "form",
) -> PipelineRun:
    """Accept `recipients` in one API request and take every one of them to DELIVERED (and its webhook event, if
    it has a status_callback), counting every AWS request by phase. `check_index_queries`: moto answers the
    `ProviderRef` queries and the meter's own index is checked against it (slow past a few hundred recipients);
    otherwise the meter answers them (`Meter._answer_index_query`). `huawei_receipt_format`: "form", one report
    per request (the Status Report API, to each send's statusCallback), or "batch", up to 50 per push (the Batch
    Status Reports API, to the URL configured on the Huawei application: docs/deploy.md)."""
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
    from moto import mock_aws

    from globesms.aws import clients, wiring
    from globesms.config import settings
    from local import moto_speedups

    # The moto the tests and the local stack run: its writes atomic, as DynamoDB's are. Without, the adapters'
    # write threads raced inside moto's in-process backend: two stream records got one sequence number (192 in a
    # 10,000-recipient run), and the status counts, which count each change once by its sequence number, came out
    # one change off (the run's own check refused them, in two runs of three).
    moto_speedups.apply()
    base = {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here: traces are priced from the sampling rate
        "POWERTOOLS_METRICS_DISABLED": "false",  # EMF lines are log volume, as deployed
        "POWERTOOLS_DEV": "false",
    }
    cpu = CpuSplit()
    with environment(base, drop_prefixes=("GLOBESMS_", "AWS_ENDPOINT_URL", "AWS_PROFILE")), mock_aws():
        meter = Meter(
            MotoTables(ACCOUNT_ID, REGION),
            answer_index_queries=not check_index_queries,
            carve_outs={SPEND_LEDGER: spend_ledger_request},
            cpu=cpu,
        )
        with meter.installed(), cpu.installed():
            DEFAULT_PROVIDERS.clear()
            clients.reset()
            wiring.reset()
            settings.cache_clear()
            pipeline = Pipeline(
                meter,
                provider_latency_ms=provider_latency_ms,
                webhook_latency_ms=webhook_latency_ms,
                huawei_receipt_format=huawei_receipt_format,
                cpu=cpu,
            )
            try:
                with environment(pipeline.function_environment()):
                    clients.reset()
                    wiring.reset()
                    settings.cache_clear()
                    pipeline.load_functions()
                    return _run(pipeline, recipients, webhook_share)
            finally:
                pipeline.close()
                DEFAULT_PROVIDERS.clear()
                clients.reset()
                wiring.reset()
                settings.cache_clear()


def _run(pipeline: Pipeline, recipients: int, webhook_share: float) -> PipelineRun:
    meter = pipeline.meter
    body, with_callback = send_body(recipients, webhook_share)
    walls: dict[str, float] = {}

    started = time.perf_counter()
    with meter.phase_of(ACCEPT):
        answer = pipeline.accept(body)
    with meter.phase_of(DISPATCH):
        pipeline.run_until_empty([(DISPATCHERS[p], pipeline.queue_urls[p]) for p in PROVIDERS])
    stream_records = {COUNTS_TO_SUBMITTED: pipeline.drain_stream(COUNTS_TO_SUBMITTED)}
    walls["accept_to_submitted"] = time.perf_counter() - started
    message_ids = [m["id"] for m in answer["messages"]]
    submitted = pipeline.statuses(message_ids)
    if submitted != {"SUBMITTED": len(message_ids)}:
        raise RuntimeError(f"not every recipient SUBMITTED: {submitted}")
    batch_id = str(answer["batch_id"])
    if pipeline.counts_of(batch_id) != submitted:
        raise RuntimeError(f"status counts {pipeline.counts_of(batch_id)} after the stream, records {submitted}")

    started = time.perf_counter()
    pushes = pipeline.wait_for_receipts(len(message_ids))
    with meter.phase_of(RECEIPTS):
        pipeline.push_receipts(pushes)
    statuses = pipeline.statuses(message_ids)
    if statuses != {"DELIVERED": len(message_ids)}:
        raise RuntimeError(f"not every recipient DELIVERED: {statuses}")
    sizes = sorted(item_size(item) for item in pipeline.records(message_ids))
    with meter.phase_of(WEBHOOKS):
        pipeline.run_until_empty([("WebhookSenderFunction", pipeline.webhook_queue_url)])
    walls[f"{RECEIPTS}+{WEBHOOKS}"] = time.perf_counter() - started
    stream_records[COUNTS_AFTER_SUBMITTED] = pipeline.drain_stream(COUNTS_AFTER_SUBMITTED)
    if pipeline.counts_of(batch_id) != statuses:
        raise RuntimeError(f"status counts {pipeline.counts_of(batch_id)} after the stream, records {statuses}")
    with meter.phase_of(RECONCILE):
        reconciled = pipeline.reconcile()
    if reconciled.get("examined"):
        raise RuntimeError(f"reconcile found messages due although every receipt arrived: {reconciled}")
    deadlines = [int(item["receipt_due_at"]["N"]) for item in pipeline.records(message_ids) if item]
    with meter.phase_of(DEADLINES):
        at_deadlines = pipeline.reconcile_at(deadlines)
    if at_deadlines.get("checked") != len(message_ids) or at_deadlines.get("examined"):
        raise RuntimeError(f"the run at the deadlines read {at_deadlines}, {len(message_ids)} records expected")
    if meter.index_mismatches:
        raise RuntimeError(f"index queries answered differently from moto: {meter.index_mismatches[:3]}")
    if pipeline.webhooks_delivered != with_callback:
        raise RuntimeError(f"{pipeline.webhooks_delivered} webhook events delivered, {with_callback} expected")

    packs: dict[str, int] = {}
    for invocation in pipeline.invocations:
        if invocation.function in DISPATCHERS.values():
            packs[invocation.function] = packs.get(invocation.function, 0) + invocation.records
    return PipelineRun(
        recipients=recipients,
        accepted=int(answer["accepted"]),
        with_callback=with_callback,
        statuses=statuses,
        webhooks_delivered=pipeline.webhooks_delivered,
        receipt_pushes={p: len(items) for p, items in pushes.items()},
        receipts={p: sum(n for _, n in items) for p, items in pushes.items()},
        packs=packs,
        provider_calls=pipeline.provider_calls(),
        invocations=list(pipeline.invocations),
        api_requests=dict(pipeline.api_requests),
        meter=meter,
        memory_mb={i: pipeline.template.functions[i].memory_size for i in FUNCTION_FOLDERS},
        record_bytes={"min": sizes[0], "median": sizes[len(sizes) // 2], "max": sizes[-1]},
        wall_seconds=walls,
        stream_records=stream_records,
    )
