"""Figure 2 (cold start of each handler) and its part of figure 6 (peak RSS of each handler's process).

Each sample is a fresh Python process (`_cold_child.py`): for a handler, importing its module and serving one event
from `events/` (the time Lambda's init and first invoke would take); for the reference, `import boto3` alone.
Handlers run against in-process fakes (`_cold_fakes`): AWS clients that accept everything, HTTP transports that
answer at once; installing the AWS fakes happens between import and first event and is not timed. boto3 itself is
imported where a deployed handler imports it (at import through Powertools' idempotency and parameters, else when
the first AWS client is asked for, as `globesms.aws.clients` does): building the clients is faked, importing boto3
is not, since every handler pays it in Lambda and it is the reference. The rounds
interleave the reference with every handler, so noise falls on all alike; the figure is the median of the
handler's import + first event over the median `import boto3`, both timed inside their processes (the
interpreter's own start, the same for all, is left out: it would only pull every ratio toward 1) in CPU time of
the process. Importing is nearly all CPU (files come from the page cache), and CPU time does not stretch when the
other processes of this shared 2-core machine take the cores; wall times are in each figure's detail.

The code is loaded as Lambda loads it: the layer built as `sam build` builds it (`bench.layer.build_layer`, its
bytecode included) first on `sys.path`, as /opt/python is, then boto3 and what it requires (the runtime's: linked
from this virtualenv into a folder of their own, `_cold_env.runtime_site`) and the standard library, nothing else
(the virtualenv's other distributions would be scanned by what lists installed distributions), and each
handler's `app.py` copied out alone, as its function's build ships it, without bytecode. No process writes bytecode
(`PYTHONDONTWRITEBYTECODE`): Lambda's /opt and /var/task are read-only, so what the build did not compile is compiled
at every cold start. Until 2026-12-06 the figure imported the source tree, whose `__pycache__` the tests had
filled, while the layer shipped no bytecode at all: deployed cold starts were about twice the figure.

Peak RSS is the process's own peak (`VmHWM`) after its first event: a Lambda function's memory size must hold it.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._cold_env import HANDLERS, ROOT, Handler, child_env, run_script, runtime_site
from bench.figures import Figure
from bench.layer import build_layer

GOAL = 1.5
MEMORY_GOAL_MB = 128.0
CHILD = ROOT / "bench" / "_cold_child.py"


def run_child(config: dict[str, Any], env: dict[str, str], workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    result = run_script(CHILD, config, env, workdir)
    result["process_wall_s"] = time.perf_counter() - started
    return result


def check_answer(handler: Handler, result: dict[str, Any]) -> None:
    """A handler that did not serve its event as expected would look fast: its sample does not count."""
    answer = result["answer"]
    for key, expected in handler.expect.items():
        if answer.get(key) != expected:
            raise RuntimeError(f"{handler.name}: answered {answer}, expected {key}={expected}")
    if handler.folder in ("dispatch", "webhooks") and not result["http_requests"]:
        raise RuntimeError(f"{handler.name}: served without the HTTP request it exists to make")
    made = {operation for calls in result["aws_calls"].values() for operation in calls}
    missing = [operation for operation in handler.calls if operation not in made]
    if missing:
        raise RuntimeError(f"{handler.name}: served without {', '.join(missing)} (made {sorted(made)})")


def in_runs(calls: Sequence[str]) -> list[str]:
    """The calls in order, a run of one operation written once with its count ("query x240": a reconcile run
    queries each deadline bucket)."""
    runs: list[tuple[str, int]] = []
    for call in calls:
        if runs and runs[-1][0] == call:
            runs[-1] = (call, runs[-1][1] + 1)
        else:
            runs.append((call, 1))
    return [call if count == 1 else f"{call} x{count}" for call, count in runs]


def deployed_code(handlers: Sequence[Handler], workdir: Path) -> tuple[str, dict[str, Path]]:
    """The layer as `sam build` builds it, the runtime's boto3 (`runtime_site`) and each handler's `app.py` copied
    alone (no `__pycache__`), under `workdir`: the code a deployed function loads. Returns the `sys.path` entries
    (the layer's `python/` first, as /opt/python; then the runtime's packages) and each handler's copy."""
    build_layer(workdir / "layer")
    runtime = runtime_site(workdir / "runtime")
    copies: dict[str, Path] = {}
    for handler in handlers:
        copy = workdir / "functions" / handler.folder / handler.path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(handler.path, copy)
        copies[handler.name] = copy
    return os.pathsep.join([str(workdir / "layer" / "python"), str(runtime)]), copies


def deployed_env(handler_env: dict[str, str], site: str) -> dict[str, str]:
    """A child's environment with the layer first on `sys.path` (Lambda's /opt/python), then the runtime's boto3,
    and no bytecode written (Lambda's code is read-only). The child keeps only these and the standard library on
    `sys.path` (`lambda_path` in its config)."""
    return {**child_env(handler_env), "PYTHONPATH": site, "PYTHONDONTWRITEBYTECODE": "1"}


