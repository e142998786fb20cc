"""The API put together: one Powertools resolver with every router of globesms.api, and `handle`, which refuses
what the resolver cannot read before it gets there.

The routers are included in the order the OpenAPI document lists their paths (POST /v1/messages first); the
document's own routes and the refusals' handlers add no path.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from globesms.accept.bodies import read_json, write_json
from globesms.api import cancel, consent, docs, reads, refusals, send, templates, usage
from globesms.http_errors import (
    refuse_non_json_body,
    refuse_oversized_body,
    refuse_undecodable_body,
    with_plain_json_content_type,
)
from globesms.observability import metrics

# Bodies are read by read_json: its limits (nesting, integer size) refuse what json.loads would crash on.
app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=read_json, serializer=write_json)
for _part in (send, usage, reads, docs, templates, consent, cancel, refusals):
    app.include_router(_part.router)


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The API's answer to one API Gateway event: a body too large, not JSON or not decodable is refused here
    (Powertools would fail on it or read it wrongly), anything else goes to its route."""
    refusal = refuse_oversized_body(event) or refuse_non_json_body(event) or refuse_undecodable_body(event)
    if refusal is not None:
        metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
        return refusal
    return app.resolve(with_plain_json_content_type(event), context)


def openapi_document() -> str:
    """What GET /v1/openapi.json serves."""
    return docs.openapi_json(app)
