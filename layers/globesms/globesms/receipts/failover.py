"""Receipt-driven failover: a message whose receipt says UNDELIVERED for a route failure is sent once more through
the next provider of its route (pure; the store and the queues are ports).

When (`resend_for`): the receipt moves the message to UNDELIVERED, its carrier code is one another route can fix
(`RECEIPT_FAILOVER` in each provider's `errors` module: a route or operator failure yes; a number that does not
exist, an opted-out or blocking person no; a code not listed no), the message is an OTP — or a NOTIFY whose request
set `failover_on_undelivered` — its validity has not run out, it was never resent before, and its route has a next
provider that can carry its content.

How, at most once per recipient ever: the UNDELIVERED receipt and the resend are one conditional write
(`ReceiptStore.start_resend`): the message goes back to QUEUED on the next provider, with the receipt and a
`RECEIPT_FAILOVER_STEP` naming the first attempt in its history, only if it is still the version read and still on
the attempt the receipt is about; concurrent or duplicated receipts find it moved and change nothing. The pack that
resends it has an id of its own message (`resend_pack_id`), so however often it is queued (a provider pushing the
receipt again after a crash between the write and the queueing) the pack claim sends it once.

Afterwards only the second attempt's receipts move the status (`implied_status.current_attempt`); a late receipt
for the first attempt is found through the alias the write left (`message_for_earlier_attempt`), kept in the
history and changes nothing (`record_earlier_receipt`; a DELIVERED one is counted as a duplicate delivery).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from globesms.accept.queries import message_view
from globesms.dispatch.failover import content_for, encoding_as_rendered, next_provider, segments_as_rendered
from globesms.dispatch.validity import validity_start
from globesms.domain.clock import iso
from globesms.domain.history import (
    FIRST_SUBMITTED_STEP,
    RECEIPT_FAILOVER_STEP,
    HistoryStep,
    earlier_attempt,
    has_step,
)
from globesms.domain.status import Status
from globesms.models.outbound import DEFAULT_VALIDITY_SECONDS, MessageType, ProviderName
from globesms.models.packs import DispatchPack, PackContent, PackRecipient
from globesms.models.records import MessageRecord
from globesms.models.webhooks import WebhookDelivery, WebhookEvent
from globesms.ports import PackQueues, ReceiptStore, WebhookQueue
from globesms.providers.aliyun.errors import RECEIPT_FAILOVER as ALIYUN_CODES
from globesms.providers.huawei.errors import RECEIPT_FAILOVER as HUAWEI_CODES
from globesms.providers.tencent.errors import RECEIPT_FAILOVER as TENCENT_CODES
from globesms.receipts.history import with_receipts
from globesms.receipts.implied_status import EARLIER_ATTEMPT
from globesms.routing.templates import TemplateRegistry
from globesms.routing.templates import registry as template_registry

FAILOVER_CODES: Mapping[ProviderName, Mapping[str, bool]] = {
    ProviderName.ALIYUN: ALIYUN_CODES,
    ProviderName.TENCENT: TENCENT_CODES,
    ProviderName.HUAWEI: HUAWEI_CODES,
}
FAILOVER_EVENT = "message.failover"
logger = logging.getLogger(__name__)  # a child of the Powertools logger "globesms" (its handler masks numbers)
MAX_WRITE_ATTEMPTS = 8  # as receipts.apply: conflicting writes before giving up (the provider pushes again)


def another_route_fixes(provider: ProviderName, receipt: Mapping[str, Any]) -> bool:
    """Whether the receipt's carrier code is one another provider's route can fix. The most specific code the
    receipt carries decides: Tencent's `sub_error`, then the carrier's `error_code`, then the raw status."""
    table = FAILOVER_CODES[provider]
    for field in ("sub_error", "error_code", "raw_status"):
        code = receipt.get(field)
        if code and code in table:
            return table[code]
    return False


def resent_before(record: MessageRecord) -> bool:
    return has_step(record.events, RECEIPT_FAILOVER_STEP)


def within_validity(record: MessageRecord, now: datetime) -> bool:
    """A resend must still arrive within the validity the customer asked for (or the type's default): an OTP that
    reaches the handset after it expired is of no use. Counted from where dispatch counts it (`validity_start`: the
    accept time, or send_at for a scheduled message), so a resend queued here is never one dispatch drops as lapsed."""
    validity = record.validity_seconds or DEFAULT_VALIDITY_SECONDS[record.type]
    return validity_start(record, record.created_at).timestamp() + validity > now.timestamp()


def allows_resend(record: MessageRecord) -> bool:
    if record.type is MessageType.OTP:
        return True
    return record.type is MessageType.NOTIFY and bool(record.failover_on_undelivered)


def resend_for(
    before: MessageRecord,
    after: MessageRecord,
    receipt: Mapping[str, Any],
    now: datetime,
    templates: TemplateRegistry | None = None,
) -> MessageRecord | None:
    """The message as it is resent (QUEUED on the next provider, the first attempt in its history), when the
    receipt that made `before` into `after` calls for a resend; else None."""
    if after.status is not Status.UNDELIVERED or before.status is Status.UNDELIVERED or before.status.is_final:
        return None
    if not (allows_resend(before) and not resent_before(before) and within_validity(before, now)):
        return None
    if before.provider_message_id is None or not another_route_fixes(before.provider, receipt):
        return None
    target = next_provider(before, before.provider)
    if target is None:
        return None
    content = content_for(before.content(), target, template_registry() if templates is None else templates)
    if content is None:
        return None
    return after.model_copy(
        update={
            **dict(content),
            # Rendered again for the new provider: its parts (what the resend is priced by) and alphabet may differ.
            "segments": segments_as_rendered(content, before.segments),
            "encoding": encoding_as_rendered(content, before.encoding),
            "provider": target,
            "status": Status.QUEUED,
            "provider_message_id": None,
            "events": [*(after.events or []), *first_attempt_steps(before, receipt, now)],
            "error_category": None,
            "error_code": None,
            "error_message": None,
            "receipt_due_at": None,
            "reconcile_tries": None,
            "query_failures": None,
        }
    )


def first_attempt_steps(before: MessageRecord, receipt: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The steps a resend adds to the history: when and where the first attempt was submitted (the resend's
    dispatcher writes its own `submitted_at` over that one, and the API's history shows its SUBMITTED from it), then
    the resend itself, naming the provider and provider message id it left."""
    steps = []
    if before.submitted_at is not None:
        steps.append(
            HistoryStep(FIRST_SUBMITTED_STEP, Status.SUBMITTED, None, before.submitted_at, provider=before.provider)
        )
    reason = str(receipt.get("sub_error") or receipt.get("error_code") or receipt.get("raw_status") or "")
    steps.append(
        HistoryStep(
            RECEIPT_FAILOVER_STEP,
            Status.QUEUED,
            reason,
            iso(now),
            provider=before.provider,
            provider_message_id=before.provider_message_id,
        )
    )
    return [step.to_item() for step in steps]


def resend_pending(record: MessageRecord) -> bool:
    """Resent but not sent yet: its pack must be (or may be again) on the next provider's queue."""
    return record.status is Status.QUEUED and resent_before(record)


def resend_pack_id(message_id: str) -> str:
    """One pack id per message: the pack claim sends it once however often it is queued."""
    return f"{message_id}.resend"


def is_resend_pack(pack: DispatchPack) -> bool:
    """The pack `resend_pack` made (not one a dispatcher derived from it: a retry, a failover)."""
    return len(pack.recipients) == 1 and pack.pack_id == resend_pack_id(pack.recipients[0].id)


def resend_pack(record: MessageRecord) -> DispatchPack:
    """The resend's pack. It carries what the dispatcher's write of the record must keep (the owner, the price and
    the cost accept reserved), as accept's packs do."""
    recipient = PackRecipient(
        id=record.id,
        to=record.to,
        c=0,
        country=record.country,
        segments=record.segments,
        encoding=record.encoding,
        history=record.events or None,
        price=record.price,
        cost=record.cost,
    )
    return DispatchPack(
        pack_id=resend_pack_id(record.id),
        batch_id=record.batch_id,
        provider=record.provider,
        created_at=record.created_at,
        expires_at=record.expires_at,
        owner=record.owner,
        currency=record.currency,
        contents=[PackContent(**dict(record.content()))],
        recipients=[recipient],
    )


def first_attempt_outcome(record: MessageRecord) -> MessageRecord | None:
    """A resent message as its first attempt ended (UNDELIVERED on the provider it left), for the route statistics:
    the resend takes the message out of the final statuses, but that provider did fail to deliver it."""
    step = next((e for e in record.events or () if e.get("id") == RECEIPT_FAILOVER_STEP), None)
    if step is None or not step.get("provider"):
        return None
    return record.model_copy(update={"provider": ProviderName(step["provider"]), "status": Status.UNDELIVERED})


def queue_resends(queues: PackQueues, records: Sequence[MessageRecord]) -> None:
    """Queue the resend packs, by provider; raises when a queue refuses (the receipt push is then answered with an
    error, the provider pushes it again, and the duplicate queues the pack again)."""
    by_provider: dict[ProviderName, list[DispatchPack]] = {}
    for record in records:
        by_provider.setdefault(record.provider, []).append(resend_pack(record))
    for provider, packs in by_provider.items():
        queues.send_packs(provider, packs)


def queue_pending_resends(
    queues: PackQueues, webhooks: WebhookQueue, records: Sequence[MessageRecord], now: datetime
) -> None:
    """A dispatcher's share: receipts held until its SUBMITTED write may resend a message at once. Queued before the
    pack's claim is finished; a queue that refuses is logged (the records are written and the provider called:
    failing the pack now would not bring the resend back)."""
    pending = [r for r in records if resend_pending(r)]
    if not pending:
        return
    try:
        queue_resends(queues, pending)
    except Exception:
        logger.exception("resends after early UNDELIVERED receipts not queued", extra={"messages": len(pending)})
        return
    deliveries = [d for d in (failover_event(r, now) for r in pending) if d is not None]
    if deliveries:
        queue_status_events_of(webhooks, deliveries)


def queue_status_events_of(webhooks: WebhookQueue, deliveries: Sequence[WebhookDelivery]) -> None:
    try:
        webhooks.send_webhooks(deliveries)
    except Exception:  # as webhooks.events: the events are lost, the sends are not repeated
        logger.exception("failover events not queued", extra={"events": len(deliveries)})


def failover_event(record: MessageRecord, now: datetime) -> WebhookDelivery | None:
    """`message.failover`, between the first attempt's UNDELIVERED receipt and the second attempt's outcome; its id
    `<message id>.failover` is the same on every repeat."""
    if not record.status_callback:
        return None
    earlier = earlier_attempt(record.events)
    view = message_view(record, None).model_dump(mode="json")
    view["failover"] = {"from": earlier[0].value if earlier else None, "to": record.provider.value}
    return WebhookDelivery(
        url=record.status_callback,
        event=WebhookEvent(id=f"{record.id}.failover", type=FAILOVER_EVENT, message=view, created_at=iso(now)),
        owner=record.owner,  # as status_event: signed with the API key's own secret, which its receiver checks
    )


def record_earlier_receipt(
    store: ReceiptStore, record: MessageRecord, event: dict[str, Any], now: datetime
) -> tuple[bool, bool]:
    """Keeps a late receipt of the first attempt in the history, changing nothing else. Returns (new, delivered):
    whether it was new, and whether it says the first attempt was delivered after all (a duplicate delivery)."""
    for _ in range(MAX_WRITE_ATTEMPTS):
        known = {e.get("id") for e in record.events or ()} | set(record.receipt_ids or ())
        if event["id"] in known:
            return False, False
        updated = record.model_copy(
            update={
                # Bounded as every receipt write: a provider may keep pushing the first attempt's reports.
                **with_receipts(record, [{**event, EARLIER_ATTEMPT: True}]),
                "version": record.version + 1,
                "updated_at": iso(now),
            }
        )
        if store.save_delivery(updated, expected_version=record.version):
            return True, event.get("status") == Status.DELIVERED.value
        reloaded = store.reload(record.id)
        if reloaded is None:
            return False, False
        record = reloaded
    return False, False
