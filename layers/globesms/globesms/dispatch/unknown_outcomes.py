"""What becomes of a message whose outcome stayed unknown: the request may have reached the provider (a read
timeout, a dispatcher that died after the call), so it is SENDING until its receipt says what happened.

When a dispatcher records such messages it also queues a *settle pack* for them, delayed by the window
(`GLOBESMS_UNKNOWN_OUTCOME_WINDOW_SECONDS`, default 900 s, the longest SQS delay; a longer window is waited for in
hops of 900 s). When it comes back, each of its messages that is still SENDING through the same provider (no
receipt came) is settled by the policy (`GLOBESMS_UNKNOWN_OUTCOME_POLICY`):
- `fail` (the default): FAILED with category `unknown_outcome` and code `UNKNOWN_OUTCOME_EXPIRED`. Nothing is sent
  twice; the customer hears a final status and may send again knowingly. A receipt that comes later is still
  kept in the message's history, but does not change its final status.
- `resend`: sent once more through the same provider (new packs within the packing budget, `resend_packs`, its
  history saying why); if that outcome is unknown again, the message fails as above. This may text somebody
  twice — for traffic where a missing message is worse than a repeated one.
Messages that a receipt moved on in the meantime are left alone, and every write is conditional on the version the
settling dispatcher read, so a receipt that arrives at the same moment wins. The resend pack reads its messages
again before it is sent (`settled_resends`): one a receipt settled while it waited on the queue is not sent, and
its records are written only where the message is still SENDING (`records.save_outcomes`): one a receipt settled
during the resend's call keeps what the receipt said.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from globesms.domain.clock import iso
from globesms.domain.history import RESEND_AFTER_UNKNOWN_OUTCOME_STEP, HistoryStep, has_step
from globesms.domain.provider_limits import PACK_BYTES_BUDGET
from globesms.domain.status import Status
from globesms.errors import DispatchCode, ErrorCategory
from globesms.models.packs import DispatchPack, PackRecipient
from globesms.models.records import MessageRecord
from globesms.ports import MessageStore, PackQueues, ReceiptStore, WebhookQueue
from globesms.webhooks.events import queue_status_events

EXPIRED_CODE = DispatchCode.UNKNOWN_OUTCOME_EXPIRED
#: SQS's longest DelaySeconds.
MAX_DELAY_SECONDS = 900
EXPIRED_STEP = "unknown-outcome-expired"
_SAVE_TRIES = 3
#: A resend pack's id (`resend_packs`: `<settle pack id>.s`, `.s2`..., the settle pack's `<id>.u`), or one derived
#: from it (batch ids hold no dots).
_RESEND_PACK = re.compile(r"\.u\.s[0-9]*(\.|$)")


class UnknownOutcomeAction(StrEnum):
    FAIL = "fail"
    RESEND = "resend"


@dataclass(frozen=True, slots=True)
class UnknownOutcomePolicy:
    window_seconds: int = MAX_DELAY_SECONDS
    action: UnknownOutcomeAction = UnknownOutcomeAction.FAIL


@dataclass(frozen=True, slots=True)
class Settled:
    failed: list[MessageRecord]
    resent: int
    left: int  # already moved on by a receipt (or never recorded SENDING here)
    webhooks_not_queued: int = 0


def settle_pack(pack: DispatchPack, positions: Sequence[int], *, now: datetime, window_seconds: int) -> DispatchPack:
    """The recipients at `positions` (SENDING) as a pack to settle after the window. Its id is fixed by the pack's,
    so a dispatcher that queues it again after a crash queues the same one (claimed once)."""
    return pack.model_copy(
        update={
            "pack_id": f"{pack.pack_id}.u",
            "purpose": "settle",
            "settle_after": int(now.timestamp()) + window_seconds,
            "recipients": [pack.recipients[i] for i in positions],
        }
    )


def queue_settle_pack(
    queues: PackQueues, pack: DispatchPack, positions: Sequence[int], *, now: datetime, policy: UnknownOutcomePolicy
) -> None:
    if positions:
        settle = settle_pack(pack, positions, now=now, window_seconds=policy.window_seconds)
        queues.send_packs(pack.provider, [settle], delay_seconds=min(MAX_DELAY_SECONDS, policy.window_seconds))


def wait_left(pack: DispatchPack, now: datetime) -> int:
    """Seconds until a settle pack may act (0: now)."""
    return max(0, (pack.settle_after or 0) - int(now.timestamp()))


def settle(
    pack: DispatchPack,
    *,
    store: MessageStore,
    receipts: ReceiptStore,
    queues: PackQueues,
    webhooks: WebhookQueue,
    now: datetime,
    policy: UnknownOutcomePolicy,
) -> Settled:
    current = store.get_messages([r.id for r in pack.recipients])
    waiting = [
        r
        for r in pack.recipients
        if (record := current.get(r.id)) is not None
        and record.status is Status.SENDING
        and record.provider is pack.provider
    ]
    resend = [
        r
        for r in waiting
        if policy.action is UnknownOutcomeAction.RESEND and not has_step(r.history, RESEND_AFTER_UNKNOWN_OUTCOME_STEP)
    ]
    to_fail = [current[r.id] for r in waiting if r not in resend]
    if resend:
        queues.send_packs(pack.provider, resend_packs(pack, {r.id for r in resend}, now=now))
    failed = [done for record in to_fail if (done := _expire(receipts, record, now, policy)) is not None]
    # With those an earlier attempt of this settle pack expired: it may have stopped before it queued their events
    # (it queues them after its writes). Their ids are stable, so a receiver drops what it had already.
    expired_before = [
        record
        for r in pack.recipients
        if (record := current.get(r.id)) is not None
        and record.status is Status.FAILED
        and record.error_code == EXPIRED_CODE
        and record.provider is pack.provider
    ]
    not_queued = queue_status_events(webhooks, [*expired_before, *failed], now)
    return Settled(
        failed=failed, resent=len(resend), left=len(pack.recipients) - len(waiting), webhooks_not_queued=not_queued
    )


def resend_packs(pack: DispatchPack, resent: Collection[str], *, now: datetime) -> list[DispatchPack]:
    """The settle pack's recipients whose ids are `resent`, each with the resend step in its history, as packs of at
    most PACK_BYTES_BUDGET bytes: `<settle pack id>.s`, then `.s2`, `.s3`... (the step, ~150 bytes a recipient, took
    a full pack of 1,000 past SQS's 256 KiB: SQS refused it at every receive and none was ever settled). The split is
    of all the settle pack's recipients, as if every one were resent: a repeat of the settle, after a receipt
    settled some meanwhile, queues each pack id again with the same recipients or fewer, never others."""
    # No provider named: the split is measured with the step, and a settle repeated across a deploy must split the
    # same (the API's history takes it as the SENDING step's before it: accept/queries.py).
    step = HistoryStep(RESEND_AFTER_UNKNOWN_OUTCOME_STEP, Status.SENDING, EXPIRED_CODE, iso(now)).to_item()
    stepped = [r.model_copy(update={"history": [*(r.history or []), step]}) for r in pack.recipients]
    packs: list[DispatchPack] = []
    for n, group in enumerate(_within_budget(pack, stepped)):
        chosen = [r for r in group if r.id in resent]
        if chosen:
            packs.append(_resend_pack(pack, n, chosen))
    return packs


def _resend_pack(pack: DispatchPack, n: int, recipients: list[PackRecipient]) -> DispatchPack:
    suffix = "" if n == 0 else str(n + 1)  # the first keeps the id a resend had before it was split
    update = {"pack_id": f"{pack.pack_id}.s{suffix}", "purpose": "send", "settle_after": None, "recipients": recipients}
    return pack.model_copy(update=update)


def _within_budget(pack: DispatchPack, recipients: list[PackRecipient]) -> list[list[PackRecipient]]:
    """`recipients`, in order, in groups whose resend pack's JSON (as a queue carries it) fits PACK_BYTES_BUDGET."""
    empty = len(_resend_pack(pack, len(recipients), []).model_dump_json(exclude_none=True).encode())
    groups: list[list[PackRecipient]] = [[]]
    size = empty
    for recipient in recipients:
        extra = len(recipient.model_dump_json(exclude_none=True).encode()) + 1  # and its comma
        if groups[-1] and size + extra > PACK_BYTES_BUDGET:
            groups.append([])
            size = empty
        groups[-1].append(recipient)
        size += extra
    return groups


def settled_resends(pack: DispatchPack, store: MessageStore) -> set[int]:
    """The positions of a resend pack's recipients (`<id>.u.s`, `<id>.u.s2`..., or a pack it was deferred, retried or
    failed over into) whose record left SENDING since `settle` queued it: a receipt settled the first send meanwhile
    (or an early UNDELIVERED one moved it to the next provider). They are neither sent again (that would text the
    person twice) nor recorded (a receipt's status is never overwritten). One read, for a resend pack only: a receipt
    failover's own pack (`<message id>.resend`) carries the resend step too, but its record is QUEUED by design."""
    resends = _resend_positions(pack)
    return settled_among(pack, store.get_messages([pack.recipients[i].id for i in resends]) if resends else {})


def settled_among(pack: DispatchPack, current: Mapping[str, MessageRecord]) -> set[int]:
    """`settled_resends`, from records the caller has read already (its message ids include the pack's)."""
    return {
        i
        for i in _resend_positions(pack)
        if (record := current.get(pack.recipients[i].id)) is not None and record.status is not Status.SENDING
    }


def resend_ids(pack: DispatchPack) -> set[str]:
    """The ids of a resend pack's recipients sent again after an unknown outcome (their records are SENDING until
    this pack's are written: `records.save_outcomes` writes them only if still so)."""
    return {pack.recipients[i].id for i in _resend_positions(pack)}


def _resend_positions(pack: DispatchPack) -> list[int]:
    if not _RESEND_PACK.search(pack.pack_id):
        return []
    return [i for i, r in enumerate(pack.recipients) if has_step(r.history, RESEND_AFTER_UNKNOWN_OUTCOME_STEP)]


def _expire(
    receipts: ReceiptStore, record: MessageRecord, now: datetime, policy: UnknownOutcomePolicy
) -> MessageRecord | None:
    """FAILED, unless a receipt gets there first (versioned write; re-read and try again on a conflict)."""
    stamp = iso(now)
    for _ in range(_SAVE_TRIES):
        step = HistoryStep(EXPIRED_STEP, Status.FAILED, EXPIRED_CODE, stamp).to_item()
        failed = record.model_copy(
            update={
                "status": Status.FAILED,
                "error_category": str(ErrorCategory.UNKNOWN_OUTCOME),
                "error_code": EXPIRED_CODE,
                "error_message": f"no receipt within {policy.window_seconds} s of an unknown outcome; "
                f"not sent again (policy {policy.action})",
                "events": [*(record.events or []), step],
                "version": record.version + 1,
                "updated_at": stamp,
            }
        )
        if receipts.save_delivery(failed, expected_version=record.version):
            return failed
        reloaded = receipts.reload(record.id)
        if reloaded is None or reloaded.status is not Status.SENDING:
            return None
        record = reloaded
    return None
