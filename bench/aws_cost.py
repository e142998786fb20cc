"""Figure 4: what AWS bills per recipient, counted request by request over one send through the whole pipeline.

One API request of 10,000 recipients (quick: 300), spread evenly over Alibaba, Tencent and Huawei, half of them
with a `status_callback`, goes through the real handlers on moto (`bench._cost_pipeline`): accept, the provider
queues, the dispatchers with the deployed DynamoDB rate limiter, the emulators, their delivery receipt pushes to
the receipts function, DELIVERED for every recipient, and the webhook sender for the status events. Every AWS
request is counted from botocore's events (`bench._cost_meter`), by phase, service and operation, with the
DynamoDB write and read units and SQS 64 KB chunks it is billed for.

The counts are kept by phase: accept, the guardrails' spend ledger (carved out of accept by key), dispatch, the
status counts stream (StatusCountsFunction over the messages table's stream, replayed from moto's stream after
SUBMITTED and after DELIVERED), receipts, webhooks and one scheduled reconcile run (a cost per run). The dollars
figure's `by_phase` shows requests, units and dollars per recipient for each, so a counter another feature adds
shows up under the phase that makes it.

Three figures, each compared with its goal (reference = the goal, ratio = value / goal, met when ratio <= 1):
- AWS requests per recipient from accept to SUBMITTED (every request of the API function, the spend ledger, the
  provider queues' event sources, the dispatchers and the status counts their writes cause; ReceiveMessage calls
  that return nothing are idle polling, a cost per hour whatever the traffic, and are left out);
- DynamoDB write request units per recipient, in all (accept, dispatch, receipts);
- dollars per million recipients at the list prices below, receipts and webhooks included; its detail also says
  whether it stays within the performance issue's ceiling (CEILING_DOLLARS_PER_MILLION).

What the dollars leave out, because it is not a cost per recipient: storage (table, PITR backups), the 1 trace per
second X-Ray reservoir, idle polling of the five event sources, CloudWatch custom metrics (per metric per month),
Secrets Manager's per-secret monthly fee, data transfer out, the free tiers.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from typing import Any

from bench._cost_cpu import VCPU_MEMORY_MB, cpu_stretch
from bench._cost_meter import Usage
from bench._cost_otp import otp_guard_requests
from bench._cost_pipeline import (
    PER_RUN,
    PHASES,
    STATUS_COUNTS,
    TO_SUBMITTED,
    Invocation,
    PipelineRun,
    run_pipeline,
)
from bench.figures import Figure

# No X-Ray daemon in this process: the handlers' tracer must stay off (set before globesms.observability loads).
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

RECIPIENTS = 10_000  # the most one API request takes
QUICK_RECIPIENTS = 300
#: Distinct numbers in the OTP guard's large request (bench/_cost_otp.py): 4 transactions' worth.
OTP_GUARD_RECIPIENTS = 300
#: Share of recipients whose spec has a status_callback (final events only, no `status_callback_on_submitted`).
WEBHOOK_SHARE = 0.5
#: Huawei's receipts as docs/deploy.md configures them: the application's batch status report URL (up to 50 reports
#: a push), sends without `statusCallback`. "form" measures a send carrying one (one push per recipient).
HUAWEI_RECEIPT_FORMAT = "batch"
#: How long a provider takes to answer a send, and a customer's endpoint a webhook (the emulators answer at once).
PROVIDER_LATENCY_MS = 100.0
WEBHOOK_LATENCY_MS = 100.0

GOAL_REQUESTS_TO_SUBMITTED = 0.15
GOAL_WRITE_UNITS = 4.0
GOAL_DOLLARS_PER_MILLION = 2.0
#: The ceiling the performance issue sets: the dollars per million measured before it (accept, dispatch, receipts,
#: webhooks), not to be exceeded as counters (spend, status counts, statistics) are added.
CEILING_DOLLARS_PER_MILLION = 4.82

#: us-east-1 list prices, as written down on this date: DynamoDB on-demand at the rates in force since 2024-11-01
#: (standard table class), SQS standard queues, Lambda x86, API Gateway REST (first 333 million a month), Secrets
#: Manager, X-Ray traces recorded, CloudWatch Logs standard ingestion. Free tiers are not deducted.
PRICES_AS_OF = "2026-11-26"
PRICES = {
    "dynamodb_write_request_unit": 0.625 / 1e6,
    "dynamodb_read_request_unit": 0.125 / 1e6,
    "sqs_request_64kb": 0.40 / 1e6,
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000166667,
    "api_gateway_rest_request": 3.50 / 1e6,
    "secrets_manager_api_call": 0.05 / 10_000,
    "xray_trace_recorded": 5.00 / 1e6,
    "cloudwatch_logs_ingested_gb": 0.50,
}
#: X-Ray's default sampling rule beyond its reservoir: 5% of requests. A trace starts at API Gateway (and covers
#: the function it invokes) or at an SQS-triggered invocation.
XRAY_SAMPLED = 0.05
#: CloudWatch Logs bills each event's message bytes plus 26 bytes.
LOG_EVENT_OVERHEAD_BYTES = 26
#: Invocations X-Ray samples on their own (no trace started upstream): SQS-, stream- and schedule-triggered.
SELF_TRACED = (
    "AliyunDispatchFunction",
    "TencentDispatchFunction",
    "HuaweiDispatchFunction",
    "WebhookSenderFunction",
    "StatusCountsFunction",
    "ReconcileFunction",
)
API_FUNCTIONS = ("SendApiFunction", "ReceiptsFunction")  # one API Gateway request per invocation
#: What a scheduled run costs in a 30-day month (rate(1 minute)).
RUNS_PER_MONTH = 60 * 24 * 30


def platform_log_lines(duration_ms: float, memory_mb: int) -> list[str]:
    """The lines Lambda itself writes to the function's log group for one invocation (text format, active
    tracing): START, END and REPORT with its XRAY line, as three log events."""
    request_id = "8f5e2a4c-1b2d-4e6f-9a7b-3c4d5e6f7a8b"
    return [
        f"START RequestId: {request_id} Version: $LATEST\n",
        f"END RequestId: {request_id}\n",
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {math.ceil(duration_ms)} ms"
        f"\tMemory Size: {memory_mb} MB\tMax Memory Used: {memory_mb // 2} MB\t\n"
        "XRAY TraceId: 1-6745a1b2-3c4d5e6f7a8b9c0d1e2f3a4b\tSegmentId: 5e6f7a8b9c0d1e2f\tSampled: false\t\n",
    ]


def billed_seconds(invocation: Invocation, memory_mb: int) -> float:
    """What Lambda would bill for an invocation: the function's own CPU time here, stretched to its memory size's
    share of a vCPU (`bench._cost_cpu`), plus moto's CPU time answering it (standing in for the AWS round trips)
    and the time it waited for providers and customers. CPU time, not wall time: steady on a busy machine."""
    own = invocation.own_cpu_seconds * cpu_stretch(memory_mb)
    return own + invocation.aws_cpu_seconds + invocation.waited_seconds


def per_recipient(counter: Counter[str], recipients: int) -> dict[str, float]:
    return {name: round(n / recipients, 5) for name, n in sorted(counter.items()) if n}


def billable_requests(usage: Usage) -> int:
    """Requests made, less the ReceiveMessage calls that found nothing (idle polling)."""
    return usage.requests() - usage.empty_receives


def costs(run: PipelineRun, phases: tuple[str, ...] = ()) -> tuple[dict[str, float], dict[str, Any]]:
    """Dollars by line item, and the quantities they come from, for the requests and invocations of `phases`
    (all of them when empty). An API request is the invocation it made; a phase carved out of a function's work
    (the spend ledger) has its requests, its function's time stays with the function's phase."""
    usage = run.meter.total(*phases)
    invocations = [i for i in run.invocations if not phases or i.phase in phases]
    gb_seconds = sum(
        math.ceil(billed_seconds(i, run.memory_mb[i.function]) * 1000) / 1000 * run.memory_mb[i.function] / 1024
        for i in invocations
    )
    log_bytes = 0
    log_events = 0
    for invocation in invocations:
        memory_mb = run.memory_mb[invocation.function]
        platform = platform_log_lines(billed_seconds(invocation, memory_mb) * 1000, memory_mb)
        log_bytes += invocation.log_bytes + sum(len(line.encode()) for line in platform)
        log_events += invocation.log_lines + len(platform)
    ingested_bytes = log_bytes + log_events * LOG_EVENT_OVERHEAD_BYTES
    api_requests = sum(i.function in API_FUNCTIONS for i in invocations)
    traces = XRAY_SAMPLED * (api_requests + sum(i.function in SELF_TRACED for i in invocations))
    sqs_billed = sum(n for op, n in usage.billed_requests.items() if op.startswith("sqs.")) - usage.empty_receives
    quantities = {
        "dynamodb_write_request_units": sum(usage.write_units.values()),
        "dynamodb_read_request_units": sum(usage.read_units.values()),
        "sqs_requests_64kb": sqs_billed,
        "lambda_invocations": len(invocations),
        "lambda_gb_seconds": round(gb_seconds, 3),
        "api_gateway_requests": api_requests,
        "secrets_manager_calls": usage.requests("secretsmanager"),
        "xray_traces": traces,
        "cloudwatch_logs_bytes": ingested_bytes,
    }
    dollars = {
        "dynamodb_writes": quantities["dynamodb_write_request_units"] * PRICES["dynamodb_write_request_unit"],
        "dynamodb_reads": quantities["dynamodb_read_request_units"] * PRICES["dynamodb_read_request_unit"],
        "sqs": sqs_billed * PRICES["sqs_request_64kb"],
        "lambda_requests": len(invocations) * PRICES["lambda_request"],
        "lambda_duration": gb_seconds * PRICES["lambda_gb_second"],
        "api_gateway": api_requests * PRICES["api_gateway_rest_request"],
        "secrets_manager": quantities["secrets_manager_calls"] * PRICES["secrets_manager_api_call"],
        "xray": traces * PRICES["xray_trace_recorded"],
        "cloudwatch_logs": ingested_bytes / 2**30 * PRICES["cloudwatch_logs_ingested_gb"],
    }
    return dollars, quantities


def phase_detail(usage: Usage, recipients: int) -> dict[str, Any]:
    return {
        "requests": billable_requests(usage),
        "requests_per_recipient": round(billable_requests(usage) / recipients, 5),
        "calls": dict(sorted(usage.calls.items())),
        "idle_receives_left_out": usage.empty_receives,
        "write_units": dict(sorted((op, n) for op, n in usage.write_units.items() if n)),
        "of_which_index_write_units": dict(sorted((op, n) for op, n in usage.index_write_units.items() if n)),
        "read_units": dict(sorted((op, n) for op, n in usage.read_units.items() if n)),
        "failed_conditional_writes": dict(usage.failed_conditions),
        "sqs_requests_64kb": sum(n for op, n in usage.billed_requests.items() if op.startswith("sqs."))
        - usage.empty_receives,
    }


def phase_costs(run: PipelineRun, n: int) -> dict[str, Any]:
    """Per phase: AWS requests, write and read units and dollars per recipient (per run for a scheduled phase),
    the dollars by line item. A counter another feature adds shows up here under the phase that makes it."""
    table: dict[str, Any] = {}
    for phase in PHASES:
        usage = run.meter.total(phase)
        dollars, _ = costs(run, (phase,))
        per = 1 if phase in PER_RUN else n
        unit = "run" if phase in PER_RUN else "recipient"
        table[phase] = {
            f"requests_per_{unit}": round(billable_requests(usage) / per, 5),
            f"write_units_per_{unit}": round(sum(usage.write_units.values()) / per, 5),
            f"read_units_per_{unit}": round(sum(usage.read_units.values()) / per, 5),
            "lambda_invocations": sum(i.phase == phase for i in run.invocations),
            **(
                {
                    "dollars_per_run": round(sum(dollars.values()), 8),
                    "dollars_per_month_at_one_run_a_minute": round(sum(dollars.values()) * RUNS_PER_MONTH, 4),
                }
                if phase in PER_RUN
                else {
                    "dollars_per_million": round(sum(dollars.values()) / n * 1e6, 4),
                    "dollars_per_million_by_item": {k: round(v / n * 1e6, 4) for k, v in dollars.items() if v},
                }
            ),
            "calls": dict(sorted(usage.calls.items())),
        }
    return table


def invocation_detail(run: PipelineRun) -> dict[str, Any]:
    by_function: dict[str, dict[str, Any]] = {}
    for invocation in run.invocations:
        entry = by_function.setdefault(
            invocation.function,
            {
                "invocations": 0,
                "records": 0,
                "billed_ms": 0.0,
                "wall_ms": 0.0,
                "own_cpu_ms": 0.0,
                "aws_cpu_ms": 0.0,
                "log_bytes": 0,
                "memory_mb": 0,
            },
        )
        entry["invocations"] += 1
        entry["records"] += invocation.records
        entry["billed_ms"] += math.ceil(billed_seconds(invocation, run.memory_mb[invocation.function]) * 1000)
        entry["own_cpu_ms"] += invocation.own_cpu_seconds * 1000
        entry["aws_cpu_ms"] += invocation.aws_cpu_seconds * 1000
        entry["wall_ms"] += invocation.wall_seconds * 1000
        entry["log_bytes"] += invocation.log_bytes
        entry["memory_mb"] = run.memory_mb[invocation.function]
    for entry in by_function.values():
        count = entry.pop("invocations")
        entry["invocations"] = count
        entry["mean_billed_ms"] = round(entry.pop("billed_ms") / count, 2)
        entry["mean_wall_ms"] = round(entry.pop("wall_ms") / count, 2)
        entry["mean_own_cpu_ms"] = round(entry.pop("own_cpu_ms") / count, 2)
        entry["mean_aws_cpu_ms"] = round(entry.pop("aws_cpu_ms") / count, 2)
        entry["mean_log_bytes"] = round(entry.pop("log_bytes") / count)
    return dict(sorted(by_function.items()))


def measure(quick: bool) -> list[Figure]:
    recipients = QUICK_RECIPIENTS if quick else RECIPIENTS
    started = time.perf_counter()
    run = run_pipeline(
        recipients,
        webhook_share=WEBHOOK_SHARE,
        provider_latency_ms=PROVIDER_LATENCY_MS,
        webhook_latency_ms=WEBHOOK_LATENCY_MS,
        check_index_queries=quick,  # small enough for moto's own index queries: the meter's answers are checked
        huawei_receipt_format=HUAWEI_RECEIPT_FORMAT,
    )
    elapsed = time.perf_counter() - started
    n = run.accepted
    per_recipient_phases = tuple(p for p in PHASES if p not in PER_RUN)
    submit = run.meter.total(*TO_SUBMITTED)
    everything = run.meter.total(*per_recipient_phases)
    dollars, quantities = costs(run, per_recipient_phases)
    per_million = {item: round(value / n * 1e6, 4) for item, value in dollars.items()}
    total_per_million = sum(dollars.values()) / n * 1e6
    requests_to_submitted = billable_requests(submit) / n
    write_units = sum(everything.write_units.values()) / n
    lambda_by_phase = Counter(i.phase for i in run.invocations)

    common: dict[str, Any] = {
        "recipients": n,
        "providers": {"aliyun": "free text, NOTIFY", "tencent": "template", "huawei": "template"},
        "with_status_callback": run.with_callback,
        "statuses": run.statuses,
        "webhook_events_delivered": run.webhooks_delivered,
        "pack_deliveries": run.packs,
        "provider_calls": run.provider_calls,
        "receipt_pushes": run.receipt_pushes,
        "receipts": run.receipts,
        "run_wall_seconds": round(elapsed, 1),
        "phase_wall_seconds": {p: round(s, 1) for p, s in run.wall_seconds.items()},
        "assumptions": [
            "one API request of all recipients, spread evenly over the three providers by routes.json as shipped",
            f"{WEBHOOK_SHARE:.0%} of recipients carry a status_callback (final events only)",
            f"providers answer a send after {PROVIDER_LATENCY_MS:g} ms, customers a webhook after "
            f"{WEBHOOK_LATENCY_MS:g} ms (emulator and mock endpoint latency, inside the measured wall time)",
            "receipt pushes as the emulators make them (receipt_pushes, receipts): Alibaba and Tencent JSON arrays "
            "of up to 100 reports, Huawei JSON lists of up to 50 (the Batch Status Reports API, to the URL "
            "configured on the Huawei application, sends without statusCallback: docs/deploy.md recommends it; "
            "with a statusCallback on each send Huawei pushes one form-encoded report per request, one API Gateway "
            "request and one receipts invocation per recipient); every receipt arrives after the SUBMITTED write "
            "(none held)",
            "the webhook sender's event source takes each full batch (BatchSize 10) as soon as it is queued, as at a "
            "steady high volume; at a trickle its batches, without a batching window, would be smaller",
            "SQS event sources as local/pollers.py plays them: one ReceiveMessage of up to BatchSize per invocation, "
            "then DeleteMessageBatch; one consumer per queue at a time, real DelaySeconds",
            "the messages table's stream as the StatusCountsFunction event source reads it (local/streams.py: the "
            "template's filter, BatchSize records an invocation), drained once after SUBMITTED and once after the "
            "receipts and webhooks, so its batches are full as at a steady high volume; its invocations and their "
            "writes are counted, measured like any other (the counts item is checked against the records); "
            "GetRecords calls Lambda makes for a DynamoDB trigger are free and not counted",
            "spend_ledger: the requests on the spend reservation marker and month counters (sort keys $spend, "
            "$month), carved out of accept by key; their Lambda time stays with accept",
            "reconcile: one scheduled run once every message is final, priced per run and per month at "
            "rate(1 minute), not per recipient (every receipt arrived before its deadline)",
            "one warm instance per function (no cold starts): secrets are read once per function and cached 5 min",
            "Lambda duration = the function's own CPU time in this process, stretched to its memory size's share "
            f"of a vCPU ({VCPU_MEMORY_MB:,} MB = one vCPU: x{cpu_stretch(256):.2f} at 256 MB, "
            f"x{cpu_stretch(1024):.2f} at 1,024 MB), plus moto's CPU time answering its AWS calls (standing in for "
            "the round trips) and the provider and customer latencies above, rounded up to 1 ms; per function in "
            "lambda_by_function (mean_own_cpu_ms, mean_aws_cpu_ms), beside the wall times here for comparison",
            "CloudWatch Logs = what the handlers wrote (Powertools logs, EMF metrics) + Lambda's START/END/REPORT "
            f"lines, + {LOG_EVENT_OVERHEAD_BYTES} bytes per event",
            f"X-Ray: {XRAY_SAMPLED:.0%} of API requests and SQS-triggered invocations traced (default sampling rule "
            "without its 1/s reservoir)",
            "DynamoDB units computed from item sizes by the AWS rules (moto's ConsumedCapacity is a constant)",
            "ProviderRef queries: "
            + (
                "answered by moto and checked against the meter's index"
                if quick
                else "answered from the meter's index of the writes (moto sorts the whole table for each one), still "
                "counted and billed as requests; the quick run checks that index against moto's answers"
            ),
        ],
        "prices_us_east_1": {"as_of": PRICES_AS_OF, **PRICES},
    }
    phases = {phase: phase_detail(run.meter.total(phase), n) for phase in PHASES}

    requests_figure = Figure.at_most(
        id="aws_cost.requests_to_submitted",
        title="AWS requests per recipient, accept to SUBMITTED (reference = goal)",
        value=requests_to_submitted,
        unit="requests/recipient",
        limit=GOAL_REQUESTS_TO_SUBMITTED,
        goal=f"<= {GOAL_REQUESTS_TO_SUBMITTED:g} requests/recipient (ratio <= 1)",
        detail={
            **common,
            "by_operation_per_recipient": per_recipient(Counter(submit.calls), n),
            "phases_counted": list(TO_SUBMITTED),
            "phase": phase_detail(submit, n),
            "by_phase": {phase: phases[phase] for phase in TO_SUBMITTED},
            "lambda_invocations": sum(lambda_by_phase[p] for p in TO_SUBMITTED),
            "otp_guard_extra_requests": otp_guard_requests(OTP_GUARD_RECIPIENTS),
        },
    )
    write_figure = Figure.at_most(
        id="aws_cost.write_units",
        title="DynamoDB write units per recipient, all phases (reference = goal)",
        value=write_units,
        unit="WRU/recipient",
        limit=GOAL_WRITE_UNITS,
        goal=f"<= {GOAL_WRITE_UNITS:g} WRU/recipient (ratio <= 1)",
        detail={
            "recipients": n,
            "by_phase_per_recipient": {
                phase: round(sum(run.meter.total(phase).write_units.values()) / n, 4) for phase in per_recipient_phases
            },
            "by_operation_per_recipient": {
                phase: per_recipient(run.meter.total(phase).write_units, n) for phase in per_recipient_phases
            },
            "index_write_units_per_recipient": round(sum(everything.index_write_units.values()) / n, 4),
            "message_record_bytes_when_delivered": run.record_bytes,
            "read_units_per_recipient": round(sum(everything.read_units.values()) / n, 4),
            "rules": "1 WRU per started KB per item, the larger of before and after; failed conditions billed; "
            "BatchWriteItem per item; index entry writes (keys + 100 bytes) when they appear, move or disappear",
        },
    )
    dollars_figure = Figure.at_most(
        id="aws_cost.dollars_per_million",
        title="AWS infrastructure $ per million recipients, receipts and webhooks included (reference = goal)",
        value=total_per_million,
        unit="$/M recipients",
        limit=GOAL_DOLLARS_PER_MILLION,
        goal=f"<= ${GOAL_DOLLARS_PER_MILLION:g} per million recipients (ratio <= 1)",
        detail={
            "recipients": n,
            "dollars_per_million_by_item": per_million,
            "quantities_per_recipient": {k: round(v / n, 6) for k, v in quantities.items()},
            "sqs_requests_per_recipient": round(quantities["sqs_requests_64kb"] / n, 5),
            "lambda_invocations_per_recipient": round(len(run.invocations) / n, 5),
            "lambda_invocations_by_phase": dict(lambda_by_phase),
            "lambda_by_function": invocation_detail(run),
            "api_gateway_requests": run.api_requests,
            "ceiling_dollars_per_million": CEILING_DOLLARS_PER_MILLION,
            "within_ceiling": total_per_million <= CEILING_DOLLARS_PER_MILLION,
            "by_phase": phase_costs(run, n),
            "status_counts_stream": {
                "records_handed_over": run.stream_records,
                "dollars_per_million": round(sum(costs(run, STATUS_COUNTS)[0].values()) / n * 1e6, 4),
            },
            "requests_by_phase": {phase: phases[phase]["requests"] for phase in PHASES},
            "phases": {phase: phases[phase] for phase in PHASES if phase not in TO_SUBMITTED},
            "prices_us_east_1": common["prices_us_east_1"],
            "assumptions": common["assumptions"],
            "left_out": "storage and PITR, the X-Ray reservoir, idle event-source polling, custom metrics, "
            "per-secret fees, data transfer, free tiers (none is a cost per recipient)",
        },
    )
    return [requests_figure, write_figure, dollars_figure]
