"""The template as the local stack deploys it: local parameter values, provisioned resources, and from those the
environment of each function and the stack's outputs.

Every process of the stack (runner, API server, each function) builds its `LocalStack` the same way, from
template.yaml, the environment and the (idempotent) provisioning. One shortcut: the runner puts what it provisioned
in `LOCAL_PROVISIONED` for the processes it starts, so each of its ten-odd function hosts finds the tables and
queues without the ~40 AWS calls of provisioning them again (each start of the stack cost ~2 CPU seconds more
without it). A host started on its own, without the variable, provisions (finds) them itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local.aws import Provisioned, provision, region
from local.settings import DEFAULT_API_KEY_ID, EMULATOR_PORTS
from local.template import (
    TEMPLATE_PATH,
    FunctionSpec,
    ResolveContext,
    Template,
    UnresolvableReference,
    as_environment_value,
    evaluate_conditions,
    load_template,
    resolve,
)

STACK_NAME = "globesms-local"
ACCOUNT_ID = "123456789012"  # moto's default account


def emulator_url(provider: str, environ: Mapping[str, str]) -> str:
    """Where a provider's API is locally: `GLOBESMS_<P>_ENDPOINT` when set, else its emulator on loopback."""
    return environ.get(f"GLOBESMS_{provider.upper()}_ENDPOINT") or f"http://127.0.0.1:{EMULATOR_PORTS[provider]}"


PARAMETERS_ENV = "LOCAL_PARAMETERS"
PROVISIONED_ENV = "LOCAL_PROVISIONED"  # set by local.run for its children: `Provisioned.to_json()`


def local_parameter_values(template: Template, environ: Mapping[str, str]) -> dict[str, Any]:
    """Parameter defaults, except where running locally means something else:
    - `AwsEndpointUrl`, `AwsDynamoDBEndpointUrl`: the moto servers, so every boto3 client of every function talks
      to them (`local.aws.DYNAMODB_ENDPOINT_VARIABLES`);
    - `<Provider>Endpoint`: that provider's emulator (or `GLOBESMS_<P>_ENDPOINT`);
    - `<Provider>SecretName`, `<Provider>ReceiptTokenSecretName`: blank, so credentials and receipt tokens come from
      the GLOBESMS_<P>_* variables, not Secrets Manager;
    and any parameter named in `LOCAL_PARAMETERS`, a JSON object of parameter -> value (as `sam deploy
    --parameter-overrides`, e.g. `{"UnknownOutcomeWindowSeconds": "60"}` for `make soak`).
    """
    values = {name: parameter.default for name, parameter in template.parameters.items()}
    overrides = json.loads(environ.get(PARAMETERS_ENV) or "{}")
    unknown = set(overrides) - set(values)
    if unknown:
        raise ValueError(f"{PARAMETERS_ENV} names parameters the template does not have: {', '.join(sorted(unknown))}")
    values.update(overrides)
    if "AwsEndpointUrl" in values:
        values["AwsEndpointUrl"] = environ.get("AWS_ENDPOINT_URL", "")
    if "AwsDynamoDBEndpointUrl" in values:
        values["AwsDynamoDBEndpointUrl"] = environ.get("AWS_ENDPOINT_URL_DYNAMODB", "")
    for provider in EMULATOR_PORTS:
        if f"{provider.capitalize()}Endpoint" in values:
            values[f"{provider.capitalize()}Endpoint"] = emulator_url(provider, environ)
        for secret in (f"{provider.capitalize()}SecretName", f"{provider.capitalize()}ReceiptTokenSecretName"):
            if secret in values:
                values[secret] = ""
    return values


def parameter_context(template: Template, environ: Mapping[str, str]) -> ResolveContext:
    """A context that knows parameters, pseudo parameters and conditions, not resources yet (enough for names and
    stage names; no AWS calls)."""
    context = ResolveContext(
        parameters=local_parameter_values(template, environ),
        region=region(dict(environ)),
        account_id=ACCOUNT_ID,
        stack_name=STACK_NAME,
    )
    evaluate_conditions(template.raw, context)
    return context


@dataclass
class LocalStack:
    template: Template
    context: ResolveContext
    resources: Provisioned

    @classmethod
    def deploy(cls, environ: Mapping[str, str] | None = None, template: Template | None = None) -> LocalStack:
        """Provision (or find) the template's resources on the AWS endpoints `environ` names (`AWS_ENDPOINT_URL`,
        and `AWS_ENDPOINT_URL_DYNAMODB` for the tables) and resolve against them; or, when `environ` has
        `LOCAL_PROVISIONED` (the runner's children), resolve against what it says, making no AWS call."""
        env = os.environ if environ is None else environ
        template = template or load_template(TEMPLATE_PATH)
        context = parameter_context(template, env)
        given = env.get(PROVISIONED_ENV)
        resources = Provisioned.from_json(given) if given else provision(template, context, env)
        return cls.over(template, context, resources)

    @classmethod
    def over(cls, template: Template, context: ResolveContext, resources: Provisioned) -> LocalStack:
        """The stack resolving against `resources` (provisioned, or only named: `local.aws.named`)."""
        for logical_id, name in resources.table_names.items():
            context.refs[logical_id] = name
            context.attributes[(logical_id, "Arn")] = resources.table_arns[logical_id]
        for logical_id, url in resources.queue_urls.items():
            context.refs[logical_id] = url
            context.attributes[(logical_id, "Arn")] = resources.queue_arns[logical_id]
            context.attributes[(logical_id, "QueueUrl")] = url
            context.attributes[(logical_id, "QueueName")] = url.rsplit("/", 1)[-1]
        for logical_id in template.functions:
            context.refs[logical_id] = function_name(logical_id)
            context.attributes[(logical_id, "Arn")] = function_arn(logical_id, context)
        # The API's own key (SAM's `<api>ApiKey`): locally the gateway's GLOBESMS_API_KEY, whose id is this.
        context.refs.setdefault("GlobesmsApiApiKey", DEFAULT_API_KEY_ID)
        return cls(template, context, resources)

    def function_environment(self, function: FunctionSpec) -> dict[str, str]:
        """The variables Lambda would set for the function: the template's (resolved) and the runtime's own."""
        variables = {
            name: as_environment_value(resolve(value, self.context)) for name, value in function.environment.items()
        }
        return {
            **variables,
            "AWS_REGION": self.context.region,
            "AWS_DEFAULT_REGION": self.context.region,
            "AWS_LAMBDA_FUNCTION_NAME": function_name(function.logical_id),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(function.timeout),
            "_HANDLER": function.handler,
            "LAMBDA_TASK_ROOT": str(function.code_uri),
        }

    def outputs(self) -> dict[str, str]:
        """The template's Outputs that mean something locally (the API URL and key id do not: no API Gateway)."""
        resolved: dict[str, str] = {}
        for name, output in self.template.raw.get("Outputs", {}).items():
            try:
                resolved[name] = str(resolve(output["Value"], self.context))
            except UnresolvableReference:
                continue
        return resolved


def function_name(logical_id: str) -> str:
    return f"{STACK_NAME}-{logical_id}"


def function_arn(logical_id: str, context: ResolveContext) -> str:
    return f"arn:aws:lambda:{context.region}:{context.account_id}:function:{function_name(logical_id)}"
