"""Client idempotency keys: the API's `Idempotency-Key` header and an SQS intake body's `idempotency_key`.

The same key (in the same scope) within 24 h runs the accept once: a repeat with the same body gets the first
answer back and writes and sends nothing; a repeat with another body is `KeyReused`; a repeat while the first is
still running is `KeyInProgress`. Only answers are kept: when the accept raises (a refusal), Powertools deletes
the record, so a corrected retry with the same key runs.

Powertools idempotency (`idempotent_function`) around the accept alone, not around the whole Lambda event: the
idempotency key is `[scope, key]`, the payload it validates is what the client asked for, and the stored answer is
the `AcceptResponse`. The records live in their own table (`GLOBESMS_IDEMPOTENCY_TABLE`, TTL on `expiration`).

The persistence layer is built on first use, on the process's shared DynamoDB client (`globesms.aws.clients`), so
importing this module creates no client and a test that resets the clients gets a layer on its own endpoint.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.base import BaseIdempotencySerializer

from globesms.accept.idempotency_outcomes import (
    WINDOW_SECONDS,
    BatchDoneBefore,
    IdempotencyUnavailable,
    KeyInProgress,
    KeyReused,
    Outcome,
)
from globesms.aws import clients
from globesms.config import IdempotencySettings, settings
from globesms.models.views import AcceptResponse

__all__ = ["IdempotencyUnavailable", "KeyInProgress", "KeyReused", "Outcome", "register_lambda_context", "run_once"]

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

KEY_PREFIX = "globesms.accept"  # stable across deployments (the default would contain the function's name)

# Answers are stored as JSON inside one DynamoDB item (400 KB at most). A large answer (10,000 recipients is about
# 1 MB of JSON) is stored compressed; one still too large (only thousands of long, malformed numbers do that) keeps
# its first MAX_REPLAYED_ERRORS errors: the counts stay exact and the batch's header has the first 100 errors.
_PLAIN_LIMIT = 64 * 1024
_STORED_LIMIT = 300 * 1024
MAX_REPLAYED_ERRORS = 1_000

config = IdempotencyConfig(
    event_key_jmespath="[scope, key]",
    payload_validation_jmespath="payload",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=WINDOW_SECONDS,
    hash_function="sha256",
    response_hook=lambda response, record: _Replayed(response, record),
)


@dataclass(frozen=True)
class _Replayed:
    answer: AcceptResponse
    record: DataRecord


def register_lambda_context(context: LambdaContext) -> None:
    """Once per invocation: an in-progress record expires with the invocation, so a retry after a timeout runs."""
    config.register_lambda_context(context)


def run_once(*, scope: str, key: str, payload: Any, work: Callable[[], AcceptResponse]) -> Outcome:
    """`work()` once per (scope, key) within 24 h; `payload` (JSON-able) must be the same for a replay.

    Raises KeyReused (another payload), KeyInProgress (the first is still running), IdempotencyUnavailable; any
    exception of `work` propagates and leaves no record behind, but `BatchDoneBefore` (the batch of this key and body
    was accepted before the key's 24 h record expired): its answer is given as a replay.
    """
    table = settings(IdempotencySettings).idempotency_table
    if not table:
        raise IdempotencyUnavailable("GLOBESMS_IDEMPOTENCY_TABLE is not set")
    once = _once(table, clients.dynamodb())
    try:
        result = once(request={"scope": scope, "key": key, "payload": payload}, work=work)
    except BatchDoneBefore as done:  # the key's record expired, its batch stands: answered as a replay
        return Outcome(done.answer, replayed=True)
    except IdempotencyValidationError:
        raise KeyReused() from None
    except IdempotencyAlreadyInProgressError:
        raise KeyInProgress() from None
    if isinstance(result, _Replayed):
        return Outcome(result.answer, replayed=True)
    assert isinstance(result, AcceptResponse)
    return Outcome(result, replayed=False)


def _run(*, request: dict[str, Any], work: Callable[[], AcceptResponse]) -> AcceptResponse:
    # `request` is what Powertools hashes (key and payload); `work` is the accept itself.
    return work()


@lru_cache(maxsize=4)
def _once(table: str, client: DynamoDBClient) -> Callable[..., Any]:
    """The idempotent `_run` on this table through this client (a new client, e.g. in tests, gets a new layer)."""
    layer = DynamoDBPersistenceLayer(table_name=table, boto3_client=client)
    wrapped: Callable[..., Any] = idempotent_function(
        _run,
        data_keyword_argument="request",
        persistence_store=layer,
        config=config,
        output_serializer=AnswerSerializer(),
        key_prefix=KEY_PREFIX,
    )
    return wrapped


def forget_layers() -> None:
    """Drop the persistence layers (and the clients they hold): SnapStart's restore hook (aws/snapstart.py)."""
    _once.cache_clear()


class AnswerSerializer(BaseIdempotencySerializer):
    """AcceptResponse <-> the dict Powertools stores as JSON: plain when small, else zlib + base64."""

    def to_dict(self, data: Any) -> dict[str, Any]:
        assert isinstance(data, AcceptResponse)
        plain: dict[str, Any] = data.model_dump(mode="json")
        text = json.dumps(plain, separators=(",", ":"))
        if len(text) <= _PLAIN_LIMIT:
            return plain
        packed = _pack(text)
        if len(packed) > _STORED_LIMIT:
            packed = _pack(data.model_copy(update={"errors": data.errors[:MAX_REPLAYED_ERRORS]}).model_dump_json())
        return {"zlib": packed}

    def from_dict(self, data: dict[str, Any]) -> AcceptResponse:
        if set(data) == {"zlib"}:
            return AcceptResponse.model_validate_json(zlib.decompress(base64.b64decode(data["zlib"])))
        return AcceptResponse.model_validate(data)


def _pack(text: str) -> str:
    return base64.b64encode(zlib.compress(text.encode(), 6)).decode("ascii")
