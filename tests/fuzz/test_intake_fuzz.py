"""SQS intake events of generated bodies, through the real handler against moto.

Whatever the bodies: the handler answers with a partial batch response (it never raises, so one bad body never
fails its neighbours); a failed record is a body refused as a whole, recorded as a REJECTED batch whose refusal
names the code and reason (fields and rules for a schema violation), with no record and no pack; every other body
left a complete batch; and the packs on the provider queues are valid packs covering exactly the accepted
recipients (no poisoned queue).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from hypothesis import event, given
from pydantic import TypeAdapter, ValidationError

from globesms.accept.bodies import BodyTooLarge, MalformedJson, read_json
from globesms.accept.canonical import body_hash
from globesms.accept.intake import IDEMPOTENCY_SCOPE
from globesms.domain.ids import keyed_batch_id
from globesms.models.api import BATCH_ID_PATTERN, SendBody, specs_of
from tests.fuzz.harness import FuzzStack, assert_accepts_consistent, assert_refusal_explained, fuzz_settings
from tests.fuzz.strategies import intake_bodies

EVENTS = Path(__file__).resolve().parents[2] / "events"
_TEMPLATE = json.loads((EVENTS / "intake_batch.json").read_text())["Records"][0]
_BATCH_ID = re.compile(BATCH_ID_PATTERN)
REFUSALS = {"MALFORMED_JSON", "VALIDATION_ERROR", "TOO_MANY_RECIPIENTS", "IDEMPOTENCY_KEY_REUSED", "BODY_TOO_LARGE"}


def sqs_event(bodies: list[str]) -> dict[str, Any]:
    records = []
    for index, body in enumerate(bodies, start=1):
        record = copy.deepcopy(_TEMPLATE)
        record.update(messageId=f"00000000-0000-0000-0000-{index:012d}", receiptHandle=f"handle-{index}", body=body)
        records.append(record)
    return {"Records": records}


def named(body: str) -> tuple[str | None, Any]:
    """The batch id a body names (when it is usable) and its idempotency key, as docs/api.md documents them. A body
    past the read limits (nesting, integer size, bytes: docs/security.md) names nothing: it is not read."""
    try:
        data = read_json(body)
    except (MalformedJson, BodyTooLarge):
        return None, None
    if not isinstance(data, dict):
        return None, None
    claimed = data.get("batch_id")
    return (claimed if isinstance(claimed, str) and _BATCH_ID.fullmatch(claimed) else None), data.get("idempotency_key")


def accepted_batch_id(body: str, message_id: str) -> str:
    """Where an accepted body's batch is, as docs/api.md documents it: the batch id it names; else, with an
    idempotency key, the id derived from the key and the body; else `sqs-<MessageId>`."""
    claimed, key = named(body)
    if claimed is not None:
        return claimed
    if isinstance(key, str):
        data = {k: v for k, v in json.loads(body).items() if k not in ("batch_id", "idempotency_key")}
        try:
            specs = specs_of(_SEND_BODY.validate_python(data))
        except ValidationError:
            return f"sqs-{message_id}"
        return keyed_batch_id(IDEMPOTENCY_SCOPE, key, body_hash(specs))
    return f"sqs-{message_id}"


_SEND_BODY: TypeAdapter[Any] = TypeAdapter(SendBody)


@fuzz_settings(60)
@given(bodies=intake_bodies())
def test_every_intake_body_is_accepted_whole_or_recorded_as_refused(  # type: ignore[no-untyped-def]
    fuzz_stack: FuzzStack, intake, lambda_context, bodies: list[str]
) -> None:
    fuzz_stack.clear()
    request = sqs_event(bodies)
    response = intake.lambda_handler(copy.deepcopy(request), lambda_context)
    failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
    assert set(response) == {"batchItemFailures"}
    assert failed <= {r["messageId"] for r in request["Records"]}

    seen = fuzz_stack.observe()
    assert_accepts_consistent(seen)
    assert all(h.source == "sqs" for h in seen.headers.values())
    earlier_batches: set[str] = set()
    earlier_keys: set[Any] = set()
    claims = [named(record["body"])[0] for record in request["Records"]]
    for position, record in enumerate(request["Records"]):
        claimed, key = named(record["body"])
        batch_id = claimed or f"sqs-{record['messageId']}"
        if record["messageId"] not in failed:
            batch_id = accepted_batch_id(record["body"], record["messageId"])
        header = seen.headers.get(batch_id)
        if record["messageId"] in failed:
            event(f"refused: {header.refusal.code}" if header and header.refusal else "refused: batch id taken")
            assert header is not None, f"a refused body left no trace under {batch_id}"
            if header.refusal is not None:
                assert_refusal_explained(header.refusal)
                assert header.refusal.code in REFUSALS and header.state == "REJECTED"
            else:
                # The batch id names another body of this event: one before, which the refusal did not overwrite,
                # or one after, a corrected body, which takes the batch id of a body refused whole.
                named_later = batch_id in claims[position + 1 :]
                assert batch_id in earlier_batches or named_later, f"{batch_id} refused, but recorded without a refusal"
        elif header is None:
            # Only a repeat of an idempotency key is accepted without a batch of its own (its first stands).
            event("accepted: replayed")
            assert key is not None and key in earlier_keys, f"an accepted body left no batch {batch_id}"
        else:
            event("accepted: " + ("some recipients" if header.accepted else "no recipient"))
            assert header.refusal is None, f"an accepted body's batch {batch_id} records a refusal"
        earlier_batches.add(batch_id)
        if isinstance(key, str):
            earlier_keys.add(key)
