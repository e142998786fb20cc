"""The import boundary, checked on what is really loaded: importing any logic module of the layer, in a fresh
interpreter, loads none of boto3, botocore, httpx and the X-Ray SDK (charter: logic modules never import boto3 or
httpx; adapters do). A static look at import statements misses what comes in through other modules (importing
`config` once pulled in the X-Ray SDK through `observability`); this test does not.

First one interpreter imports every logic module, one after the other: each module's import runs there as it would
alone (a module's body runs once, whoever imports it first), so if none of FORBIDDEN is loaded then, no logic module
loads one. That each also imports on its own, whatever was imported before it, follows from the package having no
import cycle at load time (tests/unit/test_import_cycles.py): only a cycle makes an import's outcome depend on the
order. Only when a forbidden module is loaded, or an import fails, does the probe find which: one interpreter, which
imports nothing of globesms itself, forks a child per module, so every module is imported into the same clean state,
on its own, and the child reports what that import loaded. (The probe alone took 14 s of `make test`, the whole
import about one.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "globesms"
PACKAGE = LAYER / "globesms"

FORBIDDEN = ("boto3", "botocore", "httpx", "aws_xray_sdk")

#: Modules that may load them, and why. Everything else under globesms/ is logic and is checked.
EXCEPTIONS: dict[str, str] = {
    "globesms.aws": "the boto3 adapters (package)",
    "globesms.observability": "Powertools Logger, Metrics and tracer for the handlers; Powertools imports botocore",
    "globesms.tracing": "Powertools' Tracer (the X-Ray SDK) when a deployment turns it on",
    "globesms.providers.transport": "the provider clients' httpx transport",
    "globesms.providers.http_client": "the provider clients' shared httpx client",
    "globesms.providers.aliyun.client": "Alibaba's httpx client",
    "globesms.providers.aliyun.endpoint": "builds Alibaba's httpx requests (part of its client)",
    "globesms.providers.tencent.client": "Tencent's httpx client",
    "globesms.providers.huawei.client": "Huawei's httpx client",
    "globesms.webhooks.sender": "POSTs events to customers with httpx (an adapter, like the provider clients)",
    "globesms.webhooks.pinned": "the httpx client that connects to the vetted address (the sender's adapter)",
    "globesms.cookieless": "the httpx client (without cookies) the provider and webhook adapters send through",
    "globesms.tls": "the verifying TLS context the provider and webhook httpx clients share (httpx builds it)",
    "globesms.accept.idempotency": "Powertools idempotency on its DynamoDB persistence layer, which imports boto3",
    "globesms.api": "the HTTP API's routes (Powertools routers): the API function's edge, which builds the adapters",
    "globesms.callbacks": "the providers' receipt and reply endpoints (Powertools routers): the receipts function",
    "globesms.http_errors": "builds Powertools event-handler responses (handlers only); Powertools imports botocore",
}

#: Imported by the probe before it forks (they load none of FORBIDDEN, which it checks), so that each child imports
#: only globesms: these take most of an import's time, and would otherwise be loaded again by every child.
PRELOADED = ("pydantic", "phonenumbers")

# Run in a fresh interpreter: fork per module (two at a time), import it in the child, report what it loaded.
_PROBE = """
import json, os, sys
forbidden = set(sys.argv[1].split(","))
for library in sys.argv[2].split(","):
    __import__(library)
assert not forbidden & {n.split(".")[0] for n in sys.modules}, "the probe itself loaded a forbidden module"

def probe(module):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            __import__(module)
            report = {"module": module, "loaded": sorted(forbidden & {n.split(".")[0] for n in sys.modules})}
        except BaseException as exc:
            report = {"module": module, "error": f"{type(exc).__name__}: {exc}"}
        os.write(write, json.dumps(report).encode())
        os._exit(0)
    os.close(write)
    return pid, read

modules = sys.argv[3:]
for start in range(0, len(modules), 2):
    running = [probe(module) for module in modules[start:start + 2]]
    for pid, read in running:
        with os.fdopen(read) as answer:
            print(answer.read(), flush=True)
        os.waitpid(pid, 0)
"""


# Run in a fresh interpreter: import every module given, then print what of FORBIDDEN is loaded (on a line of its
# own after LOADED, whatever a module printed while imported).
LOADED = "loaded: "
_ALL_AT_ONCE = f"""
import json, sys
for module in sys.argv[2:]:
    __import__(module)
print("\\n{LOADED}" + json.dumps(sorted(set(sys.argv[1].split(",")) & {{n.split(".")[0] for n in sys.modules}})))
"""


def layer_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter that finds only the layer (and the virtualenv's packages)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(LAYER), "PATH": ""},
        check=False,
    )


def loaded_by_importing_all(modules: list[str]) -> list[str] | None:
    """What of FORBIDDEN importing all of `modules` into one interpreter loads; None if one of them failed."""
    run = layer_python(_ALL_AT_ONCE, ",".join(FORBIDDEN), *modules)
    if run.returncode != 0:
        return None
    loaded: list[str] = json.loads(run.stdout.splitlines()[-1].removeprefix(LOADED))
    return loaded


def run_probe(modules: list[str]) -> list[dict[str, object]]:
    probe = layer_python(_PROBE, ",".join(FORBIDDEN), ",".join(PRELOADED), *modules)
    assert probe.returncode == 0, probe.stderr
    return [json.loads(line) for line in probe.stdout.splitlines() if line.strip()]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(LAYER).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_exception(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in EXCEPTIONS)


def logic_modules() -> list[str]:
    return sorted(m for m in map(module_name, PACKAGE.rglob("*.py")) if not is_exception(m))


def test_every_exception_names_a_module_that_exists() -> None:
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    assert set(EXCEPTIONS) <= modules


def test_importing_a_logic_module_loads_no_aws_sdk_httpx_or_xray() -> None:
    modules = logic_modules()
    assert len(modules) > 40  # the walk found the package
    if loaded_by_importing_all(modules) == []:
        return  # every module imported, and none loaded a forbidden one: none does on its own either
    reports = run_probe(modules)  # which module loads what, or fails to import
    assert [r["module"] for r in reports] == modules
    assert [r for r in reports if "error" in r] == []
    assert {r["module"]: r["loaded"] for r in reports if r["loaded"]} == {}


def test_the_probe_sees_what_an_import_loads() -> None:
    """The check can fail: an exception's module, probed the same way, is reported with what it loads."""
    assert loaded_by_importing_all(["globesms.domain.status", "globesms.webhooks.sender"]) == ["httpx"]
    assert loaded_by_importing_all(["globesms.domain.status", "globesms.no_such_module"]) is None
    reports = {r["module"]: r["loaded"] for r in run_probe(["globesms.webhooks.sender", "globesms.observability"])}
    assert reports == {
        "globesms.webhooks.sender": ["httpx"],
        # No X-Ray SDK: the Tracer is built by the first decoration with tracing on (globesms/tracing.py).
        "globesms.observability": ["botocore"],
    }
