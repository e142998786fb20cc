"""POST /v1/messages, GET /v1/messages/{id}, GET /v1/batches/{id} behind API Gateway (REST API, API key).

No `from __future__ import annotations` here: the resolver reads the route signatures at run time.
"""

import json
import pathlib
from functools import cache
from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from globesms.accept import idempotency, queries
from globesms.accept.bodies import read_json, write_json
from globesms.accept.refusals import REFUSED, refusal_of
from globesms.accept.service import accept, body_hash
from globesms.aws import snapstart, wiring
from globesms.aws.dynamodb_consent import DynamoDBConsentStore
from globesms.config import AcceptSettings, settings
from globesms.consent import optouts
from globesms.domain.clock import deadline, iso, utc_now
from globesms.domain.ids import keyed_batch_id, new_batch_id
from globesms.domain.masking import mask
from globesms.domain.phone import InvalidNumber, parse_mobile
from globesms.errors import RefusalCode
from globesms.guardrails.prices import current_prices
from globesms.guardrails.quote import quote
from globesms.guardrails.usage import usage, used_percent
from globesms.http_errors import (
    error_response,
    not_json_message,
    refusal_response,
    refuse_non_json_body,
    refuse_oversized_body,
    refuse_undecodable_body,
    validation_error_response,
    with_plain_json_content_type,
)
from globesms.models.api import (
    IDEMPOTENCY_KEY_PATTERN,
    IDEMPOTENCY_KEY_RULE,
    AcceptResponse,
    BatchView,
    MessageList,
    MessageSpec,
    MessageView,
    SendBody,
    refusal_answers,
    specs_of,
    success_answer,
)
from globesms.models.guardrails import QuoteResponse, UsageView
from globesms.models.outbound import MessageType
from globesms.models.stats import RouteStatsView
from globesms.observability import emit_accept_metrics, logger, metrics, tracer
from globesms.ports import InvalidCursor, MessageLookup, TemplateStore
from globesms.replies import record as reply_record
from globesms.replies.models import ReplyPage
from globesms.routing import templates
from globesms.scheduling import cancel as scheduled
from globesms.stats.summary import InvalidWindow, route_stats, window_seconds

# Bodies are read by read_json: its limits (nesting, integer size) refuse what json.loads would crash on.
app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=read_json, serializer=write_json)
snapstart.register(idempotency.forget_layers)  # with SnapStart on: nothing unique or expiring kept from the snapshot

# Every traced function here has capture_response=False: its answer holds full numbers and texts, which the Tracer
# would otherwise record as trace metadata.

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"  # "true" on an answer given again for a repeated Idempotency-Key


class NotFound(LookupError):
    pass


