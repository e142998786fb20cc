"""API Gateway, locally: the REST API's routes from template.yaml, each request turned into an API Gateway proxy
(v1) event and sent to its function's process through Lambda's Invoke API (local/lambda_host.py).

    python -m local.api_server --port 3000 --function SendApiFunction=http://127.0.0.1:<invoke port>
    (local.run passes --listen-fd N instead of --port: a socket it bound, see local/processes.py; and --wait-for
    with every function host's URL, so that the API listens only once they all serve)

What it does as API Gateway does: `x-api-key` must be one of the API keys on routes with ApiKeyRequired
(`GLOBESMS_API_KEY`, default `local-dev-key`, whose id is `local-api-key`; and one key per client service from
`GLOBESMS_API_KEYS=name=value,name=value`, whose id is its name), else 403 `{"message": "Forbidden"}`; the event's
`requestContext.identity.apiKeyId` is the id of the key sent, as API Gateway's; an unknown path or method is
403 `{"message": "Missing Authentication Token"}`; a failed or malformed function response is 502 and a function
that does not answer within 29 s is 504. Unlike the deployed API, URLs carry no stage prefix (as `sam local
start-api`); the stage still appears in the event's requestContext. No throttling, usage plans or binary media types.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import logging
import os
import queue
import re
import socket
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local.httpd import QuietHandler, serve_in_background
from local.lambda_host import INVOKE_PATH
from local.processes import add_listen_fd_argument, configure_logging
from local.settings import API_PORT, DEFAULT_API_KEY, DEFAULT_API_KEY_ID
from local.stack import function_name, parameter_context
from local.template import ApiRoute, ResolveContext, load_template, resolve

API_KEY_ENV = "GLOBESMS_API_KEY"
API_KEYS_ENV = "GLOBESMS_API_KEYS"
#: A GLOBESMS_API_KEYS key's name is its id (GLOBESMS_API_KEY's is DEFAULT_API_KEY_ID; API Gateway gives each key an
#: id apart from its value, and records carry the id): the owner of its records and its key in limits.json. API
#: Gateway's ids are [a-z0-9].
KEY_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
KEY_VALUE_MIN_LENGTH = 20  # API Gateway's own minimum for an API key's value
INTEGRATION_TIMEOUT_SECONDS = 29  # API Gateway's maximum for REST APIs
WAIT_FOR_TIMEOUT_SECONDS = 60  # for --wait-for's servers to listen (local.run's own start-up deadline)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

log = logging.getLogger("local.api_server")


def api_key(environ: Mapping[str, str] | None = None) -> str:
    return (os.environ if environ is None else environ).get(API_KEY_ENV) or DEFAULT_API_KEY


def api_keys(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every key the gateway takes: value -> key id. GLOBESMS_API_KEY (id `local-api-key`) and each
    `name=value` of GLOBESMS_API_KEYS (id: the name). Raises ValueError naming the entry's position and rule,
    never a key's value."""
    env = os.environ if environ is None else environ
    keys = {api_key(env): DEFAULT_API_KEY_ID}
    listed = (env.get(API_KEYS_ENV) or "").strip()
    if not listed:
        return keys
    names: set[str] = {DEFAULT_API_KEY_ID}
    for position, entry in enumerate(listed.split(","), start=1):
        name, separator, value = (part.strip() for part in entry.partition("="))
        where = f"{API_KEYS_ENV} entry {position}"
        if not separator or not KEY_NAME_PATTERN.fullmatch(name):
            raise ValueError(f"{where}: want name=value, the name 1-64 of A-Z a-z 0-9 _ - (starting alphanumeric)")
        if len(value) < KEY_VALUE_MIN_LENGTH:
            raise ValueError(f"{where} ({name}): the value must be at least {KEY_VALUE_MIN_LENGTH} characters")
        if name in names:
            raise ValueError(f"{where}: the name {name} is taken")
        if value in keys:
            raise ValueError(f"{where} ({name}): the same value as another key")
        names.add(name)
        keys[value] = name
    return keys


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]  # in order, repeated names kept
    body: bytes
    source_ip: str

    def header(self, name: str) -> str | None:
        return next((v for k, v in reversed(self.headers) if k.lower() == name.lower()), None)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, list[str]]


def gateway_error(status: int, message: str, error_type: str) -> Response:
    body = json.dumps({"message": message}).encode()
    return Response(status, body, {"Content-Type": ["application/json"], "x-amzn-ErrorType": [error_type]})


@dataclass(frozen=True)
class CompiledRoute:
    route: ApiRoute
    pattern: re.Pattern[str]
    parameter_names: tuple[str, ...]
    stage: str

    @property
    def precedence(self) -> tuple[int, int]:
        """API Gateway prefers literal paths to `{param}` ones, and those to greedy `{param+}` ones."""
        greedy = sum(name.endswith("+") for name in self.parameter_names)
        return greedy, len(self.parameter_names)


