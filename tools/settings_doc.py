"""docs/configuration.md, generated from the settings models (globesms.config and the provider clients') and
template.yaml, so the list of variables cannot drift from the code that reads them.

    python -m tools.settings_doc            # print the document
    python -m tools.settings_doc --write    # write docs/configuration.md
    python -m tools.settings_doc --check    # exit 1 when docs/configuration.md differs (tests do the same)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from globesms import config
from globesms.models.outbound import ProviderName
from globesms.providers.aliyun import client as aliyun
from globesms.providers.huawei import client as huawei
from globesms.providers.tencent import client as tencent
from local.template import Template, load_template

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "configuration.md"

#: Each provider's client settings and the variables they are read from; its dispatch function reads them.
PROVIDER_SETTINGS: Mapping[ProviderName, tuple[type[BaseModel], Mapping[str, str]]] = {
    ProviderName.ALIYUN: (aliyun.AliyunSettings, aliyun.ENVIRONMENT_VARIABLES),
    ProviderName.TENCENT: (tencent.TencentSettings, tencent.ENVIRONMENT_VARIABLES),
    ProviderName.HUAWEI: (huawei.HuaweiSettings, huawei.ENVIRONMENT_VARIABLES),
}

#: The providers with a status query (reconcile/): ReconcileFunction reads their client settings too.
QUERIED_PROVIDERS = (ProviderName.ALIYUN, ProviderName.TENCENT)

#: Variables the template sets that no settings model reads: the libraries' own.
LIBRARY_VARIABLES: Mapping[str, str] = {
    "POWERTOOLS_SERVICE_NAME": "Powertools: the `service` of logs, metrics and traces",
    "POWERTOOLS_METRICS_NAMESPACE": "Powertools: the CloudWatch namespace of the metrics",
    "POWERTOOLS_LOG_LEVEL": "Powertools: the log level (template parameter LogLevel)",
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "Powertools: `false`, so no traced response holds personal data "
    "(docs/security-edges.md)",
    "POWERTOOLS_TRACER_CAPTURE_ERROR": "Powertools: `false`, so no traced exception holds personal data",
    "POWERTOOLS_TRACE_DISABLED": "Powertools: `true` unless the template parameter TracerSubsegments is `true`; "
    "with `true` the functions never build the Tracer (globesms/tracing.py)",
    "AWS_ENDPOINT_URL": "boto3: every AWS client's endpoint (empty when deployed); `make run` and `sam local`: use "
    "this AWS endpoint instead of starting moto",
    "AWS_ENDPOINT_URL_DYNAMODB": "boto3: DynamoDB's own endpoint, read before AWS_ENDPOINT_URL (empty when deployed); "
    "`make run` runs DynamoDB in a moto process of its own (template parameter AwsDynamoDBEndpointUrl for `sam local`)",
}

#: Not read by the functions: the local stack's and the command line's.
OUTSIDE_THE_FUNCTIONS: Mapping[str, str] = {
    "GLOBESMS_API_KEY": "`make run`'s API key (default `local-dev-key`), and the key the `globesms` command sends",
    "GLOBESMS_API_URL": "the API the `globesms` command talks to (docs/cli.md)",
    "API_PORT": "`make run`'s API port (default 3000)",
    "GLOBESMS_FUZZ_EXAMPLES": "`make soak`: examples per fuzz test",
}


@dataclass
class Variable:
    name: str
    meaning: str
    readers: list[str] = field(default_factory=list)
    defaults: dict[str, list[str]] = field(default_factory=dict)  # default -> the readers it applies to

    def default(self) -> str:
        if len(self.defaults) == 1:
            return next(iter(self.defaults))
        return "; ".join(f"{d} ({', '.join(_short(r) for r in readers)})" for d, readers in self.defaults.items())


def function_settings() -> dict[str, list[tuple[type, Mapping[str, str]]]]:
    """Function (template logical id) -> the settings it reads, each with its field -> variable names."""
    functions: dict[str, list[tuple[type, Mapping[str, str]]]] = {
        function: [(model, config.variable_names(model)) for model in models]
        for function, models in config.FUNCTION_SETTINGS.items()
    }
    for provider, settings in PROVIDER_SETTINGS.items():
        functions[f"{provider.value.capitalize()}DispatchFunction"].append(settings)
        if provider in QUERIED_PROVIDERS:  # the reconcile run calls their status queries
            functions["ReconcileFunction"].append(settings)
    return functions


def variables() -> dict[str, Variable]:
    found: dict[str, Variable] = {}
    for function, sources in function_settings().items():
        for model, names in sources:
            for field_name, variable in names.items():
                info = config.model_of(model).model_fields[field_name]
                entry = found.setdefault(variable, Variable(variable, info.description or ""))
                if function not in entry.readers:
                    entry.readers.append(function)
                    entry.defaults.setdefault(_default(info.default), []).append(function)
    return found


def _default(value: Any) -> str:
    if value is PydanticUndefined:
        return "required"
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        return f"`{value.value}`"
    return f"`{value}`"


def _readers(readers: list[str], every: int) -> str:
    if len(readers) == every:
        return "every function"
    return ", ".join(map(_short, readers))


def _short(function: str) -> str:
    return function.removesuffix("Function")


def _set_by_template(variable: str, template: Template) -> str:
    values = {
        str(_reference(f.environment[variable])) for f in template.functions.values() if variable in f.environment
    }
    return ", ".join(sorted(values))


def _reference(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return f"`{value['Ref']}`"
    return f"`{value}`"


def markdown() -> str:
    template = load_template()
    every = len(config.FUNCTION_SETTINGS)
    rows = [
        f"| `{v.name}` | {v.default()} | {_readers(v.readers, every)} | {_set_by_template(v.name, template) or '—'} "
        f"| {v.meaning} |"
        for v in sorted(variables().values(), key=lambda v: v.name)
    ]
    models = ", ".join(
        f"`{m.__name__}`" for m in dict.fromkeys(m for ms in config.FUNCTION_SETTINGS.values() for m in ms)
    )
    lines = [
        "# Configuration",
        "",
        "<!-- Generated by `python -m tools.settings_doc --write` from the settings models; "
        "tests/unit/test_configuration.py fails when this file and the models disagree. Edit the models. -->",
        "",
        "Every variable a function reads, from its settings model: "
        f"{models} in `layers/globesms/globesms/config.py`, and each provider client's settings "
        "(`AliyunSettings`, `TencentSettings`, `HuaweiSettings`) read by that provider's dispatch function. A model "
        "is read once per process, on first use (a cold start), through `globesms.config.load_settings`:",
        "",
        "- unset, empty or blank is the default; values are used stripped;",
        "- a `required` variable that is missing, or any value that breaks its rule, fails with one message naming "
        "each variable and the rule it breaks, never the value;",
        "- provider credentials are read from the environment merged with the provider's secret "
        "(`GLOBESMS_<PROVIDER>_SECRET_NAME`, a JSON object of these same variable names, read through a 5-minute "
        "cache); the receipt and reply tokens never from that secret, only from their own "
        '(`GLOBESMS_<PROVIDER>_RECEIPT_SECRET_NAME`, `{"GLOBESMS_<PROVIDER>_RECEIPT_TOKEN": "…", '
        '"GLOBESMS_<PROVIDER>_REPLY_TOKEN": "…"}`, the same cache; docs/security-edges.md) or, when none is named, '
        "the environment; so deployed they live in Secrets Manager and locally in the environment;",
        "- what is loaded at run time from SSM (the route table of `GLOBESMS_ROUTES_PARAMETER`) is re-read every 5 "
        "minutes, and an invalid or unreadable value leaves the last good table in force.",
        "",
        "*Set by the template* is the value `template.yaml` gives the variable (a parameter or a resource); "
        "`tests/unit/test_configuration.py` checks that the template sets no `GLOBESMS_*` variable a model does not "
        "read.",
        "",
        "| variable | default | read by | set by the template | meaning |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "## Other variables",
        "",
        "Set by the template for the libraries:",
        "",
        "| variable | meaning |",
        "|---|---|",
        *(f"| `{name}` | {meaning} |" for name, meaning in LIBRARY_VARIABLES.items()),
        "",
        "Read outside the functions:",
        "",
        "| variable | meaning |",
        "|---|---|",
        *(f"| `{name}` | {meaning} |" for name, meaning in OUTSIDE_THE_FUNCTIONS.items()),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"write {DOCUMENT.relative_to(ROOT)}")
    action.add_argument("--check", action="store_true", help=f"exit 1 when {DOCUMENT.relative_to(ROOT)} differs")
    args = parser.parse_args(argv)
    text = markdown()
    if args.write:
        DOCUMENT.write_text(text, encoding="utf-8")
    elif args.check:
        if DOCUMENT.read_text(encoding="utf-8") != text:
            print(f"{DOCUMENT.relative_to(ROOT)} is out of date: python -m tools.settings_doc --write", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
