"""Writes env.json for `sam local invoke`: every function's template environment resolved against the running
local stack (moto's table and queue names instead of the logical ids SAM would pass), so a function in the Lambda
container talks to the same resources as `make run`.

    python -m local.sam_env            # AWS_ENDPOINT_URL(_DYNAMODB) default to the moto servers `make run` starts

Provider credentials take the deployed path: each dispatcher reads its Secrets Manager secret (created here in the
local AWS emulator from the local credentials), since env.json can only set variables the template declares.

Inside the container 127.0.0.1 is the container itself: URLs on 127.0.0.1 are rewritten to `host.docker.internal`,
which `sam local invoke --add-host host.docker.internal:host-gateway` maps to this machine.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from local.aws import apply_local_credentials
from local.settings import LOCAL_ENV_DEFAULTS, MOTO_DYNAMODB_PORT, MOTO_PORT
from local.stack import LocalStack

# Lambda sets these itself; env.json may only override what the template declares.
_RUNTIME_OWNED = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_", "_HANDLER", "LAMBDA_TASK_ROOT")


def store_secrets(stack: LocalStack) -> dict[str, str]:
    """Creates (or updates) each provider's credentials secret and receipt-token secret, and the webhook signing
    secret, under the template's default names; returns the variables naming them, e.g.
    GLOBESMS_ALIYUN_SECRET_NAME -> globesms/aliyun, GLOBESMS_ALIYUN_RECEIPT_SECRET_NAME -> globesms/aliyun-receipts."""
    import boto3

    client = boto3.client(
        "secretsmanager", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=stack.context.region
    )
    names: dict[str, str] = {}
    parameters = stack.template.raw["Parameters"]
    for owner in ("aliyun", "tencent", "huawei", "webhook"):
        prefix = f"GLOBESMS_{owner.upper()}_"
        token = f"{prefix}RECEIPT_TOKEN"
        # The receipt token has a secret of its own (ReceiptsFunction reads no credentials).
        reply_token = f"{prefix}REPLY_TOKEN"  # kept with the receipt token, in its secret
        credentials = {
            k: os.environ[k] for k in LOCAL_ENV_DEFAULTS if k.startswith(prefix) and k not in (token, reply_token)
        }
        _put_secret(client, parameters[f"{owner.capitalize()}SecretName"]["Default"], credentials)
        names[f"{prefix}SECRET_NAME"] = parameters[f"{owner.capitalize()}SecretName"]["Default"]
        if token in LOCAL_ENV_DEFAULTS:
            receipt_secret = parameters[f"{owner.capitalize()}ReceiptTokenSecretName"]["Default"]
            _put_secret(client, receipt_secret, {token: os.environ[token], reply_token: os.environ[reply_token]})
            names[f"{prefix}RECEIPT_SECRET_NAME"] = receipt_secret
    return names


def _put_secret(client: Any, name: str, value: dict[str, str]) -> None:
    try:
        client.create_secret(Name=name, SecretString=json.dumps(value))
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=name, SecretString=json.dumps(value))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("env.json"))
    parser.add_argument("--container-host", default="host.docker.internal")
    args = parser.parse_args()
    if not os.environ.get("AWS_ENDPOINT_URL"):  # the moto servers `make run` starts, unless told of others
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{MOTO_PORT}"
        os.environ.setdefault("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{MOTO_DYNAMODB_PORT}")
    apply_local_credentials(os.environ)
    for name, value in LOCAL_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    stack = LocalStack.deploy()
    secret_names = store_secrets(stack)
    environments = {}
    for function in stack.template.functions.values():
        variables = stack.function_environment(function)
        environments[function.logical_id] = {
            name: value.replace("://127.0.0.1:", f"://{args.container_host}:")
            for name, value in variables.items()
            if not name.startswith(_RUNTIME_OWNED)
        }
        environments[function.logical_id].update(
            {name: secret for name, secret in secret_names.items() if name in variables}
        )
    args.output.write_text(json.dumps(environments, indent=2) + "\n")
    print(f"wrote {args.output} for {', '.join(environments)}")


if __name__ == "__main__":
    main()
