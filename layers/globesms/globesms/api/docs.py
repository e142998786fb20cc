"""The API's own description: GET /v1/openapi.json (the OpenAPI document Powertools builds from the routes, with
API Gateway's 403) and GET /v1/docs (a Swagger UI page of it that needs no internet access)."""

import json
import pathlib
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from globesms.api.routers import new_router
from globesms.config import AcceptSettings, settings
from globesms.errors import RefusalCode
from globesms.http_errors import error_response

router = new_router()

API_TITLE = "globesms"
API_VERSION = "1"
DOCS_PATH = "/v1/docs"
OPENAPI_PATH = "/v1/openapi.json"
_DESCRIPTION = "A serverless SMS gateway over Alibaba Cloud, Tencent Cloud and Huawei Cloud."
_SECURITY: list[dict[str, list[str]]] = [{"api_key": []}]

# Every route of the document needs the key: without it API Gateway itself answers 403, which the routes' own
# declarations (the function's answers) cannot say.
_FORBIDDEN = {
    "description": "Forbidden: the x-api-key header is missing or wrong (API Gateway's own answer)",
    "content": {content_types.APPLICATION_JSON: {"schema": {"$ref": "#/components/schemas/GatewayError"}}},
}
_GATEWAY_ERROR = {
    "title": "GatewayError",
    "type": "object",
    "properties": {"message": {"type": "string", "title": "Message"}},
    "required": ["message"],
}


@cache
def openapi_json(resolver: APIGatewayRestResolver) -> str:
    """The OpenAPI document Powertools builds from `resolver`'s routes, with API Gateway's 403: what
    /v1/openapi.json serves and /v1/docs shows.

    Powertools' OpenAPI models (and the Swagger UI's module, which imports them) are imported here, by the first
    request for the document, not at init: they are about a fifth of the function's cold start, and no other
    request needs them."""
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server

    document = json.loads(
        resolver.get_openapi_json_schema(
            title=API_TITLE,
            version=API_VERSION,
            description=_DESCRIPTION,
            # Relative to where the document is served (<base>/v1/openapi.json, <base>/v1/docs): ".." is <base>,
            # the stage prefix of an execute-api URL, a custom domain's base path, or nothing locally, without the
            # function knowing which.
            servers=[Server(url="..", description="this API")],
            security_schemes={
                "api_key": APIKey(name="x-api-key", in_=APIKeyIn.header, description="the API key of the usage plan")
            },
            security=_SECURITY,
        )
    )
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["responses"].setdefault("403", _FORBIDDEN)
    document["components"]["schemas"]["GatewayError"] = _GATEWAY_ERROR
    return json.dumps(document)


def _served_document() -> str:
    resolver = router.api_resolver  # the resolver this router was included in (api/resolver.py)
    assert isinstance(resolver, APIGatewayRestResolver), "the docs router serves only once it is included"
    return openapi_json(resolver)


def _docs_key_check(resolver: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    # API Gateway itself refuses a docs request without a key when DocsRequireApiKey is true; the function applies
    # the same setting, so a stage not redeployed yet, or a gateway that does not check, cannot serve them keyless.
    if settings(AcceptSettings).docs_require_api_key and not resolver.current_event.request_context.identity.api_key_id:
        return error_response(RefusalCode.API_KEY_REQUIRED, "the API documentation needs the x-api-key header")
    return next_middleware(resolver)


@router.get(DOCS_PATH, include_in_schema=False, middlewares=[_docs_key_check])
def get_docs_page() -> Response[str]:
    if router.current_event.get_query_string_value("format") == "json":  # the page links its document this way
        return get_openapi_document()
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=_docs_page())


@cache
def _docs_page() -> str:
    # Powertools' Swagger UI page, its JS and CSS read from the package (in the layer) and inlined: the page needs
    # no internet access (no CDN). Built here rather than by app.enable_swagger so that it shows the document
    # /v1/openapi.json serves (with the 403 above). "</" is escaped so the JSON cannot end the <script> it is in.
    from aws_lambda_powertools.event_handler.openapi import swagger_ui
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    assets = pathlib.Path(swagger_ui.__file__).parent
    return generate_swagger_html(
        _served_document().replace("</", "<\\/"),
        (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (assets / "swagger-ui.min.css").read_text(encoding="utf-8"),
        swagger_base_url="",
        oauth2_config=None,
    ).replace("<title>Swagger UI</title>", f"<title>{API_TITLE} API</title>", 1)


@router.get(OPENAPI_PATH, include_in_schema=False, middlewares=[_docs_key_check])
def get_openapi_document() -> Response[str]:
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=_served_document())
