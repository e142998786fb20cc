"""The one way a function reads a secret: AWS Secrets Manager through Powertools Parameters, a JSON object, kept
`SECRET_MAX_AGE_SECONDS` in the process (a rotated or revoked secret is picked up within that; `force` reads it
now, after an authentication error). Parameters is imported on use: it loads boto3, which no logic module may load
at import (tests/unit/test_import_boundary.py). The provider credentials and receipt tokens (`providers`), the reply
tokens (`replies.auth`) and the webhook signing secrets (`webhooks.sender`) are read through it."""

from __future__ import annotations

from typing import Any

SECRET_MAX_AGE_SECONDS = 300


def read_secret(secret_name: str, *, force: bool = False) -> Any:
    from aws_lambda_powertools.utilities import parameters

    return parameters.get_secret(secret_name, transform="json", max_age=SECRET_MAX_AGE_SECONDS, force_fetch=force)