# The OpenAPI document names every answer a route gives, with its real shape (descriptions from the models and the
# codes): Powertools would otherwise document its own 422 shape, and the route's return type for every other status.
@app.post(
    "/v1/messages",
    responses={
        202: success_answer(
            AcceptResponse,
            headers={
                REPLAYED_HEADER: {
                    "description": "the first answer to this Idempotency-Key, given again: nothing was sent",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            },
        ),
        200: success_answer(QuoteResponse),
        **refusal_answers(
            RefusalCode.MALFORMED_JSON,
            RefusalCode.IDEMPOTENCY_KEY_REUSED,
            RefusalCode.IDEMPOTENCY_KEY_IN_PROGRESS,
            RefusalCode.BODY_TOO_LARGE,
            RefusalCode.TOO_MANY_RECIPIENTS,
            RefusalCode.UNSUPPORTED_MEDIA_TYPE,
            RefusalCode.VALIDATION_ERROR,
        ),
    },
)
@tracer.capture_method(capture_response=False)
def send_messages(
    body: Annotated[SendBody, Body(embed=False)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description=f"The same key within 24 h returns the first answer and sends nothing: {IDEMPOTENCY_KEY_RULE}",
        ),
    ] = None,
    dry_run: Annotated[bool, Query(description="as the body's dry_run: a quote, nothing sent")] = False,
) -> Response[AcceptResponse | QuoteResponse]:
    specs = specs_of(body)
    if dry_run or body.dry_run:
        return _quote(specs)
    if idempotency_key is None:
        result, replayed = _accept(specs), False
    else:
        # Idempotent on the key alone (per API key), validated against the body: the same key with another body
        # is refused, and a refusal (413) is not kept as the key's answer.
        scope = f"api:{app.current_event.request_context.identity.api_key_id or ''}"
        payload = [spec.model_dump(mode="json") for spec in specs]
        # The batch id follows from the key and body: an attempt that died after queueing, before its answer was
        # kept, is resumed by the next one (same records, same packs), not sent again as a new batch.
        batch_id = keyed_batch_id(scope, idempotency_key, body_hash(specs))
        outcome = idempotency.run_once(
            scope=scope, key=idempotency_key, payload=payload, work=lambda: _accept(specs, batch_id)
        )
        result, replayed = outcome.answer, outcome.replayed
    logger.append_keys(batch_id=result.batch_id)
    if replayed:
        metrics.add_metric(name="IdempotentReplays", unit=MetricUnit.Count, value=1)
        logger.info("idempotency key seen before: first answer given again, nothing sent")
    else:
        emit_accept_metrics(result)
        percent = used_percent(wiring.spend_ledger(), now=utc_now())
        if percent is not None:  # the deployment has a spend limit: the alarm at 80 % reads this
            metrics.add_metric(name="SpendLimitUsedPercent", unit=MetricUnit.Percent, value=percent)
        logger.info("batch accepted", extra={"accepted": result.accepted, "rejected": result.rejected})
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body=result,
        headers={REPLAYED_HEADER: "true"} if replayed else None,
    )


def _accept(specs: list[MessageSpec], batch_id: str | None = None) -> AcceptResponse:
    minted = batch_id is None
    batch_id = batch_id or new_batch_id()
    logger.append_keys(batch_id=batch_id)
    return accept(
        specs,
        batch_id=batch_id,
        new_batch_id=minted,
        source="api",
        now=utc_now(),
        retention_days=settings(AcceptSettings).retention_days,
        store=wiring.message_store(),
        queues=wiring.pack_queues(),
        ledger=wiring.spend_ledger(),
        owner=_owner(),
        otp=wiring.otp_guard(),
        accepting_until=deadline(app.lambda_context),
    )


def _owner() -> str | None:
    """The API key (its id, never the key) the request came with: what its records, spend and reads belong to."""
    return app.current_event.request_context.identity.api_key_id or None


def _quote(specs: list[MessageSpec]) -> Response[AcceptResponse | QuoteResponse]:
    answer = quote(
        specs,
        now=utc_now(),
        retention_days=settings(AcceptSettings).retention_days,
        ledger=wiring.spend_ledger(),
        owner=_owner(),
        otp=wiring.otp_guard(),
    )
    logger.info("dry run quoted", extra={"accepted": answer.accepted, "rejected": answer.rejected})
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=answer)


@app.get(
    "/v1/usage",
    summary="This month's spend and limits",
    responses={200: success_answer(UsageView)},
)
@tracer.capture_method(capture_response=False)
def get_usage() -> UsageView:
    return usage(wiring.spend_ledger(), owner=_owner(), now=utc_now())


