"""What a send request is, as compared: the one form both its batch id (`body_hash`) and its idempotency key's
payload check (`idempotency_payload`) are made from, so the two always agree on whether two bodies are the same.

Bodies are compared as parsed: spacing, the order of the fields and fields written out with their default value
make no difference. The one order that can matter is that of a template's params. A registered template's params
are named in each provider's own order (`routing.templates.render`), so theirs does not: they are put in name
order. A provider's own template id (Tencent, Huawei: not in the registry) gets its params' values in the order
given, so two bodies listing them in another order send other messages: that order is kept. Which a template is,
is the registry's say when the body is compared: params not in name order change form when their template id is
registered or removed between an attempt and its retry, which is then another body (another batch id; with the
same key, a 409), even written the same way. Params in name order have one form either way.

Two writings of that one form: `body_hash` hashes each spec's JSON as pydantic writes it (dict order kept), as it
always did, so a body without reordered params names the batch it named before; Powertools hashes the payload with
its keys sorted, so there params whose order counts, and is not name order, are written as a list of pairs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from globesms.domain.ids import keyed_batch_id
from globesms.models.api import MessageSpec
from globesms.ports import MessageStore
from globesms.routing.templates import TemplateRegistry
from globesms.routing.templates import registry as template_registry


def canonical_specs(specs: Sequence[MessageSpec], templates: TemplateRegistry | None = None) -> list[MessageSpec]:
    """The specs with a registered template's params in name order (the registry in force unless `templates`)."""
    templates = template_registry() if templates is None else templates
    return [_canonical(spec, templates) for spec in specs]


def _canonical(spec: MessageSpec, templates: TemplateRegistry) -> MessageSpec:
    template = spec.template
    if template is None or templates.get(template.id) is None:
        return spec  # free text, or a provider's own template: its params' order is what is sent
    params = dict(sorted(template.params.items()))
    if list(params) == list(template.params):
        return spec
    return spec.model_copy(update={"template": template.model_copy(update={"params": params})})


def body_hash(specs: Sequence[MessageSpec], templates: TemplateRegistry | None = None) -> str:
    """The body's digest: a batch header's `body_hash`, and with an idempotency key its batch id's."""
    return _digest(canonical_specs(specs, templates))


def body_digests(specs: Sequence[MessageSpec], templates: TemplateRegistry | None = None) -> tuple[str, ...]:
    """`body_hash`, then, where it differs, the digest of the specs as written, which the version before this form
    gave every body: a batch an attempt of that version wrote (in flight at a deploy, then retried) is this body's
    under either, rather than another body's (BATCH_ID_CONFLICT) or, under a key, a batch id of its own (sent
    twice)."""
    digest, written = body_hash(specs, templates), _digest(specs)
    return (digest,) if written == digest else (digest, written)


def keyed_batch(scope: str, key: str, specs: Sequence[MessageSpec], store: MessageStore) -> str:
    """The batch id a keyed body names (`keyed_batch_id` of its digest); the one the version before this form named
    it by instead, where that differs and `store` has a batch of that id (one read, for such bodies only)."""
    ids = [keyed_batch_id(scope, key, digest) for digest in body_digests(specs)]
    return next((batch_id for batch_id in ids[1:] if store.get_batch(batch_id) is not None), ids[0])


def _digest(specs: Sequence[MessageSpec]) -> str:
    return hashlib.sha256("\n".join(spec.model_dump_json() for spec in specs).encode()).hexdigest()


def idempotency_payload(specs: Sequence[MessageSpec], templates: TemplateRegistry | None = None) -> list[Any]:
    """The specs as an idempotency key's payload (JSON, which Powertools hashes with its keys sorted)."""
    payload: list[Any] = []
    for spec in canonical_specs(specs, templates):
        data = spec.model_dump(mode="json")
        params = data["template"]["params"] if spec.template is not None else {}
        if list(params) != sorted(params):  # an order that counts (a provider's own template) and sorting would lose
            data["template"]["params"] = [[name, value] for name, value in params.items()]
        payload.append(data)
    return payload
