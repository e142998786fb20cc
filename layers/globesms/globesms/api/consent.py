"""Consent on the API (docs/consent.md): the opt-out list (PUT, GET and DELETE /v1/opt-outs/{number}, GET
/v1/opt-outs) and the replies people sent (GET /v1/replies). A deployment without the consent table answers
CONSENT_NOT_MANAGED."""

from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from globesms.api.refusals import FieldRefused, NotFound
from globesms.api.routers import new_router, on_exception
from globesms.aws import wiring
from globesms.aws.dynamodb_consent import DynamoDBConsentStore
from globesms.consent import optouts
from globesms.domain.clock import iso, utc_now
from globesms.domain.masking import mask
from globesms.errors import RefusalCode
from globesms.http_errors import error_response
from globesms.models.api import refusal_answers, success_answer
from globesms.observability import logger, tracer
from globesms.replies import record as reply_record
from globesms.replies.models import ReplyPage

router = new_router()

_NUMBER = Annotated[str, Path(min_length=1, max_length=40, description="the number, E.164 (`+6591234567`)")]


class ConsentNotManaged(RuntimeError):
    """The function has no consent table: a deployment without ConsentTable."""


def _opt_out_store() -> DynamoDBConsentStore:
    store = wiring.consent_store()
    if store is None:
        raise ConsentNotManaged("this deployment has no consent table (GLOBESMS_CONSENT_TABLE): no opt-out list")
    return store


def _listed_number(raw: str) -> str:
    try:
        # Decoded here whether or not the gateway did: `%2B65%209123-4567` is `+65 9123-4567`, and no number
        # holds a `%`.
        return optouts.normalise(unquote(raw))
    except optouts.NotANumber as exc:
        raise FieldRefused("path", "number", str(exc)) from None


@router.put(
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


@router.get(
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


@router.delete(
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


@router.get(
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


@router.get(
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


@on_exception(router, ConsentNotManaged)
def _consent_not_managed(exc: ConsentNotManaged) -> Response[Any]:
    return error_response(RefusalCode.CONSENT_NOT_MANAGED, str(exc))
