"""A push's body as the provider sent it."""

from __future__ import annotations

import base64

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent


def raw_body(event: APIGatewayProxyEvent) -> bytes:
    """The bytes of the push (API Gateway hands a binary body over base64-encoded)."""
    body = event.body or ""
    return base64.b64decode(body) if event.is_base64_encoded else body.encode()
