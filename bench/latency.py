"""Figure 7, OTP latency: from `POST /v1/messages` (one recipient, type OTP) to the provider emulator receiving the
signed request, beside a floor measured in the same run on the same moto and emulator.

- **Pipeline**: requests of one HK number each (Alibaba, SendMessageToGlobe) sent open-loop at `RATE_PER_SECOND`:
  each is started at its scheduled second, whether or not the previous ones were answered, so a slow stretch shows
  as latency rather than as a lower rate. A sample's latency is the emulator's arrival time of the request that
  carried its message id (the TaskId echo; `/_emulator/stats?received=true`) minus the time the POST was started.
- **Floor**: the hops no design can avoid, done by a bare script at the same rate: one conditional PutItem on the
  messages table, one SendMessage to a queue of its own, one ReceiveMessage (long poll) on it and one signed
  SendMessageToGlobe to the emulator by the real client (`globesms.providers.aliyun`), with the received message's
  id as TaskId. Its DeleteMessage comes after the provider call, off the clock.
- **Interleaved**: the window is cut into blocks of `BLOCK_SECONDS`, floor and pipeline in turn, and each block
  waits until the previous one has reached the emulator, so the machine's noise (2 shared cores) falls on both alike
  and neither loads moto while the other is measured.
- **Where the time goes** (`detail.pipeline_stages`): with LOCAL_SQS_TRACE_FILE the local pollers write when SQS
  took each pack (SentTimestamp), when their ReceiveMessage returned it and when the dispatcher was invoked, so a
  sample splits into accept (POST to SendMessage), queue wait (SendMessage to ReceiveMessage's answer), hand-off
  (to the handler's start, after waiting for the host) and dispatch (the handler's start to the emulator);
  `invocation` is the whole invocation, `answer` the API's answer time.
- **Warm-up**: before the first block, rounds of as many requests as there are hosts at once until every Alibaba
  dispatch host has served one (the trace names the host), so that no host's first invocation (lazy imports, new
  clients and connections) is a sample: cold starts are figure 2.
- Receipts are off (`push_receipts`): they are not part of sending and would load moto for the pipeline only.
- **Stack**: `FUNCTION_CONCURRENCY` hosts per function (`--function-concurrency`; Lambda runs up to 5 dispatchers at
  once, the template's MaximumConcurrency, and as many API environments as requests need). The CPU seconds each
  part of the stack used during the pipeline blocks, per request, and the machine's load average are in `detail`:
  the 2 cores are shared, and a stack short of CPU shows as queueing, not as slow code.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._stack import DISPATCH_FUNCTIONS, PROVIDER_QUEUES, Stack, StackFailed, running_stack, wait_until
from bench._stack_load import Numbers, seed_otp_history
from bench.figures import Figure
from globesms.models.outbound import MessageType, OutboundSms
from globesms.providers.aliyun.client import AliyunClient, AliyunSettings
from local.settings import LOCAL_ENV_DEFAULTS

RATE_PER_SECOND = 20
WINDOW_SECONDS = 60  # of pipeline load, and as much of floor load
BLOCK_SECONDS = 10
QUICK = {"rate": 4, "window": 4, "block": 2, "hosts": 1}  # hosts: one per function, as `make run`
OTP_REQUEST = {"text": "Your code is 123456", "type": "OTP"}
PROVIDER = "aliyun"  # where an OTP text to an HK number is routed (routes.json)
FLOOR_QUEUE = "bench-latency-floor"
FLOOR_PK_PREFIX = "BENCH#latency-floor#"
SETTLE_DEADLINE_SECONDS = 120  # for a block's last requests to reach the emulator
WORKERS = 32  # open-loop senders: enough that a slow answer never delays the next start
GOAL_RATIO = 2.0
FUNCTION_CONCURRENCY = 5
WARMUP_ROUNDS = 10  # at most


@dataclass(frozen=True)
class Plan:
    rate: int
    window: int
    block: int
    hosts: int  # per function (--function-concurrency)

    @property
    def blocks(self) -> int:
        return max(1, self.window // self.block)


def measure(quick: bool) -> list[Figure]:
    plan = Plan(**QUICK) if quick else Plan(RATE_PER_SECOND, WINDOW_SECONDS, BLOCK_SECONDS, FUNCTION_CONCURRENCY)
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as scratch:
        trace = Path(scratch) / "sqs-trace.jsonl"
        env = {"LOCAL_SQS_TRACE_FILE": str(trace), "POWERTOOLS_LOG_LEVEL": "WARNING"}
        runner_args = ["--function-concurrency", str(plan.hosts)]
        with running_stack(Path(scratch) / "stack.log", env=env, runner_args=runner_args) as stack:
            run = _run(stack, plan, trace)
            run["trace"] = _read_trace(trace)
    return _figures(run, plan, quick)


def _run(stack: Stack, plan: Plan, trace: Path) -> dict[str, Any]:
    stack.set_knobs(PROVIDER, push_receipts=False)
    seed_otp_history(stack, {"HK": plan.rate * 3600})  # steady OTP to HK at this rate: not held as a burst
    floor = FloorScript(stack)
    numbers = Numbers()
    pipeline_samples: list[dict[str, Any]] = []
    floor_samples: list[dict[str, Any]] = []
    cpu: dict[str, float] = {}  # CPU seconds used in the pipeline blocks, by part of the stack
    try:
        warm_up = _warm_up(stack, plan, floor, numbers, trace)
        load_before = os.getloadavg()
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for _ in range(plan.blocks):
                floor_samples += _block(pool, plan, numbers, floor.sample)
                _settle(stack, floor_samples)
                before = stack.cpu_seconds()
                pipeline_samples += _block(pool, plan, numbers, lambda number: _post_otp(stack, number))
                _settle(stack, pipeline_samples)
                for label, seconds in stack.cpu_seconds().items():
                    cpu[label] = cpu.get(label, 0.0) + seconds - before.get(label, 0.0)
        _settle_trace(trace, pipeline_samples)
    finally:
        floor.close()
    arrivals: dict[str, float] = stack.stats(PROVIDER, per_recipient=False, received=True)["received_at"]
    return {
        "pipeline": pipeline_samples,
        "floor": floor_samples,
        "arrivals": arrivals,
        "cpu_seconds": cpu,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "warm_up": warm_up,
    }


def _warm_up(stack: Stack, plan: Plan, floor: FloorScript, numbers: Numbers, trace: Path) -> dict[str, int]:
    """Rounds of requests at once until every Alibaba dispatch host has served one (see the module's docstring)."""
    hosts = set(stack.function_pids(DISPATCH_FUNCTIONS[PROVIDER]))
    served: set[int] = set()
    rounds = 0
    with ThreadPoolExecutor(max_workers=plan.hosts) as pool:
        while rounds < WARMUP_ROUNDS and not hosts <= served:
            rounds += 1
            samples = list(pool.map(lambda number: _post_otp(stack, number), numbers.take(plan.hosts)))
            samples.append(floor.sample(numbers.take(1)[0]))
            _settle(stack, samples)
            served = {int(stamps["pid"]) for stamps in _read_trace(trace).values()}
    return {"rounds": rounds, "dispatch_hosts": len(hosts), "dispatch_hosts_warmed": len(hosts & served)}


def _block(
    pool: ThreadPoolExecutor, plan: Plan, numbers: Numbers, sample: Callable[[str], dict[str, Any]]
) -> list[dict[str, Any]]:
    """`plan.rate` samples a second for `plan.block` seconds, each started on schedule (open loop), each to a
    number of its own."""
    futures: list[Future[dict[str, Any]]] = []
    start = time.monotonic() + 0.05
    for n in range(plan.rate * plan.block):
        number = numbers.take(1)[0]
        delay = start + n / plan.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        futures.append(pool.submit(sample, number))
    return [future.result() for future in futures]


def _settle(stack: Stack, samples: list[dict[str, Any]]) -> None:
    """Wait until every sample so far has reached the emulator (the next block starts on a quiet stack)."""
    wanted = {s["id"] for s in samples}

    def arrived() -> bool | None:
        stack.check_running()
        arrivals = stack.stats(PROVIDER, per_recipient=False, received=True)["received_at"]
        return True if wanted <= arrivals.keys() else None

    try:
        wait_until("every request of the block to reach the emulator", arrived, SETTLE_DEADLINE_SECONDS, 0.2)
    except StackFailed as exc:
        raise StackFailed(f"{exc}\n{stack.log_tail()}") from exc


def _settle_trace(trace: Path, samples: list[dict[str, Any]]) -> None:
    """Wait until the poller trace covers every pipeline sample. A poller writes a batch's line after its handler
    returns, which is after the provider call reached the emulator (what `_settle` waits for): on a loaded machine
    the last batch's line can still be on its way when the blocks are done."""
    wanted = {s["id"] for s in samples}
    wait_until(
        "the poller trace to cover every request",
        lambda: True if wanted <= _read_trace(trace).keys() else None,
        SETTLE_DEADLINE_SECONDS,
        0.2,
    )


def _post_otp(stack: Stack, number: str) -> dict[str, Any]:
    started = time.time()
    response = stack.api.post("/v1/messages", json={**OTP_REQUEST, "to": [number]})
    answered = time.time()
    if response.status_code != 202:
        raise RuntimeError(f"POST /v1/messages answered {response.status_code}: {response.text[:500]}")
    message_id = response.json()["messages"][0]["id"]
    return {"id": message_id, "started": started, "answered": answered}


class FloorScript:
    """The irreducible hops, one sample at a time per thread (see the module's docstring)."""

    def __init__(self, stack: Stack) -> None:
        self._table = stack.table_name
        self._dynamodb = stack.dynamodb
        self._sqs = stack.sqs
        self._queue = self._sqs.create_queue(QueueName=FLOOR_QUEUE)["QueueUrl"]
        settings = AliyunSettings(
            endpoint=f"http://127.0.0.1:{stack.ports[PROVIDER]}",
            access_key_id=LOCAL_ENV_DEFAULTS["GLOBESMS_ALIYUN_ACCESS_KEY_ID"],
            access_key_secret=LOCAL_ENV_DEFAULTS["GLOBESMS_ALIYUN_ACCESS_KEY_SECRET"],  # type: ignore[arg-type]
        )
        self._client = AliyunClient(settings)

    def sample(self, number: str) -> dict[str, Any]:
        sample_id = f"floor-{uuid.uuid4().hex[:16]}"
        started = time.time()
        self._dynamodb.put_item(
            TableName=self._table,
            Item={"pk": {"S": FLOOR_PK_PREFIX + sample_id}, "sk": {"S": "#"}, "to": {"S": number}},
            ConditionExpression="attribute_not_exists(pk)",
        )
        written = time.time()
        self._sqs.send_message(QueueUrl=self._queue, MessageBody=json.dumps({"id": sample_id, "to": number}))
        queued = time.time()
        # Another thread's receive may take this sample's message and this one another's: each sample's clock
        # follows the id in the body that reaches the emulator, whichever thread carries it.
        received = self._sqs.receive_message(QueueUrl=self._queue, MaxNumberOfMessages=1, WaitTimeSeconds=20)
        message = received["Messages"][0]
        received_at = time.time()
        body = json.loads(message["Body"])
        (outcome,) = self._client.send(
            [OutboundSms(message_id=body["id"], to=body["to"], type=MessageType.OTP, text=OTP_REQUEST["text"])]
        )
        if not outcome.ok:
            raise RuntimeError(f"the floor's provider call failed: {outcome.error}")
        self._sqs.delete_message(QueueUrl=self._queue, ReceiptHandle=message["ReceiptHandle"])
        return {
            "id": sample_id,
            "started": started,
            "put_item": written - started,
            "send_message": queued - written,
            "receive_message": received_at - queued,
            "carried": body["id"],
            "carried_from": received_at,
        }

    def close(self) -> None:
        self._client.close()


def _read_trace(path: Path) -> dict[str, dict[str, float]]:
    """Our message id -> the poller's times for the pack that carried it (its first delivery)."""
    times: dict[str, dict[str, float]] = {}
    if not path.exists():
        return times
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry["queue"] != PROVIDER_QUEUES[PROVIDER]:
            continue
        stamps = {k: entry[k] for k in ("sent", "received", "invoked", "returned")}
        stamps["pid"] = entry.get("pid", 0)  # a trace without pids: warm-up cannot tell the hosts apart
        for recipient in json.loads(entry["body"]).get("recipients", []):
            times.setdefault(recipient["id"], stamps)
    return times


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds (inclusive quantiles: the p99 of 20 samples is near their maximum)."""
    if len(values) < 2:
        raise ValueError("need at least two samples")
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(statistics.median(values) * 1000, 1), "p99": round(cuts[98] * 1000, 1)}


def _stages(run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """p50/p99 of each stage of the pipeline's samples that the poller trace covers."""
    arrivals, trace = run["arrivals"], run["trace"]
    spans: dict[str, list[float]] = {
        "accept": [],
        "queue_wait": [],
        "hand_off": [],
        "dispatch": [],
        "invocation": [],
        "answer": [],
    }
    for s in run["pipeline"]:
        t = trace.get(s["id"])
        spans["answer"].append(s["answered"] - s["started"])
        if t is None:
            continue
        spans["accept"].append(t["sent"] - s["started"])
        spans["queue_wait"].append(t["received"] - t["sent"])
        spans["hand_off"].append(t["invoked"] - t["received"])
        spans["dispatch"].append(arrivals[s["id"]] - t["invoked"])
        spans["invocation"].append(t["returned"] - t["invoked"])
    return {name: percentiles(values) for name, values in spans.items() if len(values) >= 2}


def _floor_steps(samples: list[dict[str, Any]], arrivals: dict[str, float]) -> dict[str, dict[str, float]]:
    steps = {name: [s[name] for s in samples] for name in ("put_item", "send_message", "receive_message")}
    steps["provider_call"] = [arrivals[s["carried"]] - s["carried_from"] for s in samples]
    return {name: percentiles(values) for name, values in steps.items()}


def _figures(run: dict[str, Any], plan: Plan, quick: bool) -> list[Figure]:
    arrivals: dict[str, float] = run["arrivals"]
    pipeline = [arrivals[s["id"]] - s["started"] for s in run["pipeline"]]
    floor = [arrivals[s["id"]] - s["started"] for s in run["floor"]]
    ours, reference = percentiles(pipeline), percentiles(floor)
    detail: dict[str, Any] = {
        "rate_per_second": plan.rate,
        "window_seconds": plan.window,
        "block_seconds": plan.block,
        "samples": {"pipeline": len(pipeline), "floor": len(floor)},
        "pipeline_ms": ours,
        "floor_ms": reference,
        "pipeline_max_ms": round(max(pipeline) * 1000, 1),
        "floor_max_ms": round(max(floor) * 1000, 1),
        "pipeline_stages_ms": _stages(run),
        "floor_steps_ms": _floor_steps(run["floor"], arrivals),
        "traced_samples": sum(1 for s in run["pipeline"] if s["id"] in run["trace"]),
        "function_hosts_per_function": plan.hosts,
        "warm_up": run["warm_up"],
        "cpu_ms_per_pipeline_request": {
            label: round(seconds * 1000 / len(pipeline), 1) for label, seconds in sorted(run["cpu_seconds"].items())
        },
        # What the stack's processes ask of the machine at the figure's rate, beside the cores it has: near or past
        # the core count, queueing for a core, not any one step, sets the latency (the bench's own senders aside).
        "stack_cores_busy_at_rate": round(sum(run["cpu_seconds"].values()) / len(pipeline) * plan.rate, 2),
        "machine_cores": os.cpu_count(),
        "load_average_1_5_15_min": {k: [round(x, 1) for x in v] for k, v in run["load_average"].items()},
        "quick": quick,
    }
    return [
        Figure(
            id=f"latency.otp_{name}",
            title=f"OTP latency {name} (POST to provider)",
            value=ours[name],
            unit="ms",
            reference=reference[name],
            reference_label=f"floor {name}: PutItem, SendMessage, ReceiveMessage, signed call",
            ratio=ours[name] / reference[name],
            goal=f"<= {GOAL_RATIO:g}x floor",
            goal_op="<=",
            goal_value=GOAL_RATIO,
            detail=detail,
        )
        for name in ("p50", "p99")
    ]
