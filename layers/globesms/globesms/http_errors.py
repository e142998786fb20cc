"""How refusals look on the API: `{"error": {"code", "message", "fields": [{"field", "rule"}]}}`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types

from globesms.models.api import ErrorBody, ErrorDetail, ErrorResponse

# Parts of a pydantic error location that name a type or a union branch, not a field of the client's body.
_NOT_FIELDS = frozenset({"body", "single", "batch", "str", "int", "float", "bool"})
_TYPE_TAG = re.compile(r"^[a-z-]+\[.*\]$|^constrained-")


def error_response(status: int, code: str, message: str, fields: Sequence[ErrorDetail] = ()) -> Response[Any]:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, fields=list(fields)))
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body.model_dump_json(exclude_none=True)
    )


def field_path(location: Sequence[Any]) -> str:
    parts = [str(p) for p in location if str(p) not in _NOT_FIELDS and not _TYPE_TAG.match(str(p))]
    return ".".join(parts) or "body"


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> list[ErrorDetail]:
    details: list[ErrorDetail] = []
    seen: set[tuple[str, str]] = set()
    for error in errors:
        key = (field_path(error.get("loc", ())), str(error.get("msg", "invalid")))
        if key not in seen:
            seen.add(key)
            details.append(ErrorDetail(field=key[0], rule=key[1]))
    return details


def validation_error_response(errors: Sequence[Mapping[str, Any]]) -> Response[Any]:
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "MALFORMED_JSON", "the body is not valid JSON")
    details = describe_errors(errors)
    return error_response(422, "VALIDATION_ERROR", f"{len(details)} field(s) break the schema", details)


def refuse_non_json_body(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """A proxy response 415 for a body sent as anything but JSON, else None.

    Checked before the resolver sees the event: Powertools would parse a form-encoded body as a form (curl's
    default without `-H content-type`), and the client would get field errors about a body it wrote as JSON.
    """
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if not event.get("body") or content_type in ("", "application/json") or content_type.endswith("+json"):
        return None
    body = ErrorResponse(
        error=ErrorBody(
            code="UNSUPPORTED_MEDIA_TYPE",
            message=f"the body must be JSON (Content-Type: application/json), not {content_type}",
        )
    )
    return {
        "statusCode": 415,
        "headers": {"Content-Type": "application/json"},
        "body": body.model_dump_json(),
        "isBase64Encoded": False,
    }