def compile_route(route: ApiRoute, stage: str) -> CompiledRoute:
    names: list[str] = []
    pattern = ""
    for literal, name in re.findall(r"([^{]*)(?:\{([^}]+)\})?", route.path):
        pattern += re.escape(literal)
        if name:
            pattern += f"(?P<p{len(names)}>{'.+' if name.endswith('+') else '[^/]+'})"
            names.append(name)
    return CompiledRoute(route, re.compile(f"^{pattern}/?$"), tuple(names), stage)


class Gateway:
    def __init__(
        self,
        routes: Sequence[CompiledRoute],
        function_urls: Mapping[str, Sequence[str]],
        keys: Mapping[str, str],
        context: ResolveContext,
    ):
        self.routes = sorted(routes, key=lambda r: r.precedence)
        self.function_urls = {function_id: list(urls) for function_id, urls in function_urls.items()}
        # One invocation at a time per execution environment (a function host), as Lambda runs them: a request
        # takes a free host of its function, waiting for one when all are busy.
        self._free: dict[str, queue.Queue[str]] = {}
        for function_id, urls in self.function_urls.items():
            self._free[function_id] = queue.Queue()
            for url in urls:
                self._free[function_id].put(url)
        self.keys = dict(keys)  # value -> key id
        self.context = context

    def match(self, method: str, path: str) -> tuple[CompiledRoute, dict[str, str]] | None:
        for compiled in self.routes:
            found = compiled.pattern.match(path)
            if found and compiled.route.method in (method, "ANY"):
                values = [unquote(v) for v in found.groups()]
                return compiled, {
                    name.rstrip("+"): value for name, value in zip(compiled.parameter_names, values, strict=True)
                }
        return None

    def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        matched = self.match(request.method, request.path)
        if matched is None:
            response = gateway_error(403, "Missing Authentication Token", "MissingAuthenticationTokenException")
        elif matched[0].route.api_key_required and self.keys.get(request.header("x-api-key") or "") is None:
            response = gateway_error(403, "Forbidden", "ForbiddenException")
        else:
            compiled, path_parameters = matched
            key_id = self.keys.get(request.header("x-api-key") or "") if compiled.route.api_key_required else None
            event = proxy_event(request, compiled, path_parameters, request_id, self.context, key_id=key_id)
            response = self._integrate(compiled.route, event)
        response.headers["x-amzn-RequestId"] = [request_id]
        return response

    def _integrate(self, route: ApiRoute, event: dict[str, Any]) -> Response:
        free = self._free[route.function_id]
        try:
            host = free.get(timeout=INTEGRATION_TIMEOUT_SECONDS)
        except queue.Empty:
            return gateway_error(504, "Endpoint request timed out", "IntegrationTimeoutException")
        try:
            return self._invoke(host, route, event)
        finally:
            free.put(host)

    def _invoke(self, host: str, route: ApiRoute, event: dict[str, Any]) -> Response:
        url = host + INVOKE_PATH.format(name=function_name(route.function_id))
        call = urllib.request.Request(url, data=json.dumps(event).encode(), method="POST")  # noqa: S310 - http://127.0.0.1 only
        try:
            with urllib.request.urlopen(call, timeout=INTEGRATION_TIMEOUT_SECONDS) as answer:  # noqa: S310
                failed = answer.headers.get("X-Amz-Function-Error") is not None
                payload = json.loads(answer.read() or b"null")
        except TimeoutError:
            return gateway_error(504, "Endpoint request timed out", "IntegrationTimeoutException")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # The function's process is down (URLError), died during the invocation (the connection closed without
            # an answer: RemoteDisconnected, reset) or answered garbage: API Gateway's answer to a failed Lambda.
            log.error("invoking %s failed: %s", route.function_id, exc)
            return gateway_error(502, "Internal server error", "InternalServerErrorException")
        if failed:
            log.error("%s raised %s: %s", route.function_id, payload.get("errorType"), payload.get("errorMessage"))
            return gateway_error(502, "Internal server error", "InternalServerErrorException")
        return proxy_response(payload)


