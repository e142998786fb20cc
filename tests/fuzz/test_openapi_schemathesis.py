"""schemathesis against the API's own OpenAPI document (the one Powertools builds from the routes), every case sent
through the local API Gateway (routes and proxy events from template.yaml, `local/api_server.py`) to the send_api
handler, in process, against moto.

Checked for every case, valid or not: no 5xx and no exception; the status code, content type, headers and body
are the documented ones; every 4xx is `{"error": {code, message, fields}}` naming a reason (a field and a rule for
a schema violation); a refused request wrote nothing and an accepted one left its batch complete.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any
from urllib.parse import urljoin

import pytest
import schemathesis
from hypothesis import event, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CheckContext
from schemathesis.core.transport import Response as CaseResponse
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import positive_data_acceptance

from globesms.api import docs, resolver
from local.api_server import Request, build_gateway, proxy_response
from tests.fuzz.harness import (
    FuzzStack,
    assert_accepts_consistent,
    assert_refusal_explained,
    fuzz_settings,
    refusal_of,
)
from tests.fuzz.strategies import send_body

API_KEY = "local-dev-key"  # local.api_server's default key: the gateway, not the function, checks it


def openapi_document() -> dict[str, Any]:
    """The document as the API serves it: built by Powertools from the API's routes (globesms.api) and their
    models."""
    document: dict[str, Any] = json.loads(resolver.openapi_document())  # what GET /v1/openapi.json serves
    # Its server URLs are relative to where it is served, as a client resolves them ("..": the API's root).
    served_at = docs.OPENAPI_PATH
    document["servers"] = [{**server, "url": urljoin(served_at, server["url"])} for server in document["servers"]]
    return document


SCHEMA = schemathesis.openapi.from_dict(openapi_document())


class InProcessGateway:
    """A WSGI app: the local API Gateway (route matching, API key, proxy events) with its Lambda integration
    replaced by a direct call of the handler. An exception in the handler propagates: the test fails on it."""

    def __init__(self, handlers: dict[str, Callable[[dict[str, Any], Any], dict[str, Any]]], context: Any) -> None:
        self.handlers = handlers
        self.context = context
        self.gateway = build_gateway({function_id: ["in-process"] for function_id in handlers}, {})
        self.gateway._integrate = self._integrate  # type: ignore[method-assign]

    def _integrate(self, route: Any, event: dict[str, Any]) -> Any:
        return proxy_response(self.handlers[route.function_id](event, self.context))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raw_path = environ.get("RAW_URI") or environ["PATH_INFO"]
        path, _, query = raw_path.partition("?")
        headers = [
            (name[5:].replace("_", "-").lower(), value) for name, value in environ.items() if name.startswith("HTTP_")
        ]
        if environ.get("CONTENT_TYPE"):
            headers.append(("content-type", environ["CONTENT_TYPE"]))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        request = Request(
            method=environ["REQUEST_METHOD"],
            path=path,
            query=query or environ.get("QUERY_STRING", ""),
            headers=headers,
            body=body,
            source_ip="127.0.0.1",
        )
        response = self.gateway.handle(request)
        start_response(
            f"{response.status} -", [(name, value) for name, values in response.headers.items() for value in values]
        )
        return [response.body]


def refusals_name_a_reason(ctx: CheckContext, response: CaseResponse, case: Case) -> bool | None:
    """Every 4xx the function gives is `{"error": {code, message, fields}}` with a reason (API Gateway's own 403s
    for a missing key or route are not the function's and have their own shape)."""
    if not 400 <= response.status_code < 500 or response.headers.get("x-amzn-errortype"):
        return None
    assert_refusal_explained(refusal_of({"body": response.content.decode()}))
    return True


@pytest.fixture
def gateway(send_api: ModuleType, lambda_context: Any) -> Iterator[InProcessGateway]:
    app = InProcessGateway(
        {"SendApiFunction": send_api.lambda_handler, "ReceiptsFunction": _no_receipts}, lambda_context
    )
    # Schemathesis sends its own probes (ignored_auth: the same case without the x-api-key the document requires)
    # through the schema's transport, which is the WSGI one only when the schema knows the app.
    SCHEMA.app = app
    yield app
    SCHEMA.app = None


def _no_receipts(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise AssertionError("the API document has no receipts route")


CASES = st.one_of(SCHEMA.as_strategy(GenerationMode.POSITIVE), SCHEMA.as_strategy(GenerationMode.NEGATIVE))
# The document cannot say every rule (exactly one of text and template, what a sender id may hold, https only,
# blank text after trimming, text that is not Unicode): a body it allows may rightly be refused, and what is
# checked instead is that the refusal names the field and the rule (refusals_name_a_reason).
EXCLUDED = [positive_data_acceptance]


def call_and_validate(case: Case, gateway: InProcessGateway, *, with_key: bool = True) -> CaseResponse:
    response = case.call(app=gateway, headers={"x-api-key": API_KEY} if with_key else {})
    case.validate_response(
        response,
        additional_checks=[refusals_name_a_reason],
        excluded_checks=EXCLUDED,
        headers={"x-api-key": API_KEY},
        transport_kwargs={"app": gateway, "headers": {"x-api-key": API_KEY}},
    )
    return response


@fuzz_settings(80)
@given(case=CASES)
def test_every_documented_operation_answers_as_documented(
    fuzz_stack: FuzzStack, gateway: InProcessGateway, case: Case
) -> None:
    fuzz_stack.clear()
    # A generated key is replaced by the gateway's own; a case made negative by leaving the key out goes without one,
    # and the gateway answers it (403), as API Gateway does deployed.
    with_key = any(name.lower() == "x-api-key" for name in case.headers or {})
    response = call_and_validate(case, gateway, with_key=with_key)
    event(f"{case.method} {case.path}: {response.status_code}")
    seen = fuzz_stack.observe()
    if response.status_code >= 400 or case.method != "POST":
        assert seen.empty, f"{case.method} {case.path} -> {response.status_code} wrote {seen.describe()}"
    else:
        assert_accepts_consistent(seen)


@fuzz_settings(20)
@given(body=send_body())
def test_accepted_sends_and_reading_them_back_answer_as_documented(
    fuzz_stack: FuzzStack, gateway: InProcessGateway, body: dict[str, Any]
) -> None:
    """The documented success answers, which generated cases rarely reach: a 202, then the message and the batch."""
    fuzz_stack.clear()
    post = SCHEMA["/v1/messages"]["POST"].Case(body=body, media_type="application/json")
    answer = call_and_validate(post, gateway)
    assert answer.status_code == 202, answer.content
    accepted = json.loads(answer.content)
    event("some accepted" if accepted["accepted"] else "none accepted")
    batch = SCHEMA["/v1/batches/{batch_id}"]["GET"].Case(
        path_parameters={"batch_id": accepted["batch_id"]}, query={"limit": 2}
    )
    assert call_and_validate(batch, gateway).status_code == 200
    for message in accepted["messages"][:2]:
        read = SCHEMA["/v1/messages/{message_id}"]["GET"].Case(path_parameters={"message_id": message["id"]})
        assert call_and_validate(read, gateway).status_code == 200
