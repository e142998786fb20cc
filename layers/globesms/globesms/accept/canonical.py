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

from globesms.models.api import MessageSpec
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
    canonical = "\n".join(spec.model_dump_json() for spec in canonical_specs(specs, templates))
    return hashlib.sha256(canonical.encode()).hexdigest()


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