def proxy_event(
    request: Request,
    compiled: CompiledRoute,
    path_parameters: dict[str, str],
    request_id: str,
    context: ResolveContext,
    *,
    key_id: str | None = None,
) -> dict[str, Any]:
    """The REST API proxy integration's event (payload format 1.0); `key_id`: the id of the API key sent."""
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(request.query, keep_blank_values=True):
        query[name] = value
        multi_query.setdefault(name, []).append(value)
    try:
        body: str | None = request.body.decode() if request.body else None
        is_base64 = False
    except UnicodeDecodeError:
        body, is_base64 = base64.b64encode(request.body).decode(), True
    now = datetime.now(UTC)
    route = compiled.route
    return {
        "resource": route.path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": context.account_id,
            "apiId": route.api_id.lower(),
            "resourceId": route.event_name.lower(),
            "resourcePath": route.path,
            "httpMethod": request.method,
            "path": f"/{compiled.stage}{request.path}",
            "stage": compiled.stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "protocol": "HTTP/1.1",
            "domainName": request.header("host") or "127.0.0.1",
            "identity": {
                "sourceIp": request.source_ip,
                "userAgent": request.header("user-agent"),
                "apiKey": request.header("x-api-key") if route.api_key_required else None,
                "apiKeyId": key_id,
                "accountId": None,
                "caller": None,
                "user": None,
                "userArn": None,
            },
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


def proxy_response(payload: Any) -> Response:
    """The function's proxy response as HTTP; anything without a numeric statusCode is a 502, as in API Gateway."""
    if not isinstance(payload, dict) or not isinstance(payload.get("statusCode"), int):
        log.error("malformed Lambda proxy response: %r", payload)
        return gateway_error(502, "Internal server error", "InternalServerErrorException")
    headers: dict[str, list[str]] = {k: list(v) for k, v in (payload.get("multiValueHeaders") or {}).items()}
    for name, value in (payload.get("headers") or {}).items():
        headers.setdefault(name, [str(value)])
    body = payload.get("body") or ""
    data = base64.b64decode(body) if payload.get("isBase64Encoded") else str(body).encode()
    return Response(payload["statusCode"], data, headers)


def handler_class(gateway: Gateway) -> type[QuietHandler]:
    class ApiHandler(QuietHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=parts.path,
                query=parts.query,
                headers=list(self.headers.items()),
                body=self.read_body(),
                source_ip=self.client_address[0],
            )
            started = time.monotonic()
            response = gateway.handle(request)
            log.info(
                "%s %s -> %d (%.0f ms)",
                request.method,
                request.path,
                response.status,
                (time.monotonic() - started) * 1000,
            )
            self.respond(response.status, response.body, response.headers)

    for method in HTTP_METHODS:
        setattr(ApiHandler, f"do_{method}", ApiHandler._serve)
    return ApiHandler


def build_gateway(function_urls: Mapping[str, Sequence[str]], environ: Mapping[str, str] | None = None) -> Gateway:
    env = os.environ if environ is None else environ
    template = load_template()
    context = parameter_context(template, env)
    missing = {r.function_id for r in template.routes} - set(function_urls)
    if missing:
        raise ValueError(f"no Invoke URL given for {', '.join(sorted(missing))}")
    routes = [
        compile_route(
            replace(r, api_key_required=bool(resolve(r.api_key_required, context))), str(resolve(r.stage_name, context))
        )
        for r in template.routes
    ]
    return Gateway(routes, function_urls, api_keys(env), context)


def wait_until_accepting(urls: Sequence[str], timeout: float) -> None:
    """Until a TCP connection to each of `urls` (host and port; 80 or 443 by scheme when none) is accepted;
    SystemExit when `timeout` runs out.

    local.run starts this server beside the function hosts rather than after them (its imports then overlap
    theirs: a stack was ready 5.54 -> 5.05 s, median of four alternating starts) and names every host here
    (`--wait-for`), so that it listens only once they all can serve, as when it was started after them."""
    pending = {
        (split.hostname or "127.0.0.1", split.port or (443 if split.scheme == "https" else 80))
        for split in map(urlsplit, urls)
    }
    deadline = time.monotonic() + timeout
    while pending := {address for address in pending if not _accepts(address)}:
        if time.monotonic() > deadline:
            waited = ", ".join(f"{host}:{port}" for host, port in sorted(pending))
            raise SystemExit(f"local.api_server: nothing accepted connections on {waited} in {timeout:.0f} s")
        time.sleep(0.02)


def _accepts(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=0.2).close()
    except OSError:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="API Gateway for the local stack")
    parser.add_argument("--port", type=int, default=int(os.environ.get("API_PORT", API_PORT)))
    parser.add_argument(
        "--function",
        action="append",
        default=[],
        metavar="LOGICAL_ID=URL",
        help="where a function's Invoke API listens (each function with API events; repeated for a function that "
        "runs in several hosts: requests go to a free one)",
    )
    parser.add_argument(
        "--wait-for",
        action="append",
        default=[],
        metavar="URL",
        help="listen only once a connection to URL is accepted (repeated: each); local.run names every function host",
    )
    add_listen_fd_argument(parser)
    args = parser.parse_args(argv)
    configure_logging()
    function_urls: dict[str, list[str]] = {}
    for item in args.function:
        function_id, _, url = item.partition("=")
        function_urls.setdefault(function_id, []).append(url)
    try:
        gateway = build_gateway(function_urls)
    except ValueError as exc:
        parser.error(str(exc))
    # Listening last: a caller that can connect finds the routes in place and (with --wait-for) every host serving.
    wait_until_accepting(args.wait_for, WAIT_FOR_TIMEOUT_SECONDS)
    server = serve_in_background(handler_class(gateway), args.port, listen_fd=args.listen_fd)
    log.info("API on http://127.0.0.1:%d (%d routes)", server.server_address[1], len(gateway.routes))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
