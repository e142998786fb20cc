"""A push's body as the provider sent it."""

from __future__ import annotations

import base64
import binascii

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent


class UndecodableBody(ValueError):
    """A body marked base64-encoded that is not base64: answered as unreadable (400), never a 5xx."""


def raw_body(event: APIGatewayProxyEvent) -> bytes:
    """The bytes of the push (API Gateway hands a binary body over base64-encoded)."""
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode()
    try:
        return base64.b64decode(body)
    except (binascii.Error, ValueError) as exc:
        raise UndecodableBody(f"body: isBase64Encoded is true but the body is not base64 ({exc})") from None
