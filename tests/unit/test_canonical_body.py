"""One form of a send body for both its batch id and its idempotency key's payload check (`accept.canonical`): the
two agree on which bodies are the same request, whatever order a template's params are written in."""

import hashlib
import itertools
import json
from typing import Any

import pytest

from globesms.accept.canonical import body_digests, body_hash, idempotency_payload, keyed_batch
from globesms.domain.ids import keyed_batch_id
from globesms.models.api import MessageSpec
from globesms.models.records import BatchRecord
from tests.fakes import MemoryStore

PARAMS = {"code": "111", "minutes": "5", "name": "Ann"}


def spec(template_id: str, order: tuple[str, ...]) -> MessageSpec:
    params = {name: PARAMS[name] for name in order}
    return MessageSpec.model_validate({"to": "+85251234567", "template": {"id": template_id, "params": params}})


def payload_digest(specs: list[MessageSpec]) -> str:
    """As Powertools hashes a payload: JSON with its keys sorted."""
    return hashlib.sha256(json.dumps(idempotency_payload(specs), sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("template_id", ["example-otp", "1234567"])  # registered; a provider's own (Tencent)
def test_the_key_check_and_the_batch_id_agree_on_every_order_of_the_params(template_id: str) -> None:
    bodies = [[spec(template_id, order)] for order in itertools.permutations(PARAMS)]
    for one, other in itertools.combinations(bodies, 2):
        same_batch = body_hash(one) == body_hash(other)
        assert same_batch == (payload_digest(one) == payload_digest(other))
        # A registered template takes its params by name; a provider's own gets them in the order written.
        assert same_batch is (template_id == "example-otp")


def test_a_body_whose_params_order_does_not_vary_hashes_as_it_did() -> None:
    """Batch ids already given (a keyed request's, a header's body hash) stay the same across the deploy."""
    bodies: list[Any] = [
        [MessageSpec.model_validate({"to": ["+85251234567"], "text": "hi", "client_ref": "r-1"})],
        [spec("1234567", ("minutes", "code"))],  # a provider's own: as written
        [spec("example-otp", ("code", "minutes"))],  # registered, already in name order
    ]
    for body in bodies:
        before = hashlib.sha256("\n".join(s.model_dump_json() for s in body).encode()).hexdigest()
        assert body_hash(body) == before
    assert idempotency_payload(bodies[0]) == [bodies[0][0].model_dump(mode="json")]


def test_a_keyed_body_in_flight_at_a_deploy_names_the_batch_its_attempt_wrote() -> None:
    """A registered template's params not in name order hashed as written before the canonical form: an attempt of
    that version that died after queueing its packs, retried after the deploy, resumes its batch (under the batch id
    it wrote), rather than being accepted as a new batch and every recipient texted twice."""
    body = [spec("example-otp", ("minutes", "code"))]
    written = hashlib.sha256("\n".join(s.model_dump_json() for s in body).encode()).hexdigest()
    assert body_digests(body) == (body_hash(body), written)  # the header it wrote is this body's
    store = MemoryStore()
    fresh = keyed_batch_id("api:k", "order-42", body_hash(body))
    assert keyed_batch("api:k", "order-42", body, store) == fresh
    before = keyed_batch_id("api:k", "order-42", written)
    store.batches[before] = BatchRecord(
        batch_id=before, state="ACCEPTING", source="api", created_at="2026-12-07T00:00:00Z", accepted=1
    )
    assert keyed_batch("api:k", "order-42", body, store) == before
    assert body_digests([spec("example-otp", ("code", "minutes"))]) == (body_hash(body),)  # one form: one read less
