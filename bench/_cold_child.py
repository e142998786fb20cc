"""One cold start in this fresh process (run as a script by `bench.cold_start`, never imported by it).

    python bench/_cold_child.py '{"mode": "handler", "handler": ".../app.py", "event": ".../event.json",
                                  "modules": [...], "result": ".../result.json"}'
    python bench/_cold_child.py '{"mode": "boto3", "modules": [...], "result": ".../result.json"}'

`handler`: times importing the handler module, then (fakes installed in between, untimed) serving its event
once, as Lambda's init and first invoke would. `boto3`: times `import boto3` alone. Each is timed in CPU time of
the process (all threads; system time, such as reading files, included) and in wall time. Both modes run the same
preamble (standard library, plus `bench._cold_fakes` and `bench._sig_answers`, standard library only too) before
their clock starts, so neither gets a module for free that the other pays for. The result (seconds, the answer's
gist, peak RSS) is written as JSON to `result`: the handler's logs own stdout. `modules`: the third-party
top-level modules the process may import (`_cold_env.layer_modules`, what Lambda would have).
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import sys
import time

TYPE_CHECKING = False  # not from typing: it is not loaded at start, and this preamble must not load it

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import _cold_fakes  # noqa: E402

if TYPE_CHECKING:
    from typing import Any


class Context:
    """What the Lambda runtime hands a handler."""

    function_name = "globesms-bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:globesms-bench"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/globesms-bench"
    log_stream_name = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def peak_rss_kb() -> int:
    """This process's own peak RSS (Linux `VmHWM`). Not `ru_maxrss`: across fork and exec Linux carries the
    forking parent's peak into it, so a child of a big benchmark process would report the parent's size."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def gist(answer: Any) -> dict[str, int | None]:
    if not isinstance(answer, dict):
        return {}
    failures = answer.get("batchItemFailures")
    return {"statusCode": answer.get("statusCode"), "failures": None if failures is None else len(failures)}


def compiled_at_load(deployed: list[str]) -> list[str]:
    """The modules of the deployed code (under one of the `deployed` folders: the layer, the handler's) this process
    compiled from source because no bytecode was there to read (the process writes none): in Lambda, whose code is
    read-only, that compiling happens again at every cold start. The benchmark's own modules are left out."""
    compiled = []
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        cached, origin = getattr(spec, "cached", None), str(getattr(spec, "origin", None))
        if cached and origin.endswith(".py") and origin.startswith(tuple(deployed)) and not os.path.exists(cached):
            compiled.append(name)
    return sorted(compiled)


def tls_roots_loaded() -> int | None:
    """How many roots the shared TLS context (`globesms.tls`) holds after the event, None if none was built. The
    fakes answer at the transport, so no handshake has read any: with the layer's hashed roots, 0."""
    tls = sys.modules.get("globesms.tls")
    if tls is None or not tls.verifying_context.cache_info().currsize:
        return None
    return len(tls.verifying_context().get_ca_certs())


def serve_once(config: dict[str, Any]) -> dict[str, Any]:
    with open(config["event"]) as source:
        event = json.load(source)  # the runtime parses the event before it calls the handler
    requests: list[str] = []

    def respond(request: Any) -> tuple[int, bytes]:
        requests.append(request.url.host)
        return _cold_fakes.answer_from_request(request)

    _cold_fakes.patch_httpx_on_import(respond)
    _cold_fakes.patch_resolver()
    started, started_cpu = time.perf_counter(), time.process_time()
    spec = importlib.util.spec_from_file_location("app", config["handler"])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["app"] = module
    spec.loader.exec_module(module)
    imported, imported_cpu = time.perf_counter(), time.process_time()
    fakes = _cold_fakes.install_fake_aws()
    serving, serving_cpu = time.perf_counter(), time.process_time()
    answer = module.lambda_handler(event, Context())
    served, served_cpu = time.perf_counter(), time.process_time()
    return {
        "import_cpu_s": imported_cpu - started_cpu,
        "first_event_cpu_s": served_cpu - serving_cpu,
        "import_s": imported - started,
        "first_event_s": served - serving,
        "answer": gist(answer),
        "aws_calls": {service: fake.calls for service, fake in fakes.items()},
        "http_requests": requests,
        "globesms_file": getattr(sys.modules.get("globesms"), "__file__", None),
        "request_models_loaded": "globesms.models.api" in sys.modules,
        "tls_roots_loaded": tls_roots_loaded(),
        "compiled_at_load": compiled_at_load(config.get("deployed", [])),
    }


def import_boto3() -> dict[str, Any]:
    started, started_cpu = time.perf_counter(), time.process_time()
    import boto3

    imported, imported_cpu = time.perf_counter(), time.process_time()
    rss_kb = peak_rss_kb()
    # For scale only, after the measurement: what the faked clients of a handler would cost to create.
    boto3.client("dynamodb")
    boto3.client("sqs")
    return {
        "import_cpu_s": imported_cpu - started_cpu,
        "first_event_cpu_s": 0.0,
        "import_s": imported - started,
        "first_event_s": 0.0,
        "rss_after_import_kb": rss_kb,
        "two_clients_cpu_s": time.process_time() - imported_cpu,
    }


def keep_lambda_path() -> None:
    """`sys.path` as Lambda's: PYTHONPATH (the layer, the runtime's boto3) and the standard library, without this
    virtualenv's site-packages, where development distributions would be found and scanned."""
    given = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    stdlib = [entry for entry in sys.path if entry.startswith(sys.base_prefix) and "site-packages" not in entry]
    sys.path[:] = [sys.path[0], *given, *stdlib]  # [0]: this repository, for `bench`


def main() -> None:
    config = json.loads(sys.argv[1])
    if config.get("lambda_path"):
        keep_lambda_path()
    _cold_fakes.only_modules(config["modules"])
    result = import_boto3() if config["mode"] == "boto3" else serve_once(config)
    result["peak_rss_kb"] = peak_rss_kb()
    with open(config["result"], "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
