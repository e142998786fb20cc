"""The HTTPS API as the command line sees it: one httpx client, retries that are safe, and two kinds of failure.

- `ApiRefused`: the API answered and refused (a 4xx): running the same command again gets the same answer.
- `ApiUnavailable`: no useful answer (no connection, a timeout, a 5xx, API Gateway throttling, or an
  Idempotency-Key still in progress) after the retries: running the same command again later is safe.

Only GETs and POSTs that carry an Idempotency-Key are ever sent twice: the API answers a repeated key with the first
answer and sends nobody anything again (docs/api.md, "Idempotency-Key").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from local import settings as local_settings

API_URL_ENV = "GLOBESMS_API_URL"
API_KEY_ENV = "GLOBESMS_API_KEY"  # also the key `make run` gives its local API, so one variable serves both
DEFAULT_API_URL = f"http://127.0.0.1:{local_settings.API_PORT}"  # `make run`'s API and key
DEFAULT_API_KEY = local_settings.DEFAULT_API_KEY
API_KEY_HEADER = "x-api-key"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_IN_PROGRESS = "IDEMPOTENCY_KEY_IN_PROGRESS"
# API Gateway ends an integration at 29 s; a 10,000-recipient accept can take most of that.
TIMEOUT = httpx.Timeout(35.0, connect=5.0)


@dataclass(frozen=True)
class Connection:
    url: str
    key: str


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # the first try and three retries
    first_delay: float = 0.5  # seconds, doubled after each try
    max_delay: float = 8.0

    def delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_delay)
        return min(self.first_delay * 2.0**attempt, self.max_delay)


class ApiRefused(Exception):
    """A 4xx answer: the request as written will not be accepted."""

    def __init__(self, status: int, code: str, message: str, fields: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.fields = status, code, message, fields or []


class ApiUnavailable(Exception):
    """No useful answer after the retries; `status` is the last HTTP status, None when nothing answered."""

    def __init__(self, message: str, status: int | None = None, code: str = "UNAVAILABLE") -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class SendAnswer:
    body: dict[str, Any]
    replayed: bool  # the API gave the first answer to this Idempotency-Key again: nothing was sent this time


def _error_of(response: httpx.Response) -> tuple[str, str, list[dict[str, Any]]]:
    """(code, message, fields) from the API's `{"error": {…}}` or API Gateway's own `{"message": …}`."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP_{response.status_code}", response.text[:200], []
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return str(error.get("code", "")), str(error.get("message", "")), list(error.get("fields") or [])
    message = body.get("message", "") if isinstance(body, dict) else ""
    return f"HTTP_{response.status_code}", str(message), []


def _is_transient(response: httpx.Response) -> bool:
    if response.status_code >= 500 or response.status_code == 429:
        return True
    return response.status_code == 409 and _error_of(response)[0] == KEY_IN_PROGRESS


@dataclass
class ApiClient:
    connection: Connection
    transport: httpx.BaseTransport | None = None  # tests give an httpx.MockTransport
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self._http = httpx.Client(
            base_url=self.connection.url,
            headers={API_KEY_HEADER: self.connection.key, "accept": "application/json"},
            timeout=TIMEOUT,
            transport=self.transport,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def send(self, body: dict[str, Any], *, idempotency_key: str) -> SendAnswer:
        """POST /v1/messages. The key is required: it is what makes a retry (here or a rerun) send nothing twice."""
        response = self._request("POST", "/v1/messages", json=body, headers={IDEMPOTENCY_HEADER: idempotency_key})
        return SendAnswer(body=self._json(response), replayed=response.headers.get(REPLAYED_HEADER) == "true")

    def message(self, message_id: str) -> dict[str, Any]:
        return self._json(self._request("GET", f"/v1/messages/{quote(message_id, safe='')}"))

    def batch(self, batch_id: str, *, limit: int, after: str | None = None) -> dict[str, Any]:
        params: dict[str, str | int] = {"limit": limit}
        if after is not None:
            params["after"] = after
        return self._json(self._request("GET", f"/v1/batches/{quote(batch_id, safe='')}", params=params))

    def batch_messages(self, batch_id: str, *, page_size: int) -> Iterator[dict[str, Any]]:
        """Every message of the batch, page after page through the `next` cursors."""
        after: str | None = None
        while True:
            page = self.batch(batch_id, limit=page_size, after=after)
            yield from page.get("messages", [])
            after = page.get("next")
            if not after:
                return

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(self.retry.attempts):
            last_try = attempt == self.retry.attempts - 1
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:  # connect errors, timeouts, a dropped connection
                if last_try:
                    raise ApiUnavailable(f"cannot reach {self.connection.url}: {type(exc).__name__}: {exc}") from exc
                self.sleep(self.retry.delay(attempt, None))
                continue
            if not _is_transient(response):
                break
            if last_try:
                code, message, _ = _error_of(response)
                raise ApiUnavailable(f"{response.status_code} {code}: {message}", response.status_code, code)
            self.sleep(self.retry.delay(attempt, response.headers.get("retry-after")))
        if response.is_client_error:
            raise ApiRefused(response.status_code, *_error_of(response))
        return response

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiUnavailable(f"{response.status_code}: the answer is not JSON", response.status_code) from exc
        if not isinstance(body, dict):
            raise ApiUnavailable(f"{response.status_code}: the answer is not a JSON object", response.status_code)
        return body
