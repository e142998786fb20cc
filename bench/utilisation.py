"""Figure 5, provider utilisation: how much of the providers' combined rate limits the dispatchers use.

The local stack (`python -m local.run`, bench/_stack.py) sends through the three provider emulators with every
operation's limit set to `LIMITS` calls per second, both for the dispatchers (`GLOBESMS_RATE_LIMITS`) and for the
emulators (their `rate_limits` knob: a call past the limit is answered as throttled and counted).

- **Ceiling**: the sum over the operations in use of calls/s times recipients per call: Alibaba BatchSendMessageToGlobe
  1,000 and SendMessageToGlobe 1 (a NOTIFY pack goes as one batch call when the batch permit of the second is free,
  else as single calls), Tencent SendMultiGlobalSms 200, Huawei batchSendDiffSms 500 (`globesms.limits`). At 1
  call/s each that is 1,701 recipients per second.
- **Why 1 call/s**: the lowest rate `GLOBESMS_RATE_LIMITS` takes (whole calls, at least 1), and even so about as
  much as the local AWS emulator keeps up with: every recipient sent is a record written (and one read for held
  receipts) on moto, whose server runs in one Python process. At 2 calls/s (3,402 recipients per second) moto,
  not the dispatchers, would set the pace.
- **Load**: free text (NOTIFY) for Alibaba, a Tencent template and a Huawei template, to distinct numbers, in full
  packs (1,000 / 200 / 500). It is accepted through the API *before* the window while the dispatch hosts are
  paused (SIGSTOP), enough for every queue to stay busy through the window at the full ceiling: the figure is
  about how the dispatchers use the limits, so the accepting side does not share the two cores with them then.
  Receipts are off (`push_receipts`): they are not part of sending and would compete for moto.
- **Dispatchers**: `DISPATCH_HOSTS` hosts per provider (Lambda runs up to 5, the template's MaximumConcurrency,
  scaling each queue's pollers with its backlog): Alibaba's queue, whose 1,000-recipient packs each take a host
  ~2.5 s here (most of it the SUBMITTED writes of 1,000 records on moto), gets three, the others two; the limits
  hold across all of them through the shared permits.
- **Measured**: the dispatch hosts are resumed; after `WARMUP_SECONDS`, for `WINDOW_SECONDS` whole seconds, the
  recipients the emulators accepted (their ledgers count accepted recipients per operation per second), per second.
  Throttled responses and seconds over a limit (an operation with more calls in one wall-clock second than its
  limit, as an emulator counts them) are counted over the whole run. Every queue must still hold packs when the
  window ends (`load_sustained`), else the load, not the dispatchers, ran short.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._stack import DISPATCH_FUNCTIONS, PROVIDER_QUEUES, PROVIDERS, Stack, running_stack
from bench._stack_load import Numbers, bodies_for, post_all
from bench.figures import Figure, none_allowed
from globesms.domain.provider_limits import RECIPIENTS_PER_CALL
from globesms.models.outbound import ProviderName

#: Calls per second of every operation, for the dispatchers and the emulators alike.
LIMITS: dict[str, int] = {
    "BatchSendMessageToGlobe": 1,
    "SendMessageToGlobe": 1,
    "SendMultiGlobalSms": 1,
    "batchSendDiffSms": 1,
}
#: Recipients one call of each operation carries at most.
RECIPIENTS_PER_OPERATION: dict[str, int] = {
    "BatchSendMessageToGlobe": RECIPIENTS_PER_CALL[ProviderName.ALIYUN],
    "SendMessageToGlobe": 1,
    "SendMultiGlobalSms": RECIPIENTS_PER_CALL[ProviderName.TENCENT],
    "batchSendDiffSms": RECIPIENTS_PER_CALL[ProviderName.HUAWEI],
}
OPERATIONS_OF: dict[str, tuple[str, ...]] = {
    "aliyun": ("BatchSendMessageToGlobe", "SendMessageToGlobe"),
    "tencent": ("SendMultiGlobalSms",),
    "huawei": ("batchSendDiffSms",),
}
FUNCTION_CONCURRENCY = 2  # every function's hosts but the dispatchers named in DISPATCH_HOSTS
DISPATCH_HOSTS: dict[str, int] = {"aliyun": 3, "tencent": FUNCTION_CONCURRENCY, "huawei": FUNCTION_CONCURRENCY}


def dispatch_hosts(quick: bool) -> dict[str, int]:
    """Hosts per provider's dispatcher: DISPATCH_HOSTS, or FUNCTION_CONCURRENCY each for the quick form (a smoke run
    beside other tests, with no host to spare)."""
    return dict.fromkeys(DISPATCH_HOSTS, FUNCTION_CONCURRENCY) if quick else dict(DISPATCH_HOSTS)


WARMUP_SECONDS = 3
WINDOW_SECONDS = 60
QUICK_WINDOW_SECONDS = 3
# The quick form runs beside other tests (make test on every core): dispatchers resumed from a long pause on a busy
# machine can take longer than 3 s to reach their first call, and the quick form asks only that every provider sends
# in the run. Every second of warm-up and window is 1,701 more recipients to accept before it starts (most of the
# quick form's time), so both are as short as that allows.
QUICK_WARMUP_SECONDS = 5
#: Load queued beyond what the window can take at the full ceiling, in seconds of it.
SLACK_SECONDS = 5
QUICK_SLACK_SECONDS = 2
GOAL_SHARE = 0.9


def ceiling(limits: dict[str, int] = LIMITS) -> dict[str, int]:
    """Recipients per second each operation can carry at its limit."""
    return {op: limits[op] * RECIPIENTS_PER_OPERATION[op] for op in limits}


def measure(quick: bool) -> list[Figure]:
    window = QUICK_WINDOW_SECONDS if quick else WINDOW_SECONDS
    warmup = QUICK_WARMUP_SECONDS if quick else WARMUP_SECONDS
    with tempfile.TemporaryDirectory(prefix="bench-utilisation-") as scratch:
        env = {
            "GLOBESMS_RATE_LIMITS": json.dumps(LIMITS),
            # Per-recipient INFO lines are not what is measured; they cost the dispatchers CPU.
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        runner_args = ["--function-concurrency", str(FUNCTION_CONCURRENCY)]
        for provider, count in dispatch_hosts(quick).items():
            runner_args += ["--function-hosts", f"{DISPATCH_FUNCTIONS[provider]}={count}"]
        with running_stack(Path(scratch) / "stack.log", env=env, runner_args=runner_args) as stack:
            run = _run(stack, window, warmup, slack=QUICK_SLACK_SECONDS if quick else SLACK_SECONDS)
    return _figures(run, window, quick)


def _run(stack: Stack, window: int, warmup: int, *, slack: int) -> dict[str, Any]:
    for provider in PROVIDERS:
        stack.set_knobs(provider, rate_limits=LIMITS, push_receipts=False)
    dispatchers = list(DISPATCH_FUNCTIONS.values())
    paused = stack.signal_functions(dispatchers, signal.SIGSTOP)
    try:
        per_provider_ceiling = {p: sum(ceiling()[op] for op in OPERATIONS_OF[p]) for p in PROVIDERS}
        # The window starts on the first whole second after the warm-up: up to a second more of sending before it.
        load_seconds = warmup + 1 + window + slack
        numbers = Numbers()
        bodies = []
        queued: dict[str, int] = {}
        for provider in PROVIDERS:
            queued[provider] = per_provider_ceiling[provider] * load_seconds
            bodies += bodies_for(provider, numbers.take(queued[provider]))
        started = time.monotonic()
        answers = post_all(stack, bodies)
        accept_seconds = time.monotonic() - started
        accepted = sum(int(answer["accepted"]) for answer in answers)
        if accepted != sum(queued.values()):
            raise RuntimeError(f"the API accepted {accepted} of {sum(queued.values())} recipients")
    finally:
        stack.signal_functions(dispatchers, signal.SIGCONT)
    resumed = time.time()
    first = math.ceil(resumed + warmup)
    seconds = range(first, first + window)
    while time.time() < first:
        time.sleep(0.05)
    cpu_before = stack.cpu_seconds()
    while time.time() < seconds.stop + 0.3:  # the last second's calls are recorded
        time.sleep(0.1)
    cpu_after = stack.cpu_seconds()
    backlog = {p: sum(stack.queue_depth(PROVIDER_QUEUES[p])) for p in PROVIDERS}
    stats = {p: stack.stats(p, per_recipient=False) for p in PROVIDERS}
    return {
        "stats": stats,
        "seconds": seconds,
        "warmup_seconds": warmup,
        "queued": queued,
        "accept_seconds": round(accept_seconds, 1),
        "paused_hosts": len(paused),
        "backlog": backlog,
        "cpu_seconds_in_window": {
            label: round(cpu_after[label] - cpu_before.get(label, 0.0), 1) for label in sorted(cpu_after)
        },
    }


def _figures(run: dict[str, Any], window: int, quick: bool) -> list[Figure]:
    seconds: range = run["seconds"]
    recipients: dict[str, int] = {}
    in_run: dict[str, int] = {}  # recipients accepted over the whole run, window or not
    calls: dict[str, int] = {}
    idle: dict[str, list[int]] = {}  # seconds of the window (0-based) in which an operation had no call
    over: list[dict[str, Any]] = []
    throttled = 0
    for provider in PROVIDERS:
        stats = run["stats"][provider]
        throttled += sum(stats["throttled"].values())
        for op in OPERATIONS_OF[provider]:
            per_second = stats["recipients_per_second"].get(op, {})
            recipients[op] = sum(per_second.get(str(s), 0) for s in seconds)
            in_run[op] = sum(per_second.values())
            calls_per_second = stats["calls_per_second"].get(op, {})
            calls[op] = sum(calls_per_second.get(str(s), 0) for s in seconds)
            idle[op] = [s - seconds.start for s in seconds if not calls_per_second.get(str(s))]
            over += [
                {"operation": op, "second": int(s), "calls": n, "limit": LIMITS[op]}
                for s, n in calls_per_second.items()
                if n > LIMITS[op]
            ]
    ceilings = ceiling()
    total_ceiling = sum(ceilings.values())
    rate = sum(recipients.values()) / window
    per_operation = {
        op: {
            "limit_calls_per_second": LIMITS[op],
            "recipients_per_call": RECIPIENTS_PER_OPERATION[op],
            "ceiling_recipients_per_second": ceilings[op],
            "calls_per_second": round(calls[op] / window, 3),
            "recipients_per_second": round(recipients[op] / window, 1),
            "seconds_without_a_call": idle[op] if op != "SendMessageToGlobe" else len(idle[op]),
        }
        for op in LIMITS
    }
    per_provider = {
        p: {
            "recipients_per_second": round(sum(recipients[op] for op in OPERATIONS_OF[p]) / window, 1),
            "ceiling_recipients_per_second": sum(ceilings[op] for op in OPERATIONS_OF[p]),
            "recipients_in_run": sum(in_run[op] for op in OPERATIONS_OF[p]),
            "queued_before_window": run["queued"][p],
            "packs_left_after_window": run["backlog"][p],
        }
        for p in PROVIDERS
    }
    for entry in per_provider.values():
        entry["share"] = round(entry["recipients_per_second"] / entry["ceiling_recipients_per_second"], 3)
    sustained = all(n > 0 for n in run["backlog"].values())
    if not sustained:
        print(f"utilisation: a provider queue ran empty in the window {run['backlog']}", file=sys.stderr)
    detail: dict[str, Any] = {
        "window_seconds": window,
        "window_epoch_seconds": [seconds.start, seconds.stop - 1],
        "warmup_seconds": run["warmup_seconds"],
        "limits_calls_per_second": LIMITS,
        "dispatch_hosts_per_provider": dispatch_hosts(quick),
        "per_operation": per_operation,
        "per_provider": per_provider,
        "load_sustained": sustained,
        "accept_seconds_before_window": run["accept_seconds"],
        "cpu_seconds_in_window": run["cpu_seconds_in_window"],
        "quick": quick,
    }
    common: dict[str, Any] = {"detail": detail}
    return [
        Figure(
            id="utilisation.recipients_per_second",
            title="Provider utilisation (recipients/s vs combined ceiling)",
            value=round(rate, 1),
            unit="recipients/s",
            reference=float(total_ceiling),
            reference_label=f"ceiling at {_limits_label()}",
            ratio=round(rate / total_ceiling, 3),
            goal=f">= {GOAL_SHARE:.0%} of the ceiling",
            goal_op=">=",
            goal_value=GOAL_SHARE,
            **common,
        ),
        none_allowed(
            "utilisation.throttled",
            "Provider utilisation: throttled responses",
            throttled,
            "responses",
            {"throttled_by_operation": {p: run["stats"][p]["throttled"] for p in PROVIDERS}},
        ),
        none_allowed(
            "utilisation.seconds_over_limit",
            "Provider utilisation: seconds over a limit",
            len(over),
            "seconds",
            {"over": over[:50]},
        ),
    ]


def _limits_label() -> str:
    rates = set(LIMITS.values())
    return f"{rates.pop()} call/s per operation" if len(rates) == 1 else "the configured limits"
