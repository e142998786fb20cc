"""The local API Gateway (routes, API keys and proxy events from template.yaml, `local.api_server`) with its Lambda
integration replaced by a direct call of the handler, in process: what a client of the deployed API sees."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from local.api_server import Request, build_gateway, proxy_response

API_KEY = "local-dev-key"  # local.api_server's default key: the gateway, not the function, checks it
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        found = {k.lower(): v for k, v in self.headers.items()}.get(name.lower())
        return found[-1] if found else None


class InProcessApi:
    def __init__(self, handler: Handler, context: Any, environ: Mapping[str, str] | None = None) -> None:
        self.handler = handler
        self.context = context
        functions = {"SendApiFunction": ["in-process"], "ReceiptsFunction": ["in-process"]}
        self.gateway = build_gateway(functions, environ or {})
        self.gateway._integrate = self._integrate  # type: ignore[method-assign]

    def _integrate(self, route: Any, event: dict[str, Any]) -> Any:
        if route.function_id != "SendApiFunction":
            raise AssertionError(f"{route.path} is not the API's")
        return proxy_response(self.handler(event, self.context))

    def call(self, method: str, path: str, *, body: Any = None, query: str = "", key: str | None = API_KEY) -> Answer:
        headers = [("host", "127.0.0.1")]
        if key is not None:
            headers.append(("x-api-key", key))
        raw = b""
        if body is not None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers.append(("content-type", "application/json"))
        request = Request(method=method, path=path, query=query, headers=headers, body=raw, source_ip="127.0.0.1")
        response = self.gateway.handle(request)
        return Answer(response.status, response.headers, response.body)