@app.get(
    "/v1/stats/routes",
    summary="Delivery statistics per provider for one country (docs/routing-scores.md)",
    responses={
        200: success_answer(RouteStatsView),
        **refusal_answers(RefusalCode.NOT_FOUND, RefusalCode.VALIDATION_ERROR),
    },
)
@tracer.capture_method(capture_response=False)
def get_route_stats(
    country: Annotated[str, Query(pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2, e.g. SG")],
    window: Annotated[str, Query(max_length=8, description="15m, 1h, 1d ... (5m to 24h)")] = "1h",
    type: Annotated[MessageType | None, Query(description="one message type; all when absent")] = None,
) -> Response[Any]:
    try:
        seconds = window_seconds(window)
    except InvalidWindow as exc:
        return _query_refusal("window", str(exc))
    store = wiring.route_stats()
    if store is None:
        raise NotFound("route statistics are not kept by this deployment (no GLOBESMS_ROUTE_STATS_TABLE)")
    view = route_stats(
        store,
        country=country,
        message_type=type,
        window=window,
        seconds=seconds,
        now=utc_now(),
        prices=current_prices(),
    )
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=view)


@app.get(
    "/v1/messages/<message_id>",
    responses={
        200: success_answer(MessageView),
        **refusal_answers(RefusalCode.NOT_FOUND, RefusalCode.VALIDATION_ERROR),
    },
)
@tracer.capture_method(capture_response=False)
def get_message(message_id: Annotated[str, Path(max_length=128)]) -> MessageView:
    view = queries.get_message(wiring.message_store(), message_id, owner=_owner())
    if view is None:
        raise NotFound(f"no message {message_id}")
    return view


@app.get(
    "/v1/batches/<batch_id>",
    responses={
        200: success_answer(BatchView),
        **refusal_answers(RefusalCode.NOT_FOUND, RefusalCode.VALIDATION_ERROR),
    },
)
@tracer.capture_method(capture_response=False)
def get_batch(
    batch_id: Annotated[str, Path(max_length=64)],
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 100,
    after: Annotated[str | None, Query(max_length=128)] = None,
) -> BatchView:
    view = queries.get_batch(wiring.message_store(), batch_id, limit=limit, after=after, owner=_owner())
    if view is None:
        raise NotFound(f"no batch {batch_id}")
    return view


# ======== API surface: the document and its docs page, run-time templates, finding messages ========
# (one block, kept apart from the send/read routes above and the error handling below)

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
def openapi_json() -> str:
    """The OpenAPI document Powertools builds from these routes, with API Gateway's 403: what /v1/openapi.json
    serves and /v1/docs shows.

    Powertools' OpenAPI models (and the Swagger UI's module, which imports them) are imported here, by the first
    request for the document, not at init: they are about a fifth of the function's cold start, and no other
    request needs them."""
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server

    document = json.loads(
        app.get_openapi_json_schema(
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


def _docs_key_check(resolver: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    # API Gateway itself refuses a docs request without a key when DocsRequireApiKey is true; the function applies
    # the same setting, so a stage not redeployed yet, or a gateway that does not check, cannot serve them keyless.
    if settings(AcceptSettings).docs_require_api_key and not resolver.current_event.request_context.identity.api_key_id:
        return error_response(RefusalCode.API_KEY_REQUIRED, "the API documentation needs the x-api-key header")
    return next_middleware(resolver)


@app.get(DOCS_PATH, include_in_schema=False, middlewares=[_docs_key_check])
def get_docs_page() -> Response[str]:
    if app.current_event.get_query_string_value("format") == "json":  # the page links its document this way
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
        openapi_json().replace("</", "<\\/"),
        (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (assets / "swagger-ui.min.css").read_text(encoding="utf-8"),
        swagger_base_url="",
        oauth2_config=None,
    ).replace("<title>Swagger UI</title>", f"<title>{API_TITLE} API</title>", 1)


@app.get(OPENAPI_PATH, include_in_schema=False, middlewares=[_docs_key_check])
def get_openapi_document() -> Response[str]:
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_json())


@app.get(
    "/v1/messages",
    summary="Find messages by client_ref or by number",
    responses={200: success_answer(MessageList), **refusal_answers(RefusalCode.VALIDATION_ERROR)},
)
@tracer.capture_method(capture_response=False)
def find_messages(
    client_ref: Annotated[
        str | None, Query(min_length=1, max_length=128, description="the client_ref given when sending")
    ] = None,
    to: Annotated[str | None, Query(min_length=1, max_length=32, description="the number, E.164")] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_FOUND_PAGE)] = 50,
    after: Annotated[str | None, Query(max_length=1024, description="the `next` of the previous page")] = None,
) -> Response[Any]:
    if (client_ref is None) == (to is None):
        return _query_refusal("client_ref", "give exactly one of client_ref or to")
    if to is not None:
        try:
            lookup = MessageLookup("to", parse_mobile(to).e164)
        except InvalidNumber as exc:
            return _query_refusal("to", str(exc))
    else:
        assert client_ref is not None
        lookup = MessageLookup("client_ref", client_ref)
    try:
        found = queries.find_messages(wiring.message_finder(), lookup, limit=limit, after=after, owner=_owner())
    except InvalidCursor as exc:
        return _query_refusal("after", str(exc))
    shown = mask(lookup.value) if lookup.field == "to" else lookup.value
    logger.info("messages found", extra={"by": lookup.field, "value": shown, "found": len(found.messages)})
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=found)


