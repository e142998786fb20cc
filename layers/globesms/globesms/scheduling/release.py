"""Releasing a held group at its send_at: claim each recipient, then hand its pack to the provider queue.

The claim is a conditional write on each record (SCHEDULED -> QUEUED, `ScheduleStore.claim_for_release`); a cancel
is the same kind of write (SCHEDULED -> CANCELED). Whichever comes first wins, so a recipient is never both sent and
reported canceled. A pack is sent only after all its recipients are claimed, without those a cancel took: a release
that dies half way and runs again finds its earlier claims (QUEUED) and sends the same pack under the same id, which
dispatch skips if it was sent already.

A pack any of whose recipients is past QUEUED (other than CANCELED) is not sent again: some release queued it
already, and a dispatcher has handed it on (sent it, or recorded it FAILED and dead-lettered it: its claim is then
DEAD, which dispatch would take as an operator's redrive and text recipients told FAILED). Its recipients still
QUEUED are that dispatch's to finish (put back under a new pack id, redelivered by SQS, or redriven from the
provider's dead-letter queue by an operator). Records reach SCHEDULED only at accept, so every recipient of such a
pack was claimed (QUEUED) before it was first queued: skipping it claims nobody now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import ConfigDict, Field

from globesms.domain.status import Status
from globesms.models.base import Model
from globesms.models.packs import DispatchPack, PackRecipient
from globesms.ports import PackQueues, ReleaseQueue, ReleaseRef, ScheduleStore
from globesms.scheduling.timing import parse_iso, release_delay


class ReleaseMessage(Model):
    """The body of a release queue message (`aws.sqs_releases.release_body`)."""

    model_config = ConfigDict(extra="forbid")

    batch_id: str = Field(min_length=1, max_length=64)
    send_at: str = Field(min_length=1, max_length=40)

    def ref(self) -> ReleaseRef:
        return ReleaseRef(self.batch_id, self.send_at)


@dataclass(frozen=True, slots=True)
class ReleaseSummary:
    packs: int = 0
    released: int = 0
    not_released: int = 0  # canceled first (or without a record)
    handed_on: int = 0  # recipients of packs a dispatcher has had already (sent, failed, dead-lettered): not sent again
    requeued: bool = False  # reached before its send_at: queued again


def release(
    ref: ReleaseRef, store: ScheduleStore, queues: PackQueues, releases: ReleaseQueue, *, now: datetime
) -> ReleaseSummary:
    """Release the group, or, reached before its send_at (a clock a second apart), queue it again for then."""
    early = release_delay(parse_iso(ref.send_at), now)
    if early > 0:
        releases.send_releases([ref], delay_seconds=early)
        return ReleaseSummary(requeued=True)
    packs = released = not_released = handed_on = 0
    for pack in store.held_packs(ref):
        statuses = store.claim_for_release([r.id for r in pack.recipients], now=now)
        if any(status not in _NOT_HANDED_ON for status in statuses.values()):
            handed_on += len(pack.recipients)
            continue
        # Claimed (QUEUED: now, or by an earlier release that died before queueing the pack or whose queued pack no
        # dispatcher has finished); CANCELED: a cancel came first.
        going = [r for r in pack.recipients if statuses.get(r.id) == Status.QUEUED]
        not_released += len(pack.recipients) - len(going)
        if not going:
            continue
        queues.send_packs(pack.provider, [_without_canceled(pack, going)])
        packs += 1
        released += len(going)
    return ReleaseSummary(packs=packs, released=released, not_released=not_released, handed_on=handed_on)


#: The statuses a held pack's recipients have until a dispatcher handles the pack.
_NOT_HANDED_ON = frozenset({Status.QUEUED, Status.CANCELED})


def _without_canceled(pack: DispatchPack, going: list[PackRecipient]) -> DispatchPack:
    if len(going) == len(pack.recipients):
        return pack
    return pack.model_copy(update={"recipients": going})
