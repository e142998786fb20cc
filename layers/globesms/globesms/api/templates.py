"""The template registry at run time (docs/api.md, "Templates at run time"): GET /v1/templates, and GET, PUT and
DELETE /v1/templates/{id}. A deployment without the template table answers TEMPLATES_NOT_MANAGED."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from globesms.api.refusals import NotFound
from globesms.api.routers import new_router, on_exception, owner
from globesms.aws import wiring
from globesms.config import AcceptSettings, settings
from globesms.domain.clock import iso, utc_now
from globesms.errors import RefusalCode
from globesms.http_errors import error_response
from globesms.models.api import refusal_answers, success_answer
from globesms.observability import logger, tracer
from globesms.ports import TemplateStore
from globesms.routing import templates

router = new_router()

_TEMPLATE_ID = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=templates.LOGICAL_ID_PATTERN,
        description="A logical template id: letters, digits, _ . - and at least one letter",
    ),
]


class TemplatesNotManaged(RuntimeError):
    """The function has no template table (GLOBESMS_TEMPLATES_TABLE): a deployment without TemplatesTable."""


class NotATemplateManager(PermissionError):
    """The request's API key may not change the registry, which every key's sends use (GLOBESMS_TEMPLATE_MANAGERS):
    a client service's key could otherwise rewrite the text of every other service's codes."""


def _managing() -> TemplateStore:
    if not settings(AcceptSettings).may_manage_templates(owner(router)):
        raise NotATemplateManager("this API key may not change the templates: the deployment's own key manages them")
    return _template_store()


def _template_store() -> TemplateStore:
    store = wiring.template_store()
    if store is None:
        raise TemplatesNotManaged("this deployment has no template table: the shipped templates.json is the registry")
    return store


@router.get(
    "/v1/templates",
    summary="The template registry",
    responses={
        200: success_answer(templates.TemplateList),
        **refusal_answers(RefusalCode.TEMPLATES_NOT_MANAGED),
    },
)
@tracer.capture_method(capture_response=False)
def list_templates() -> templates.TemplateList:
    return templates.list_templates(_template_store())


@router.get(
    "/v1/templates/<template_id>",
    summary="One template of the registry",
    responses={
        200: success_answer(templates.TemplateView),
        **refusal_answers(RefusalCode.NOT_FOUND, RefusalCode.VALIDATION_ERROR, RefusalCode.TEMPLATES_NOT_MANAGED),
    },
)
@tracer.capture_method(capture_response=False)
def get_template(template_id: _TEMPLATE_ID) -> templates.TemplateView:
    view = templates.get_template(_template_store(), template_id)
    if view is None:
        raise NotFound(f"no template {template_id}")
    return view


@router.put(
    "/v1/templates/<template_id>",
    summary="Store a template (each provider's version); sends use it within a minute",
    description="Only the deployment's own API key (GLOBESMS_TEMPLATE_MANAGERS): another key gets 403 FORBIDDEN.",
    responses={
        200: success_answer(templates.TemplateView),
        201: success_answer(templates.TemplateView),
        **refusal_answers(
            RefusalCode.MALFORMED_JSON,
            RefusalCode.BODY_TOO_LARGE,
            RefusalCode.UNSUPPORTED_MEDIA_TYPE,
            RefusalCode.VALIDATION_ERROR,
            RefusalCode.TEMPLATES_NOT_MANAGED,
        ),
    },
)
@tracer.capture_method(capture_response=False)
def put_template(
    template_id: _TEMPLATE_ID, versions: Annotated[templates.TemplateVersions, Body(embed=False)]
) -> Response[templates.TemplateView]:
    view, created = templates.put_template(_managing(), template_id, versions, iso(utc_now()))
    logger.info("template stored", extra={"template": template_id, "new": created})
    return Response(status_code=201 if created else 200, content_type=content_types.APPLICATION_JSON, body=view)


@router.delete(
    "/v1/templates/<template_id>",
    summary="Remove a template; sends stop using it within a minute",
    description="Only the deployment's own API key (GLOBESMS_TEMPLATE_MANAGERS): another key gets 403 FORBIDDEN.",
    responses={
        204: {"description": "Removed"},
        **refusal_answers(
            RefusalCode.NOT_FOUND,
            RefusalCode.VALIDATION_ERROR,
            RefusalCode.TEMPLATES_NOT_MANAGED,
        ),
    },
)
@tracer.capture_method(capture_response=False)
def delete_template(template_id: _TEMPLATE_ID) -> Response[None]:
    if not templates.delete_template(_managing(), template_id, iso(utc_now())):
        raise NotFound(f"no template {template_id}")
    logger.info("template removed", extra={"template": template_id})
    return Response(status_code=204)


@on_exception(router, TemplatesNotManaged)
def _templates_not_managed(exc: TemplatesNotManaged) -> Response[Any]:
    return error_response(RefusalCode.TEMPLATES_NOT_MANAGED, str(exc))


@on_exception(router, NotATemplateManager)
def _not_a_manager(exc: NotATemplateManager) -> Response[Any]:
    logger.warning("template change refused: the API key may not manage templates")
    return error_response(RefusalCode.FORBIDDEN, str(exc))
