"""Moving recipients a provider did not take to the next provider of their route (pure).

Which recipients (`dispatch` decides): those a provider refused for its own configuration (category `config`: a
sender id or template not approved there, a suspended account, a wrong key), and — when the provider is down (its
circuit breaker is open, or transient errors outlasted the pack's attempts) — those it never accepted. Never one
the provider may have accepted (SUBMITTED, or an unknown outcome): moving that one could text somebody twice.

Where to: the provider after the current one in the recipient's `route`, worked out at accept (the providers that
can carry this message to this number, in the route table's order). Free text moves as it is; a registered
template is rendered again for the new provider from its params (a rendered Alibaba text keeps them). A recipient
with no provider left, or whose template cannot be rendered for the next one, is not moved: it keeps its error.

What it costs: a moved recipient reached no provider before, so it is priced for the new one (with `prices`, the
price table; where that has no price for it, it keeps the estimate it carried), and the dispatcher charges the
difference once (`guardrails.charges.charged_moves`).

The new packs' ids derive from the old pack's (`<pack id>.f:<provider>:<n>`), and where a pack ends does not
depend on the reasons kept in the history (`REASON_BYTES`) nor on the prices (`PRICED_BYTES`), so a dispatcher that
repeats a failover after a crash queues the same packs again, without knowing the reasons, with the price table
changed meanwhile, and the claims send each once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from globesms.accept.packing import pack_records
from globesms.domain.clock import iso
from globesms.domain.history import HistoryStep
from globesms.domain.segments import Encoding, count_segments, text_encoding
from globesms.domain.status import Status
from globesms.guardrails.charges import Prices, repriced
from globesms.models.content import MessageContent
from globesms.models.outbound import ProviderName
from globesms.models.packs import DispatchPack
from globesms.models.records import MessageRecord, replacing_version
from globesms.routing.templates import ParamsProblem, Rendered, TemplateRegistry, render
from globesms.routing.templates import registry as template_registry

#: What a failover step's reason (an error code) may take in its pack, as JSON: every step is budgeted at this, so
#: the packs split the same whatever the reasons. A longer code is cut to fit (the longest in the providers' tables
#: has 63 characters).
REASON_BYTES = 96
#: What a moved recipient's price and cost may take in its pack (`accept.packing`, `priced_bytes`), budgeted whether
#: it has them or not: 16 characters each, with their keys and quotes. A price is at most 100 with 6 decimals
#: (`guardrails.prices.Price`), and a pack of at most 256 KiB holds no text of a million parts: a cost has at most
#: 8 digits before its point.
PRICED_BYTES = 2 * 16 + 20


def next_provider(content: MessageContent, current: ProviderName) -> ProviderName | None:
    route = content.route or ()
    if current not in route:
        return None
    position = route.index(current)
    return route[position + 1] if position + 1 < len(route) else None


def content_for(content: MessageContent, provider: ProviderName, templates: TemplateRegistry) -> MessageContent | None:
    """The content as `provider` takes it, or None when it cannot (template no longer registered for it, or its
    params no longer render)."""
    if content.template_ref is None:
        return content if content.template_id is None else None  # a provider's own template id moves nowhere
    versions = templates.get(content.template_ref)
    if versions is None or provider not in versions:
        return None
    rendered = render(versions[provider], content.template_params or {})
    if isinstance(rendered, ParamsProblem):
        return None
    return _with(content, rendered)


def _with(content: MessageContent, rendered: Rendered) -> MessageContent:
    return content.model_copy(
        update={"text": rendered.text, "template_id": rendered.template_id, "template_params": rendered.template_params}
    )


@dataclass
class Rerouted:
    packs: dict[ProviderName, list[DispatchPack]] = field(default_factory=dict)
    moved: list[int] = field(default_factory=list)  # positions in the old pack


def reroute(
    pack: DispatchPack,
    positions: Sequence[int],
    *,
    reasons: Mapping[int, str],
    now: datetime,
    templates: TemplateRegistry | None = None,
    prices: Prices | None = None,
) -> Rerouted:
    """Packs for the next provider of each recipient at `positions` that has one. `reasons`: the error code that
    made each one move, kept in its history. `prices`: what the new provider charges (None: each keeps the estimate
    it carried)."""
    templates = template_registry() if templates is None else templates
    stamp = iso(now)
    records: list[MessageRecord] = []
    history: dict[str, list[dict[str, Any]]] = {}
    budgeted: dict[str, int] = {}
    moved: list[int] = []
    for position in positions:
        recipient = pack.recipients[position]
        content = pack.contents[recipient.c]
        target = next_provider(content, pack.provider)
        moved_content = content_for(content, target, templates) if target is not None else None
        if target is None or moved_content is None:
            continue
        moved.append(position)
        reason = _within_allowance(reasons.get(position, "FAILOVER"))
        step = HistoryStep(f"failover-{pack.provider}", Status.QUEUED, reason, stamp, provider=pack.provider)
        history[recipient.id] = [*(recipient.history or []), step.to_item()]
        # The split may not depend on the reason: a takeover moves the noted positions again without them
        # (`recovery._queue_again`: "FAILOVER") under the same pack ids. Measured, a shorter reason fitted more
        # recipients into a pack: a recipient was in neither copy of an id (never sent) or in both (texted twice).
        budgeted[recipient.id] = len(json.dumps(history[recipient.id])) - len(json.dumps(reason)) + REASON_BYTES
        records.append(_moved_record(pack, position, moved_content, target, now, prices))
    packs = pack_records(
        records,
        batch_id=pack.batch_id,
        created_at=pack.created_at,
        expires_at=pack.expires_at,
        pack_id_prefix=f"{pack.pack_id}.f",
        history=history,
        history_bytes=budgeted,
        priced_bytes=PRICED_BYTES,
    )
    if pack.redrive_of is not None:  # a redrive's recipients, still FAILED from its dead-lettering (recovery.py)
        packs = {
            target: [p.model_copy(update={"redrive_of": pack.redrive_of}) for p in ps] for target, ps in packs.items()
        }
    return Rerouted(packs, moved)


def _moved_record(
    pack: DispatchPack,
    position: int,
    content: MessageContent,
    target: ProviderName,
    now: datetime,
    prices: Prices | None,
) -> MessageRecord:
    """The record of the recipient at `position`, QUEUED on `target` with `content` (as that provider takes it),
    priced for `target` where `prices` say what it charges there."""
    recipient = pack.recipients[position]
    segments = segments_as_rendered(content, recipient.segments)
    price, cost = repriced(prices, target, recipient.country, content.type, segments, pack.currency) or (
        recipient.price,
        recipient.cost,
    )
    return MessageRecord(
        **dict(content),
        id=recipient.id,
        batch_id=pack.batch_id,
        to=recipient.to,
        country=recipient.country,
        provider=target,
        status=Status.QUEUED,
        segments=segments,
        encoding=encoding_as_rendered(content, recipient.encoding),
        created_at=pack.created_at,
        updated_at=iso(now),
        expires_at=pack.expires_at,
        price=price,
        cost=cost,
        currency=pack.currency or (prices.currency if prices is not None and cost is not None else None),
        owner=pack.owner,
        version=replacing_version(now),  # written whole, as the dispatcher's outcomes are
    )


def _within_allowance(reason: str) -> str:
    """`reason`, cut until its JSON takes at most `REASON_BYTES` (measured as `pack_records` measures history)."""
    cut = reason[: REASON_BYTES - 2]
    while len(json.dumps(cut)) > REASON_BYTES:
        cut = cut[:-1]
    return cut


def segments_as_rendered(content: MessageContent, before: int | None) -> int | None:
    """The parts of `content` as the new provider takes it (`content_for`): a registered template rendered again
    may have other parts (a one-part Tencent template is Alibaba's text of several); free text keeps `before`."""
    if content.text is None:
        return None  # a provider template: the provider reports its parts
    return count_segments(content.text) if content.template_ref is not None else before


def encoding_as_rendered(content: MessageContent, before: Encoding | None) -> Encoding | None:
    # As `segments_as_rendered`: a template rendered again for the new provider may take the other alphabet.
    if content.text is None:
        return None
    return text_encoding(content.text) if content.template_ref is not None else before
