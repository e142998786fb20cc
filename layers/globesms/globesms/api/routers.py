"""What every router of the API shares: the router itself and its exception handlers, typed (Powertools' Router
leaves both unannotated, which would make every route module untyped under mypy --strict), and who a request comes
from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

ExceptionHandler = TypeVar("ExceptionHandler", bound=Callable[[Any], Response[Any]])


def new_router() -> APIGatewayRouter:
    return APIGatewayRouter()  # type: ignore[no-untyped-call]


def on_exception(
    router: APIGatewayRouter, raised: type[Exception] | list[type[Exception]]
) -> Callable[[ExceptionHandler], ExceptionHandler]:
    """`router.exception_handler(raised)`: the decorated function answers a request whose route raised `raised`."""
    return cast(Callable[[ExceptionHandler], ExceptionHandler], router.exception_handler(raised))


def owner(router: APIGatewayRouter) -> str | None:
    """The API key (its id, never the key) the request came with: what its records, spend and reads belong to."""
    return router.current_event.request_context.identity.api_key_id or None
