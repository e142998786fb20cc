"""Writes env.json for `sam local invoke`: every function's template environment resolved against the running
local stack (moto's table and queue names instead of the logical ids SAM would pass), so a function in the Lambda
container talks to the same resources as `make run`.

    python -m local.sam_env            # AWS_ENDPOINT_URL defaults to the moto server `make run` starts

Inside the container 127.0.0.1 is the container itself: URLs on 127.0.0.1 are rewritten to `host.docker.internal`,
which `sam local invoke --add-host host.docker.internal:host-gateway` maps to this machine.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from local.aws import apply_local_credentials
from local.settings import LOCAL_ENV_DEFAULTS, MOTO_PORT
from local.stack import LocalStack

# Lambda sets these itself; env.json may only override what the template declares.
_RUNTIME_OWNED = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_", "_HANDLER", "LAMBDA_TASK_ROOT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("env.json"))
    parser.add_argument("--container-host", default="host.docker.internal")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ENDPOINT_URL", f"http://127.0.0.1:{MOTO_PORT}")
    apply_local_credentials(os.environ)
    for name, value in LOCAL_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    stack = LocalStack.deploy()
    environments = {}
    for function in stack.template.functions.values():
        variables = stack.function_environment(function)
        environments[function.logical_id] = {
            name: value.replace("://127.0.0.1:", f"://{args.container_host}:")
            for name, value in variables.items()
            if not name.startswith(_RUNTIME_OWNED)
        }
    args.output.write_text(json.dumps(environments, indent=2) + "\n")
    print(f"wrote {args.output} for {', '.join(environments)}")


if __name__ == "__main__":
    main()
