"""In-process stand-ins for AWS and the network, for running the real Lambda handlers in a benchmark process.

- AWS: `install_fake_aws` replaces the one place every adapter gets its boto3 client (`globesms.aws.clients`)
  with fakes that accept every write and find nothing on every read, but for the OTP guard's country counters
  (`P#<country>`), found with a day of steady OTP history as a running deployment has them (a fresh table would
  hold a large OTP request as SMS pumping). The handlers' own adapters (item serialisation, batching, retries of
  what is left unprocessed) run as deployed; only the AWS calls are faked.
- The network: `patch_httpx` makes every `httpx.HTTPTransport` answer at once (a provider's full acceptance, or a
  webhook receiver's 200), so provider clients and the webhook sender run their whole path but the socket.

Standard library only at import time: a cold-start child imports this before the handler it times.
"""

from __future__ import annotations

import importlib.util
import socket
import sys

from bench._sig_answers import answer_request

TYPE_CHECKING = False  # not from typing: it is not loaded at start, and this preamble must not load it

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from types import ModuleType
    from typing import Any

    Responder = Callable[[Any], tuple[int, bytes]]


def _empty(params: dict[str, Any]) -> dict[str, Any]:
    return {}


#: OTP let through per hour in each of the last 24 hours, for every country the OTP guard reads.
STEADY_OTP_PER_HOUR = 100_000


def _batch_get_item(params: dict[str, Any]) -> dict[str, Any]:
    import time

    hour = int(time.time()) // 3600
    history = {f"h{hour - back}": {"N": str(STEADY_OTP_PER_HOUR)} for back in range(1, 25)}
    return {
        "Responses": {
            table: [{**key, **history} for key in request.get("Keys", []) if key["pk"]["S"].startswith("P#")]
            for table, request in params.get("RequestItems", {}).items()
        },
        "UnprocessedKeys": {},
    }


def _send_message_batch(params: dict[str, Any]) -> dict[str, Any]:
    entries = params.get("Entries", [])
    return {
        "Successful": [
            {"Id": e["Id"], "MessageId": f"fake-{i}", "MD5OfMessageBody": ""} for i, e in enumerate(entries)
        ],
        "Failed": [],
    }


#: What an operation answers when it succeeds and finds nothing; any other operation answers `{}` (a write).
ANSWERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "batch_get_item": _batch_get_item,
    "batch_write_item": lambda _: {"UnprocessedItems": {}},
    "query": lambda _: {"Items": [], "Count": 0, "ScannedCount": 0},
    "scan": lambda _: {"Items": [], "Count": 0, "ScannedCount": 0},
    "send_message_batch": _send_message_batch,
    "send_message": lambda _: {"MessageId": "fake-0", "MD5OfMessageBody": ""},
}


class _EmptyPages:
    def __init__(self, operation: str, calls: list[str]) -> None:
        self._operation, self._calls = operation, calls

    def paginate(self, **params: Any) -> Iterator[dict[str, Any]]:
        self._calls.append(self._operation)
        yield ANSWERS.get(self._operation, _empty)(params)


class FakeAwsClient:
    """A boto3 client of one service: every call succeeds at once; `calls` names them in order (threads append
    to it concurrently, which a list's append survives). With `record`, each call's parameters are kept too, by
    operation, for a benchmark to check what a handler wrote."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.calls: list[str] = []
        self.record = False
        self.recorded: dict[str, list[dict[str, Any]]] = {}

    def __getattr__(self, operation: str) -> Callable[..., dict[str, Any]]:
        if operation.startswith("_"):
            raise AttributeError(operation)
        answer = ANSWERS.get(operation, _empty)

        def call(**params: Any) -> dict[str, Any]:
            self.calls.append(operation)
            if self.record:
                self.recorded.setdefault(operation, []).append(params)
            return answer(params)

        return call

    def get_paginator(self, operation: str) -> _EmptyPages:
        return _EmptyPages(operation, self.calls)


def install_fake_aws() -> dict[str, FakeAwsClient]:
    """Every boto3 client the handlers get from now on is a fake (one per service, shared like the real ones)."""
    from globesms.aws import clients

    fakes = {service: FakeAwsClient(service) for service in ("dynamodb", "sqs")}

    def client(service: str) -> FakeAwsClient:
        # What the real factory (`clients._client`) imports before it builds a client: a handler that imports boto3
        # on its first AWS call, as most do, pays for that import in its first event, and the cold start figure's
        # reference is that import. Only building the client and its calls are faked.
        import boto3  # noqa: F401
        from botocore.config import Config  # noqa: F401

        if service not in fakes:
            fakes[service] = FakeAwsClient(service)
        return fakes[service]

    clients._client = client  # type: ignore[assignment]
    return fakes


#: What every name resolves to here: a public address (the webhook sender vets the address a name resolves to and
#: connects to it; the patched transport answers before any socket opens).
PUBLIC_ADDRESS = "93.184.216.34"


def patch_resolver() -> None:
    """Every host name resolves at once to `PUBLIC_ADDRESS`, as a resolver answering from its cache would."""

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (PUBLIC_ADDRESS, int(port or 0)))]

    socket.getaddrinfo = getaddrinfo


def patch_httpx(httpx: ModuleType, respond: Responder) -> None:
    """Every `httpx.HTTPTransport` (what an `httpx.Client` sends through) answers `respond(request)` at once."""

    def handle_request(transport: Any, request: Any) -> Any:
        request.read()
        status, body = respond(request)
        return httpx.Response(status, content=body, headers={"content-type": "application/json"}, request=request)

    httpx.HTTPTransport.handle_request = handle_request


def answer_from_request(request: Any) -> tuple[int, bytes]:
    """The answer a provider (or a webhook receiver) gives to this request, read off the request."""
    return answer_request(str(request.url), dict(request.headers), request.content)


class _OnlyModules:
    """A meta path finder that refuses every module outside the standard library and `allowed` (top-level
    names): the packages of this virtualenv that Lambda would not have cannot change what an import costs."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed) | {"bench", "app"}

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        top = fullname.partition(".")[0]
        if top in self.allowed or top in sys.stdlib_module_names or top.startswith("_"):
            return None  # the usual finders look for it
        raise ModuleNotFoundError(f"No module named {fullname!r} (not deployed with the functions)", name=fullname)


def only_modules(allowed: Iterable[str]) -> None:
    """From now on, importing anything but the standard library and `allowed` fails as if it were not installed."""
    sys.meta_path.insert(0, _OnlyModules(allowed))


class _AfterImport:
    """A meta path finder that lets the real import of `name` run, then calls `then(module)`: a patch applied
    whenever the handler happens to import the module, without importing it earlier than the handler does."""

    def __init__(self, name: str, then: Callable[[ModuleType], None]) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader, then = spec.loader, self.then
        exec_module = loader.exec_module

        def exec_then_patch(module: ModuleType) -> None:
            exec_module(module)
            then(module)

        loader.exec_module = exec_then_patch  # type: ignore[method-assign]
        return spec


def patch_httpx_on_import(respond: Responder) -> None:
    """`patch_httpx` now if httpx is loaded, else as soon as something imports it."""
    if "httpx" in sys.modules:
        patch_httpx(sys.modules["httpx"], respond)
    else:
        sys.meta_path.insert(0, _AfterImport("httpx", lambda module: patch_httpx(module, respond)))
