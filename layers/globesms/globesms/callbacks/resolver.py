"""The providers' endpoints put together: one Powertools resolver with the receipts and replies routers."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.utilities.typing import LambdaContext

from globesms.callbacks import receipts, replies
from globesms.errors import RefusalCode
from globesms.http_errors import error_response

app = APIGatewayRestResolver()
app.include_router(receipts.router)
app.include_router(replies.router)


@app.not_found
def _no_route(_: NotFoundError) -> Response[Any]:
    # Powertools' own answer, `{"statusCode": 404, "message": "Not found"}`, is not the documented refusal shape. It
    # is reached by a path API Gateway routes here that neither route's pattern matches (a token with a `"` in it:
    # API Gateway hands over the decoded path). The path is not echoed: it is whatever the caller sent.
    return error_response(RefusalCode.NOT_FOUND, "no receipts or replies endpoint at this path")


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
