"""The providers' endpoints put together: one Powertools resolver with the receipts and replies routers."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from globesms.callbacks import receipts, replies

app = APIGatewayRestResolver()
app.include_router(receipts.router)
app.include_router(replies.router)


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
