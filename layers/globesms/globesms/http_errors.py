"""How refusals look on the API: `{"error": {"code", "message", "fields": [{"field", "rule"}]}}`."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types

from globesms.accept.bodies import BodyTooLarge, check_size, utf8_size
from globesms.errors import RefusalCode
from globesms.models.errors import ErrorBody, ErrorDetail, ErrorResponse, schema_error


def error_response(code: RefusalCode, message: str, fields: Sequence[ErrorDetail] = ()) -> Response[Any]:
    """The refusal as an answer, with its code's HTTP status."""
    return refusal_response(ErrorBody(code=code, message=message, fields=list(fields)))


def refusal_response(refusal: ErrorBody) -> Response[Any]:
    body = ErrorResponse(error=refusal)
    return Response(
        status_code=refusal.code.status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump_json(exclude_none=True),
    )


def validation_error_response(errors: Sequence[Mapping[str, Any]]) -> Response[Any]:
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(RefusalCode.MALFORMED_JSON, "the body is not valid JSON")
    return refusal_response(schema_error(errors))


def _content_type(event: Mapping[str, Any]) -> str:
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    return headers.get("content-type", "")


def _is_json(media_type: str) -> bool:
    return media_type in ("", "application/json") or media_type.endswith("+json")


def refuse_non_json_body(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """A proxy response 415 for a body sent as anything but JSON, else None.

    Checked before the resolver sees the event: Powertools would parse a form-encoded body as a form (curl's
    default without `-H content-type`), and the client would get field errors about a body it wrote as JSON.
    """
    content_type = _content_type(event).split(";")[0].strip().lower()
    if not event.get("body") or _is_json(content_type):
        return None
    return _proxy_refusal(RefusalCode.UNSUPPORTED_MEDIA_TYPE, not_json_message(content_type))


def refuse_undecodable_body(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """A proxy response 400 for a body that is not text (not UTF-8, or not the base64 it claims to be), else None.

    Powertools decodes the body before validating it and would raise on such bytes: a 502 instead of a refusal.
    """
    body = event.get("body")
    if not body or not event.get("isBase64Encoded"):
        return None
    try:
        base64.b64decode(str(body), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return _proxy_refusal(RefusalCode.MALFORMED_JSON, "the body is not valid JSON: it is not UTF-8 text")
    return None


def refuse_oversized_body(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """A proxy response 413 BODY_TOO_LARGE for a body over MAX_BODY_BYTES, else None: checked first, so that no
    larger body is decoded or parsed (whatever its Content-Type)."""
    body = str(event.get("body") or "")
    # A base64 body's bytes are 3 for every 4 characters, less its padding.
    size = len(body) * 3 // 4 - body[-2:].count("=") if event.get("isBase64Encoded") else utf8_size(body)
    try:
        check_size(size)
    except BodyTooLarge as exc:
        return _proxy_refusal(RefusalCode.BODY_TOO_LARGE, str(exc))
    return None


def _proxy_refusal(code: RefusalCode, message: str) -> dict[str, Any]:
    body = ErrorResponse(error=ErrorBody(code=code, message=message))
    return {
        "statusCode": code.status,
        "headers": {"Content-Type": "application/json"},
        "body": body.model_dump_json(exclude_none=True),
        "isBase64Encoded": False,
    }


def not_json_message(media_type: str) -> str:
    return f"the body must be JSON (Content-Type: application/json), not {media_type}"


def with_plain_json_content_type(event: dict[str, Any]) -> dict[str, Any]:
    """The event, with a JSON body's Content-Type spelled the one way Powertools' validation reads as JSON.

    Media types are case-insensitive and `application/<x>+json` is JSON, so `refuse_non_json_body` lets
    `APPLICATION/JSON` or `application/problem+json` through; Powertools parses a body only under a type that starts
    with `application/json`, and would answer those with a 415 of its own shape, without a reason.
    """
    content_type = _content_type(event).strip()
    media_type = content_type.split(";")[0].strip().lower()
    if not content_type or content_type.startswith("application/json") or not _is_json(media_type):
        return event
    headers = {k: v for k, v in (event.get("headers") or {}).items() if str(k).lower() != "content-type"}
    multi = {k: v for k, v in (event.get("multiValueHeaders") or {}).items() if str(k).lower() != "content-type"}
    return {
        **event,
        "headers": {**headers, "content-type": "application/json"},
        "multiValueHeaders": {**multi, "content-type": ["application/json"]},
    }
