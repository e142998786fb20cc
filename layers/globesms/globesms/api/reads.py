"""Reading what was sent: GET /v1/messages/{id}, GET /v1/batches/{id} (a page of its messages and its counts), and
GET /v1/messages?client_ref= or ?to= (finding messages)."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from globesms.accept import queries
from globesms.api.refusals import FieldRefused, NotFound, query_refusal
from globesms.api.routers import new_router, owner
from globesms.aws import wiring
from globesms.domain.masking import mask
from globesms.domain.phone import InvalidNumber, parse_mobile
from globesms.errors import RefusalCode
from globesms.models.api import refusal_answers, success_answer
from globesms.models.views import BatchView, MessageList, MessageView
from globesms.observability import logger, tracer
from globesms.ports import InvalidCursor, MessageLookup

router = new_router()


@router.get(
    "/v1/messages/<message_id>",
    responses={
        200: success_answer(MessageView),
        **refusal_answers(RefusalCode.NOT_FOUND, RefusalCode.VALIDATION_ERROR),
    },
)
@tracer.capture_method(capture_response=False)
def get_message(message_id: Annotated[str, Path(max_length=128)]) -> MessageView:
    view = queries.get_message(wiring.message_store(), message_id, owner=owner(router))
    if view is None:
        raise NotFound(f"no message {message_id}")
    return view


@router.get(
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
    try:
        view = queries.get_batch(wiring.message_store(), batch_id, limit=limit, after=after, owner=owner(router))
    except InvalidCursor as exc:  # answered as GET /v1/messages answers one (`query_refusal`)
        raise FieldRefused("query", "after", str(exc)) from None
    if view is None:
        raise NotFound(f"no batch {batch_id}")
    return view


@router.get(
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
        return query_refusal("client_ref", "give exactly one of client_ref or to")
    if to is not None:
        try:
            lookup = MessageLookup("to", parse_mobile(to).e164)
        except InvalidNumber as exc:
            return query_refusal("to", str(exc))
    else:
        assert client_ref is not None
        lookup = MessageLookup("client_ref", client_ref)
    try:
        found = queries.find_messages(wiring.message_finder(), lookup, limit=limit, after=after, owner=owner(router))
    except InvalidCursor as exc:
        return query_refusal("after", str(exc))
    shown = mask(lookup.value) if lookup.field == "to" else lookup.value
    logger.info("messages found", extra={"by": lookup.field, "value": shown, "found": len(found.messages)})
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=found)
