"""Figure 3 (CPU per recipient of the accept and dispatch paths) and its part of figure 6 (their peak RSS).

Accept: `send_api` serving `POST /v1/messages` with 10,000 recipients (valid mobile numbers of 20 countries; one
free-text spec, routed to Alibaba, and one registered-template spec, routed to Tencent and, for +86, Huawei):
parsing the body, validation, routing, records, packing, the answer, and the DynamoDB and SQS adapters' own work,
the AWS calls themselves faked. Reference: `phonenumbers` parsing, validating and formatting (E.164) the same
numbers alone, as the performance issue defines it.

Dispatch, per provider: the dispatcher serving one full pack from the provider's queue (1,000 Alibaba, 200
Tencent, 500 Huawei recipients, as accept packs them): claiming it, checking and sending every message through the
real client (on a transport that answers at once), recording every outcome. Reference: building and signing the
same requests alone.

Each path runs in a fresh process of its own (`_cpu_child.py`), whose samples alternate between the handler and
the reference; values are median CPU time per recipient (the 4 threads that write records included), ratio =
handler / reference. The process's peak RSS is figure 6's for that path.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._cold_env import ACCEPT_FUNCTION, EVENTS, ROOT, child_env, dispatch_function, function_env, run_script
from bench._cpu_numbers import MAINLAND, REGIONS, mobile_numbers
from bench.cold_start import CHILD as COLD_CHILD
from bench.cold_start import memory_figure
from bench.figures import Figure
from globesms.accept.planning import plan_batch
from globesms.models.api import MessageSpec
from globesms.models.outbound import ProviderName

GOAL = 1.5
CHILD = ROOT / "bench" / "_cpu_child.py"
SEND_API = ROOT / "functions" / "send_api" / "app.py"
DISPATCH = ROOT / "functions" / "dispatch" / "app.py"
PACK_SIZES = {ProviderName.ALIYUN: 1000, ProviderName.TENCENT: 200, ProviderName.HUAWEI: 500}
TEXT = "Your parcel is out for delivery today. Track it at acme.example/t/8F3K"
TEMPLATE = {"id": "example-otp", "params": {"code": "482913", "minutes": 5}}


def accept_event(recipients: int) -> dict[str, Any]:
    """The shipped POST /v1/messages event with a body of `recipients` numbers: half free text, half template
    (a tenth of those +86)."""
    texts = recipients // 2
    mainland = (recipients - texts) // 10
    body = {
        "messages": [
            {"to": mobile_numbers(texts), "text": TEXT, "type": "NOTIFY", "sender_id": "Acme"},
            {
                "to": mobile_numbers(recipients - texts - mainland, skip=-(-texts // len(REGIONS)))
                + mobile_numbers(mainland, (MAINLAND,)),
                "template": TEMPLATE,
                "type": "OTP",
            },
        ]
    }
    event: dict[str, Any] = json.loads((EVENTS / "send_api_post_messages.json").read_text())
    event["body"] = json.dumps(body)
    return event


def dispatch_event(provider: ProviderName) -> dict[str, Any]:
    """The shipped dispatch event of `provider`, carrying one full pack as accept makes it."""
    count = PACK_SIZES[provider]
    content: dict[str, Any] = (
        {"text": TEXT, "type": "NOTIFY", "sender_id": "Acme"}
        if provider is ProviderName.ALIYUN
        else {"template": TEMPLATE, "type": "OTP"}
    )
    spec = MessageSpec.model_validate({"to": mobile_numbers(count), "provider": provider.value, **content})
    plan = plan_batch([spec], batch_id="01JDBENCHDISPATCH000000000", now=datetime.now(UTC), retention_days=90)
    [pack, *rest] = plan.packs[provider]
    if rest or len(pack.recipients) != count:
        raise RuntimeError(f"{provider}: {count} recipients did not make one full pack")
    event: dict[str, Any] = json.loads((EVENTS / f"dispatch_{provider.value}.json").read_text())
    event["Records"][0]["body"] = pack.model_dump_json(exclude_none=True)
    return event


def _figure(name: str, title: str, result: dict[str, Any], reference_label: str, detail: dict[str, object]) -> Figure:
    recipients = result["recipients"]
    seconds = result["seconds"]
    value, reference = seconds["handler"] / recipients * 1e6, seconds["reference"] / recipients * 1e6
    return Figure(
        id=f"cpu.{name}",
        title=f"CPU per recipient: {title}",
        value=value,
        unit="µs",
        reference=reference,
        reference_label=reference_label,
        ratio=value / reference,
        goal=f"<= {GOAL:g}x the reference",
        goal_op="<=",
        goal_value=GOAL,
        detail={
            "recipients": recipients,
            "seconds_per_run": {run: round(s, 6) for run, s in seconds.items()},
            "clock": "CPU time of the process, all threads (time.process_time), medians of interleaved samples",
            **detail,
        },
    )


def measure(quick: bool) -> list[Figure]:
    repeat = 2 if quick else 9
    accept_recipients = 1_000 if quick else 10_000
    speed: list[Figure] = []
    memory: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="globesms-cpu-") as tmp:
        workdir = Path(tmp)
        boto3_mb = boto3_rss_mb(workdir)
        event_path = workdir / "accept.json"
        event_path.write_text(json.dumps(accept_event(accept_recipients)))
        config = {"kind": "accept", "handler": str(SEND_API), "event": str(event_path), "repeat": repeat}
        result = run_script(CHILD, config, child_env(function_env(ACCEPT_FUNCTION)), workdir)
        name = f"accept_{accept_recipients // 1000}k"
        speed.append(
            _figure(
                name,
                f"accept, POST /v1/messages with {accept_recipients:,} recipients",
                result,
                "phonenumbers parsing, validating and formatting the same numbers alone",
                {
                    "handler": "functions/send_api (API Gateway event in, 202 answer out)",
                    "faked": "DynamoDB and SQS calls (bench/_cold_fakes.py)",
                    "reference_calls": "phonenumbers.parse, is_valid_number, number_type, format_number(E164)",
                },
            )
        )
        memory.append(_memory(name, f"send_api serving {accept_recipients:,} recipients", result, boto3_mb))
        for provider in ProviderName:
            event_path = workdir / f"dispatch_{provider.value}.json"
            event_path.write_text(json.dumps(dispatch_event(provider)))
            config = {"kind": "dispatch", "handler": str(DISPATCH), "event": str(event_path), "repeat": repeat}
            result = run_script(CHILD, config, child_env(function_env(dispatch_function(provider.value))), workdir)
            name = f"dispatch_{provider.value}"
            speed.append(
                _figure(
                    name,
                    f"dispatch, one {provider.value} pack of {PACK_SIZES[provider]:,}",
                    result,
                    "building and signing the same requests alone",
                    {
                        "handler": "functions/dispatch (SQS event in, every recipient recorded SUBMITTED)",
                        "faked": "DynamoDB calls; the provider's answer at the HTTP transport",
                        "client_send_per_recipient_us": round(
                            result["seconds"]["client_send"] / result["recipients"] * 1e6, 2
                        ),
                    },
                )
            )
            title = f"dispatch ({provider.value}) serving a pack of {PACK_SIZES[provider]:,}"
            memory.append(_memory(name, title, result, boto3_mb))
    return speed + memory


def _memory(name: str, title: str, result: dict[str, Any], boto3_mb: float) -> Figure:
    detail: dict[str, object] = {"measure": "peak RSS (VmHWM) of the process after all its runs"}
    return memory_figure(f"cpu_{name}", title, result["peak_rss_kb"] / 1024, boto3_mb, detail)


def boto3_rss_mb(workdir: Path) -> float:
    """The peak RSS of a process that only imports boto3, for scale."""
    return float(run_script(COLD_CHILD, {"mode": "boto3"}, child_env({}), workdir)["rss_after_import_kb"]) / 1024