def _query_refusal(name: str, rule: str) -> Response[Any]:
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    return validation_error_response([{"loc": ("query", name), "msg": rule}])


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


def _template_store() -> TemplateStore:
    store = wiring.template_store()
    if store is None:
        raise TemplatesNotManaged("this deployment has no template table: the shipped templates.json is the registry")
    return store


@app.get(
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


@app.get(
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


@app.put(
    "/v1/templates/<template_id>",
    summary="Store a template (each provider's version); sends use it within a minute",
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
    view, created = templates.put_template(_template_store(), template_id, versions, iso(utc_now()))
    logger.info("template stored", extra={"template": template_id, "new": created})
    return Response(status_code=201 if created else 200, content_type=content_types.APPLICATION_JSON, body=view)


@app.delete(
    "/v1/templates/<template_id>",
    summary="Remove a template; sends stop using it within a minute",
    responses={
        204: {"description": "Removed"},
        **refusal_answers(RefusalCode.NOT_FOUND, RefusalCode.VALIDATION_ERROR, RefusalCode.TEMPLATES_NOT_MANAGED),
    },
)
@tracer.capture_method(capture_response=False)
def delete_template(template_id: _TEMPLATE_ID) -> Response[None]:
    if not templates.delete_template(_template_store(), template_id, iso(utc_now())):
        raise NotFound(f"no template {template_id}")
    logger.info("template removed", extra={"template": template_id})
    return Response(status_code=204)


@app.exception_handler(TemplatesNotManaged)
def _templates_not_managed(exc: TemplatesNotManaged) -> Response[Any]:
    return error_response(RefusalCode.TEMPLATES_NOT_MANAGED, str(exc))


# ======== end of the API surface block ========


# ======== consent: the opt-out list (docs/consent.md) ========

_NUMBER = Annotated[str, Path(min_length=1, max_length=40, description="the number, E.164 (`+6591234567`)")]


def _opt_out_store() -> DynamoDBConsentStore:
    store = wiring.consent_store()
    if store is None:
        raise ConsentNotManaged("this deployment has no consent table (GLOBESMS_CONSENT_TABLE): no opt-out list")
    return store


class ConsentNotManaged(RuntimeError):
    """The function has no consent table: a deployment without ConsentTable."""


def _listed_number(raw: str) -> str:
    try:
        # Decoded here whether or not the gateway did: `%2B65%209123-4567` is `+65 9123-4567`, and no number
        # holds a `%`.
        return optouts.normalise(unquote(raw))
    except optouts.NotANumber as exc:
        raise FieldRefused("path", "number", str(exc)) from None


class FieldRefused(ValueError):
    def __init__(self, where: str, name: str, rule: str) -> None:
        super().__init__(rule)
        self.loc = (where, name)


@app.put(
    "/v1/opt-outs/<number>",
    summary="Put a number on the opt-out list: no MKT or NOTIFY message reaches it",
    responses={
        200: success_answer(optouts.OptOutEntry),
        201: success_answer(optouts.OptOutEntry),
        **refusal_answers(RefusalCode.MALFORMED_JSON, RefusalCode.VALIDATION_ERROR, RefusalCode.CONSENT_NOT_MANAGED),
    },
)
@tracer.capture_method(capture_response=False)
def put_opt_out(
    number: _NUMBER, body: Annotated[optouts.OptOutRequest | None, Body(embed=False)] = None
) -> Response[optouts.OptOutEntry]:
    listed = _listed_number(number)
    reason = None if body is None else body.reason
    entry = optouts.OptOutEntry(number=listed, added_at=iso(utc_now()), source=optouts.OptOutSource.API, reason=reason)
    stored, created = optouts.add(_opt_out_store(), entry)
    logger.info("opt-out added" if created else "opt-out already listed", extra={"number": mask(listed)})
    return Response(status_code=201 if created else 200, content_type=content_types.APPLICATION_JSON, body=stored)


@app.get(
    "/v1/opt-outs/<number>",
    summary="One entry of the opt-out list (404 when the number is not listed)",
    responses={
        200: success_answer(optouts.OptOutEntry),
        **refusal_answers(RefusalCode.NOT_FOUND, RefusalCode.VALIDATION_ERROR, RefusalCode.CONSENT_NOT_MANAGED),
    },
)
@tracer.capture_method(capture_response=False)
def get_opt_out(number: _NUMBER) -> optouts.OptOutEntry:
    listed = _listed_number(number)
    entry = optouts.get(_opt_out_store(), listed)
    if entry is None:
        raise NotFound(f"{mask(listed)} is not on the opt-out list")
    return entry


@app.delete(
    "/v1/opt-outs/<number>",
    summary="Take a number off the opt-out list",
    responses={
        204: {"description": "Removed"},
        **refusal_answers(RefusalCode.NOT_FOUND, RefusalCode.VALIDATION_ERROR, RefusalCode.CONSENT_NOT_MANAGED),
    },
)
@tracer.capture_method(capture_response=False)
def delete_opt_out(number: _NUMBER) -> Response[None]:
    listed = _listed_number(number)
    removed = optouts.remove(_opt_out_store(), listed)
    if removed is None:
        raise NotFound(f"{mask(listed)} is not on the opt-out list")
    # Every removal is logged with how the entry had been added: the list's audit trail.
    logger.info(
        "opt-out removed",
        extra={"number": mask(listed), "added_at": removed.added_at, "added_by": removed.source.value},
    )
    return Response(status_code=204)


@app.get(
    "/v1/opt-outs",
    summary="The opt-out list, a page at a time in number order",
    responses={
        200: success_answer(optouts.OptOutPage),
        **refusal_answers(RefusalCode.VALIDATION_ERROR, RefusalCode.CONSENT_NOT_MANAGED),
    },
)
@tracer.capture_method(capture_response=False)
def list_opt_outs(
    after: Annotated[
        str | None, Query(pattern=optouts.E164_PATTERN, description="the `next` of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=optouts.MAX_PAGE)] = 100,
) -> optouts.OptOutPage:
    return optouts.page(_opt_out_store(), after=after, limit=limit)


@app.get(
    "/v1/replies",
    summary="Replies people sent (inbound SMS), a page at a time in the order they were sent",
    responses={
        200: success_answer(ReplyPage),
        **refusal_answers(RefusalCode.VALIDATION_ERROR, RefusalCode.CONSENT_NOT_MANAGED),
    },
)
@tracer.capture_method(capture_response=False)
def list_replies(
    after: Annotated[
        str | None, Query(max_length=128, pattern=r"^[0-9T:.Z-]+#R[0-9a-f]{24}$", description="the previous `next`")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=reply_record.MAX_PAGE)] = 100,
) -> ReplyPage:
    return reply_record.page(_opt_out_store(), after=after, limit=limit)


@app.exception_handler(ConsentNotManaged)
def _consent_not_managed(exc: ConsentNotManaged) -> Response[Any]:
    return error_response(RefusalCode.CONSENT_NOT_MANAGED, str(exc))


@app.exception_handler(FieldRefused)
def _field_refused(exc: FieldRefused) -> Response[Any]:
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    return validation_error_response([{"loc": exc.loc, "msg": str(exc)}])


# ======== end of the consent block ========


# ======== scheduling: cancel what has not been handed to a provider (docs/scheduling.md) ========


@app.delete(
    "/v1/messages/<message_id>",
    summary="Cancel a message no provider has been asked to send yet (SCHEDULED, or QUEUED while no dispatcher "
    "holds its pack); one already handed on is answered as not cancelable",
    responses={
        200: success_answer(scheduled.CancelAnswer),
        **refusal_answers(RefusalCode.NOT_FOUND, RefusalCode.BATCH_STILL_ACCEPTING, RefusalCode.VALIDATION_ERROR),
    },
)
@tracer.capture_method(capture_response=False)
def cancel_message(message_id: Annotated[str, Path(max_length=128)]) -> scheduled.CancelAnswer:
    answer = scheduled.cancel_message(_cancel_deps(), message_id, now=utc_now(), owner=_owner())
    if answer is None:
        raise NotFound(f"no message {message_id}")
    logger.info("cancel", extra={"canceled": len(answer.canceled), "not_cancelable": len(answer.not_cancelable)})
    return answer


@app.delete(
    "/v1/batches/<batch_id>",
    summary="Cancel every recipient of a batch no provider has been asked to send yet; the others are listed as "
    "not cancelable",
    responses={
        200: success_answer(scheduled.CancelAnswer),
        **refusal_answers(RefusalCode.NOT_FOUND, RefusalCode.BATCH_STILL_ACCEPTING, RefusalCode.VALIDATION_ERROR),
    },
)
@tracer.capture_method(capture_response=False)
def cancel_batch(batch_id: Annotated[str, Path(max_length=64)]) -> scheduled.CancelAnswer:
    logger.append_keys(batch_id=batch_id)
    answer = scheduled.cancel_batch(_cancel_deps(), batch_id, now=utc_now(), owner=_owner())
    if answer is None:
        raise NotFound(f"no batch {batch_id}")
    logger.info("cancel", extra={"canceled": len(answer.canceled), "not_cancelable": len(answer.not_cancelable)})
    return answer


def _cancel_deps() -> scheduled.CancelDeps:
    return scheduled.CancelDeps(
        store=wiring.message_store(),
        schedule=wiring.schedule_store(),
        claims=wiring.pack_claims(),
        webhooks=wiring.webhook_queue(),
        spend=wiring.spend_ledger(),
    )


# ======== end of the scheduling block ========


@app.exception_handler(scheduled.BatchStillAccepting)
def _still_accepting(exc: scheduled.BatchStillAccepting) -> Response[Any]:
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    response = error_response(RefusalCode.BATCH_STILL_ACCEPTING, str(exc))
    response.headers["Retry-After"] = str(scheduled.RETRY_SECONDS)
    return response


@app.exception_handler(NotFound)
def _not_found(exc: NotFound) -> Response[Any]:
    metrics.add_metric(name="NotFound", unit=MetricUnit.Count, value=1)
    return error_response(RefusalCode.NOT_FOUND, str(exc))


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[Any]:
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    return validation_error_response([_name_the_header(error) for error in exc.errors()])


def _name_the_header(error: dict[str, Any]) -> dict[str, Any]:
    """A bad Idempotency-Key is reported as the header the client wrote, with the rule in words."""
    location = [str(part).lower() for part in error.get("loc", ())]
    if location[:2] == ["header", IDEMPOTENCY_HEADER.lower()]:
        return {**error, "loc": (IDEMPOTENCY_HEADER,), "msg": f"must be {IDEMPOTENCY_KEY_RULE}, given once"}
    return error


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_content_type(exc: RequestUnsupportedContentType) -> Response[Any]:
    # Reached only by what refuse_non_json_body lets through, e.g. an empty body under a type that is not JSON.
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    media_type = app.current_event.headers.get("content-type", "").split(";")[0].strip().lower()
    return error_response(RefusalCode.UNSUPPORTED_MEDIA_TYPE, not_json_message(media_type))


@app.exception_handler(list(REFUSED))
def _refused(exc: Exception) -> Response[Any]:
    refusal = refusal_of(exc)  # the table the SQS intake reads too
    response = refusal_response(refusal)
    if refusal.code is RefusalCode.IDEMPOTENCY_KEY_IN_PROGRESS:
        metrics.add_metric(name="IdempotencyKeyInProgress", unit=MetricUnit.Count, value=1)
        response.headers["Retry-After"] = "2"
    else:
        metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    return response


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    refusal = refuse_oversized_body(event) or refuse_non_json_body(event) or refuse_undecodable_body(event)
    if refusal is not None:
        metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
        return refusal
    return app.resolve(with_plain_json_content_type(event), context)
