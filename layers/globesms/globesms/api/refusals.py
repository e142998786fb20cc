"""How a refused request is answered, whichever route refused it: one error shape (`globesms.http_errors`), one
code vocabulary (`globesms.errors.RefusalCode`), and a metric for each kind."""

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.metrics import MetricUnit

from globesms.accept.refusals import REFUSED, RETRY_LATER, over_recipient_limit, refusal_of
from globesms.api.docs import OPENAPI_PATH
from globesms.api.routers import new_router, on_exception
from globesms.errors import RefusalCode
from globesms.http_errors import error_response, not_json_message, refusal_response, validation_error_response
from globesms.models.api import IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY_RULE
from globesms.observability import metrics

router = new_router()


class NotFound(LookupError):
    pass


class FieldRefused(ValueError):
    """A field the route checks itself (beyond its declared rules): `where` is path, query or header."""

    def __init__(self, where: str, name: str, rule: str) -> None:
        super().__init__(rule)
        self.loc = (where, name)


def query_refusal(name: str, rule: str) -> Response[Any]:
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    return validation_error_response([{"loc": ("query", name), "msg": rule}])


@on_exception(router, NotFound)
def _not_found(exc: NotFound) -> Response[Any]:
    metrics.add_metric(name="NotFound", unit=MetricUnit.Count, value=1)
    return error_response(RefusalCode.NOT_FOUND, str(exc))


@on_exception(router, NotFoundError)
def _no_route(_: NotFoundError) -> Response[Any]:
    # Powertools' own answer, `{"statusCode": 404, "message": "Not found"}`, is not the documented refusal shape. It
    # is reached by a path API Gateway routes here that no route's pattern matches (a `"` in an id: API Gateway
    # hands over the decoded path), or by a method the route has not. The path is not echoed: it is the client's
    # text, whatever it holds.
    metrics.add_metric(name="NotFound", unit=MetricUnit.Count, value=1)
    message = f"no route answers this method and path (GET {OPENAPI_PATH} lists them)"
    return error_response(RefusalCode.NOT_FOUND, message)


@on_exception(router, FieldRefused)
def _field_refused(exc: FieldRefused) -> Response[Any]:
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    return validation_error_response([{"loc": exc.loc, "msg": str(exc)}])


@on_exception(router, RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[Any]:
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    over = over_recipient_limit(exc.errors())
    if over is not None:
        return refusal_response(refusal_of(over))
    return validation_error_response([_name_the_header(error) for error in exc.errors()])


def _name_the_header(error: dict[str, Any]) -> dict[str, Any]:
    """A bad Idempotency-Key is reported as the header the client wrote, with the rule in words."""
    location = [str(part).lower() for part in error.get("loc", ())]
    if location[:2] == ["header", IDEMPOTENCY_HEADER.lower()]:
        return {**error, "loc": (IDEMPOTENCY_HEADER,), "msg": f"must be {IDEMPOTENCY_KEY_RULE}, given once"}
    return error


@on_exception(router, RequestUnsupportedContentType)
def _unsupported_content_type(exc: RequestUnsupportedContentType) -> Response[Any]:
    # Reached only by what refuse_non_json_body lets through, e.g. an empty body under a type that is not JSON.
    metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    media_type = router.current_event.headers.get("content-type", "").split(";")[0].strip().lower()
    return error_response(RefusalCode.UNSUPPORTED_MEDIA_TYPE, not_json_message(media_type))


@on_exception(router, list(REFUSED))
def _refused(exc: Exception) -> Response[Any]:
    refusal = refusal_of(exc)  # the table the SQS intake reads too
    response = refusal_response(refusal)
    if refusal.code in RETRY_LATER:
        response.headers["Retry-After"] = str(RETRY_LATER[refusal.code])
    if refusal.code is RefusalCode.IDEMPOTENCY_KEY_IN_PROGRESS:
        metrics.add_metric(name="IdempotencyKeyInProgress", unit=MetricUnit.Count, value=1)
    elif refusal.code is RefusalCode.GUARDRAILS_UNAVAILABLE:
        metrics.add_metric(name="GuardrailsUnavailable", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="RequestsRefused", unit=MetricUnit.Count, value=1)
    return response
