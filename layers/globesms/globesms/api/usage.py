"""What the deployment has spent and how its routes deliver: GET /v1/usage (this month's spend and limits) and
GET /v1/stats/routes (delivery statistics per provider for one country, docs/routing-scores.md)."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query

from globesms.api.refusals import NotFound, query_refusal
from globesms.api.routers import new_router, owner
from globesms.aws import wiring
from globesms.domain.clock import utc_now
from globesms.errors import RefusalCode
from globesms.guardrails.prices import current_prices
from globesms.guardrails.usage import usage
from globesms.models.api import refusal_answers, success_answer
from globesms.models.guardrails import UsageView
from globesms.models.outbound import MessageType
from globesms.models.stats import RouteStatsView
from globesms.observability import tracer
from globesms.stats.summary import InvalidWindow, route_stats, window_seconds

router = new_router()


@router.get(
    "/v1/usage",
    summary="This month's spend and limits",
    responses={200: success_answer(UsageView)},
)
@tracer.capture_method(capture_response=False)
def get_usage() -> UsageView:
    return usage(wiring.spend_ledger(), owner=owner(router), now=utc_now())


@router.get(
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
        return query_refusal("window", str(exc))
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
