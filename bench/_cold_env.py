"""The Lambda handlers a benchmark runs in fresh processes: where each lives, the event it serves, its environment.

The environment is the one Lambda would give the function: template.yaml's (Globals and the function's own
variables, the parameters at their defaults, every table and queue named as AWS would name it: `local.aws.named`,
no AWS call) and the runtime's own, with one local substitution: the provider credentials, receipt and reply tokens
and webhook secret are the local stack's plain variables and the `*_SECRET_NAME` variables are blank (deployed they
come from Secrets Manager, whose client a cold start would also create). Nothing inherited from the calling shell
reaches a handler's AWS, Powertools or globesms settings. Tracing is as the template sets it by default
(parameter `TracerSubsegments` off: no handler builds Powertools' Tracer or imports the X-Ray SDK,
globesms/tracing.py).

The packages are the deployed ones too: `layer_modules` names what a function can import in Lambda (the layer's
requirements and theirs, and the runtime's boto3), and a benchmark child refuses anything else this virtualenv
happens to hold. It matters: httpx imports its command-line module when click and rich are installed (dev
tools bring them here), which the layer, without httpx's `cli` extra, never does.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from local.aws import named
from local.settings import EMULATOR_PORTS, LOCAL_ENV_DEFAULTS
from local.stack import LocalStack, parameter_context
from local.template import load_template

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"

#: Credentials and a region for every child, the reference's `import boto3` included (a function's region is its
#: environment's, `function_env`).
BASE_ENV: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}
SECRETS = {name: value for name, value in LOCAL_ENV_DEFAULTS.items() if name != "GLOBESMS_ALLOW_LOOPBACK_CALLBACKS"}


@cache
def _stack() -> LocalStack:
    """template.yaml resolved as deployed with its default parameters, against names rather than resources."""
    template = load_template()
    context = parameter_context(template, {})
    # `parameter_context` points the provider endpoints at the local emulators; deployed, the default (blank)
    # means each provider's own HTTPS endpoint.
    for provider in EMULATOR_PORTS:
        parameter = f"{provider.capitalize()}Endpoint"
        context.parameters[parameter] = template.parameters[parameter].default
    return LocalStack.over(template, context, named(template, context))


@cache
def function_env(logical_id: str) -> dict[str, str]:
    """The environment Lambda would give the function `logical_id`, with the local substitution for secrets."""
    stack = _stack()
    env = stack.function_environment(stack.template.functions[logical_id])
    blanked = {name: "" for name in env if name.endswith("_SECRET_NAME")}
    return {**env, **blanked, **SECRETS}


ACCEPT_FUNCTION = "SendApiFunction"


def dispatch_function(provider: str) -> str:
    return f"{provider.capitalize()}DispatchFunction"


@dataclass(frozen=True)
class Handler:
    """One handler serving one event. `function`: its template logical id (its environment). `expect`: what its
    answer must say for the run to count (a handler that failed early would look fast): `statusCode`, or
    `failures` (the SQS batch items it reported failed)."""

    name: str
    function: str
    event_file: str
    expect: dict[str, int] = field(default_factory=dict)
    #: Changes to the event's first SQS record body (JSON), when the shipped event cannot be served as deployed.
    body_changes: dict[str, Any] = field(default_factory=dict)
    #: AWS operations the first event must make, for handlers whose answer says little (scheduled runs, a
    #: stream's consumer): one that made none of them did not do its work.
    calls: tuple[str, ...] = ()

    @property
    def env(self) -> dict[str, str]:
        return function_env(self.function)

    @property
    def path(self) -> Path:
        return _stack().template.functions[self.function].code_uri / "app.py"

    @property
    def folder(self) -> str:
        return self.path.parent.name

    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads((EVENTS / self.event_file).read_text())
        if self.body_changes:
            record = event["Records"][0]
            body = json.loads(record["body"])
            for content in body.get("contents", []):
                content.update(self.body_changes)
            record["body"] = json.dumps(body)
        return event


HANDLERS: tuple[Handler, ...] = (
    Handler("send_api", ACCEPT_FUNCTION, "send_api_post_messages.json", {"statusCode": 202}),
    # One good record, one malformed (reported failed).
    Handler("intake", "IntakeFunction", "intake_batch.json", {"failures": 1}),
    Handler("dispatch_aliyun", dispatch_function("aliyun"), "dispatch_aliyun.json", {"failures": 0}),
    # The shipped event's template id "otp" is not a Tencent id (numeric): the client would refuse it and send
    # nothing. The registry's Tencent id for example-otp makes it a send.
    Handler(
        "dispatch_tencent",
        dispatch_function("tencent"),
        "dispatch_tencent.json",
        {"failures": 0},
        body_changes={"template_id": "1234567"},
    ),
    Handler("dispatch_huawei", dispatch_function("huawei"), "dispatch_huawei.json", {"failures": 0}),
    Handler("receipts", "ReceiptsFunction", "receipts_aliyun.json", {"statusCode": 200}),
    Handler("webhooks", "WebhookSenderFunction", "webhooks_batch.json", {"failures": 0}),
    # The scheduled and stream-fed functions: each reads (or writes) the table whatever it finds.
    Handler("reconcile", "ReconcileFunction", "reconcile_schedule.json", calls=("query",)),
    Handler("scheduler", "SchedulerFunction", "scheduler_sweep.json", calls=("query",)),
    Handler("status_counts", "StatusCountsFunction", "status_counts_stream.json", calls=("transact_write_items",)),
)


def child_env(handler_env: dict[str, str]) -> dict[str, str]:
    """The calling environment without any AWS, Powertools, Lambda or globesms setting, plus the handler's. Nor
    SSL_CERT_FILE / SSL_CERT_DIR, which Lambda does not set: where a machine sets them (this one points them at
    Debian's bundle of 144 roots), httpx would load those instead of certifi's, at a different cost."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(
            ("AWS_", "POWERTOOLS_", "GLOBESMS_", "_X_AMZN", "PYTHON", "LAMBDA_", "_HANDLER", "SSL_CERT_")
        )
    }
    return {**inherited, **BASE_ENV, **handler_env}