def sample(
    handlers: Sequence[Handler], rounds: int, workdir: Path
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    site, copies = deployed_code(handlers, workdir)
    events: dict[str, Path] = {}
    for handler in handlers:
        events[handler.name] = workdir / f"{handler.name}.json"
        events[handler.name].write_text(json.dumps(handler.event()))
    reference: list[dict[str, Any]] = []
    results: dict[str, list[dict[str, Any]]] = {handler.name: [] for handler in handlers}
    for _ in range(rounds):
        reference.append(run_child({"mode": "boto3", "lambda_path": True}, deployed_env({}, site), workdir))
        for handler in handlers:
            config = {
                "mode": "handler",
                "handler": str(copies[handler.name]),
                "event": str(events[handler.name]),
                "deployed": [site.split(os.pathsep)[0] + os.sep, str(copies[handler.name].parent) + os.sep],
                "lambda_path": True,
            }
            result = run_child(config, deployed_env(handler.env, site), workdir)
            if not str(result["globesms_file"]).startswith(site.split(os.pathsep)[0]):
                raise RuntimeError(f"{handler.name} loaded globesms from {result['globesms_file']}, not the layer")
            check_answer(handler, result)
            results[handler.name].append(result)
    return reference, results


def _median_ms(results: Sequence[dict[str, Any]], *keys: str) -> float:
    return float(statistics.median(sum(r[k] for k in keys) for r in results)) * 1000


def _median_mb(results: Sequence[dict[str, Any]], key: str = "peak_rss_kb") -> float:
    return float(statistics.median(r[key] for r in results)) / 1024


def memory_figure(name: str, title: str, rss_mb: float, reference_mb: float, detail: dict[str, object]) -> Figure:
    return Figure(
        id=f"memory.{name}",
        title=f"Peak RSS: {title}",
        value=rss_mb,
        unit="MB",
        reference=reference_mb,
        reference_label="a process that only imports boto3, for scale",
        ratio=None,  # the goal is the size itself: Lambda's 128 MB
        goal=f"<= {MEMORY_GOAL_MB:g} MB (Lambda's smallest useful size)",
        goal_op="<=",
        goal_value=MEMORY_GOAL_MB,
        detail=detail,
    )


def measure(quick: bool) -> list[Figure]:
    rounds = 1 if quick else 9
    with tempfile.TemporaryDirectory(prefix="globesms-cold-") as tmp:
        reference, results = sample(HANDLERS, rounds, Path(tmp))
    boto3_ms = _median_ms(reference, "import_cpu_s")
    boto3_mb = _median_mb(reference, "rss_after_import_kb")
    common = {
        "samples": rounds,
        "clock": "CPU time of the fresh process (time.process_time), medians; wall times beside",
        "fakes": "AWS clients and HTTP transports in-process (bench/_cold_fakes.py); AWS fakes installed untimed",
        "code": "the layer as sam build builds it (bytecode included) on PYTHONPATH, app.py alone, none written; "
        "sys.path: the layer, the runtime's boto3 distributions, the standard library",
        "boto3_import_wall_ms": round(_median_ms(reference, "import_s"), 1),
        "boto3_two_clients_cpu_ms": round(_median_ms(reference, "two_clients_cpu_s"), 1),
    }
    speed: list[Figure] = []
    memory: list[Figure] = []
    for handler in HANDLERS:
        runs = results[handler.name]
        cold_ms = _median_ms(runs, "import_cpu_s", "first_event_cpu_s")
        detail = {
            **common,
            "event": f"events/{handler.event_file}",
            "import_cpu_ms": round(_median_ms(runs, "import_cpu_s"), 1),
            "first_event_cpu_ms": round(_median_ms(runs, "first_event_cpu_s"), 1),
            "import_and_first_event_wall_ms": round(_median_ms(runs, "import_s", "first_event_s"), 1),
            "process_wall_ms": round(_median_ms(runs, "process_wall_s"), 1),
            "boto3_process_wall_ms": round(_median_ms(reference, "process_wall_s"), 1),
            "aws_calls": {service: in_runs(calls) for service, calls in runs[0]["aws_calls"].items()},
            "http_requests": runs[0]["http_requests"],
            # The handler's own app.py at least: its function's build ships no bytecode (a few ms to compile).
            "modules_compiled_at_load": runs[0]["compiled_at_load"],
            # Only the API and the intake accept requests: the others have no use for the request models.
            "request_models_loaded": runs[0]["request_models_loaded"],
            # Roots the shared TLS context read when built (None: no HTTPS client built): 0 from the hashed roots.
            "tls_roots_loaded": runs[0]["tls_roots_loaded"],
        }
        if handler.body_changes:
            detail["event_changes"] = handler.body_changes
        speed.append(
            Figure(
                id=f"cold_start.{handler.name}",
                title=f"Cold start: {handler.name} (import + first event)",
                value=cold_ms,
                unit="ms",
                reference=boto3_ms,
                reference_label="import boto3 in a fresh process",
                ratio=cold_ms / boto3_ms,
                goal=f"<= {GOAL:g}x import boto3",
                goal_op="<=",
                goal_value=GOAL,
                detail=detail,
            )
        )
        memory.append(
            memory_figure(
                handler.name,
                f"{handler.name} after a cold start",
                _median_mb(runs),
                boto3_mb,
                {
                    "samples": rounds,
                    "event": f"events/{handler.event_file}",
                    "measure": "peak RSS (VmHWM) of the process",
                },
            )
        )
    return speed + memory