#: Lambda's Python runtime ships boto3 (and what it requires); the layer brings the rest.
RUNTIME_PACKAGES = ("boto3",)


@cache
def layer_modules() -> tuple[str, ...]:
    """The top-level modules a deployed function can import besides the standard library: those of the packages in
    the layer's lock (`layers/globesms/requirements.txt`, everything the layer installs), of what they require in
    turn, and of the runtime's boto3 (and what it requires); plus globesms itself."""
    wanted = [Requirement(line) for line in layer_requirement_lines()] + [Requirement(p) for p in RUNTIME_PACKAGES]
    return tuple(sorted({"globesms", *modules_of(required_distributions(wanted))}))


def runtime_site(target: Path) -> Path:
    """A folder holding what Lambda's Python runtime puts on `sys.path` beside the layer: the runtime's boto3 and
    the distributions it requires (their packages and `.dist-info`), as symlinks into this virtualenv. A child whose
    `sys.path` is the layer, this folder and the standard library sees the installed distributions a function sees:
    what scans them (pydantic's plugin loader, `importlib.metadata`) costs what it costs in Lambda, not what 136
    development distributions would cost."""
    target.mkdir(parents=True, exist_ok=True)
    for name in required_distributions(Requirement(package) for package in RUNTIME_PACKAGES):
        distribution = importlib.metadata.distribution(name)
        tops = {Path(str(file)).parts[0] for file in distribution.files or []}
        for top in sorted(tops - {"..", "__pycache__"}):
            link = target / top
            if not link.exists():
                link.symlink_to(Path(str(distribution.locate_file(top))).resolve())
    return target


def required_distributions(requirements: Iterable[Requirement]) -> set[str]:
    """The distributions of `requirements` and, recursively, of what they require here (extras followed, markers
    evaluated for this interpreter), by canonical name."""
    wanted = list(requirements)
    seen: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        for extra in sorted(requirement.extras) or [""]:
            key = f"{canonicalize_name(requirement.name)}[{extra}]"
            if key in seen:
                continue
            seen.add(key)
            for line in importlib.metadata.requires(requirement.name) or []:
                needed = Requirement(line)
                if needed.marker is None or needed.marker.evaluate({"extra": extra}):
                    wanted.append(needed)
    return {key.partition("[")[0] for key in seen}


def modules_of(distributions: Collection[str]) -> set[str]:
    """The top-level import names these installed distributions (canonical names) provide."""
    return {
        module
        for module, owners in importlib.metadata.packages_distributions().items()
        if any(canonicalize_name(owner) in distributions for owner in owners)
    }


def layer_requirement_lines() -> list[str]:
    """The lock's requirements (`name==version`, perhaps with a marker): the lines that start with a name; their
    `--hash` options and `# via` comments follow on indented lines."""
    text = (ROOT / "layers" / "globesms" / "requirements.txt").read_text()
    return [line.removesuffix("\\").strip() for line in text.splitlines() if line[:1].isalnum()]


def run_script(script: Path, config: dict[str, Any], env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """Run a benchmark child script (`_cold_child.py`, `_cpu_child.py`) in a fresh interpreter, limited to the
    deployed packages, and return the JSON result it writes. Its stdout (the handler's logs) is dropped."""
    result_path = workdir / "result.json"
    result_path.unlink(missing_ok=True)
    completed = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, str(script), json.dumps({**config, "modules": layer_modules(), "result": str(result_path)})],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if completed.returncode != 0 or not result_path.exists():
        raise RuntimeError(f"{script.name} {config} failed:\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result
