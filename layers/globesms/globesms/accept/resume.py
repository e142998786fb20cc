"""Resuming an accept that stopped half way, its batch header still ACCEPTING (accept's order: `service.py`).

An attempt writes every record before it queues any pack, and its header counts the records it is writing. So the
next attempt of the same body (an SQS redelivery, an API retry once the key's in-progress record has expired)
finds one of two things:
- **Every record written** (`accepted` of them): the attempt may have queued some packs or all of them, and
  dispatchers may have sent them. Nothing is planned again. Each stored record not handed on since goes back into
  the pack its `pack_key` names, so every pack id holds the recipients it held the first time: dispatch's claim
  skips the packs already sent, and the rest go out once. Planning again could route a recipient elsewhere (a route,
  score, opt-out or limit changed meanwhile) and so put it into a second pack, or give a pack id it was in to
  others: texted twice, or never.
- **Fewer**: the attempt stopped while writing them, so it queued nothing. The request is planned again, but each
  stored record stands as written (provider, content, price and pack), even where the new plan would refuse it.
  Only the recipients not written yet are packed afresh, under pack ids no earlier attempt used
  (`<batch>~<resume number>`), so a pack id never names two sets of recipients. The spend reservation (one per
  batch: the count the stopped attempt reserved) goes to the written records first.

A retry may never come: an API request without an Idempotency-Key has a batch id of its own, which no later
request names, and a client or an operator may give up. So each header says from when no retry can resume it any
more (`settle_after`): the attempt's deadline, plus how long a retry can still come (none
for a keyless API request; the key's window, 24 h, for a keyed one; the dead-letter queue's retention, 14 days,
for an intake body, which `make redrive` can send again until then). The reconcile run ends a batch still
ACCEPTING past it INTERRUPTED (reconcile/interrupted.py): its recipients not handed to a provider CANCELED, so
every message ends in a final status. A retry after that is answered the batch as it stands and sends nobody.

An attempt is resumed only once it has certainly stopped: its header says until when it may run (`accepting_until`,
its invocation's deadline). Until then another accept of the batch is told to come back later (`BatchInProgress`),
as is one that finds a header it did not see when it first looked (two accepts of one batch at once). Every resume
first takes the header over, numbered (`resumes`) and conditionally, so of two resumes at once, or one that read the
header before another took it over, only one goes on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from globesms.accept.idempotency_outcomes import WINDOW_SECONDS, KeyInProgress
from globesms.accept.packing import pack_again, recipients_per_pack
from globesms.domain.status import Status
from globesms.errors import RecipientCode
from globesms.models.errors import RecipientError
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.packs import DispatchPack
from globesms.models.records import BatchRecord, MessageRecord, message_seq
from globesms.ports import ReleaseRef
from globesms.scheduling.hold import HeldGroup

UNSENT = (Status.ACCEPTED, Status.SCHEDULED)  # never handed on: no pack of theirs was claimed


class BatchInProgress(KeyInProgress):
    """Another accept of this batch may still be running: nothing was written; retry once it has stopped."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"batch {batch_id} is still being accepted; retry in a few seconds")
        self.batch_id = batch_id


#: How long after its attempt's deadline a retry can still resume a batch, by how the batch came (`settle_after`).
KEYLESS_RETRY_WINDOW: Final = timedelta(0)  # nothing names its batch id again
KEYED_RETRY_WINDOW: Final = timedelta(seconds=WINDOW_SECONDS)  # the Idempotency-Key's window
#: An intake body can be sent again (make redrive) while the dead-letter queue keeps it: template.yaml's
#: IntakeDeadLetterQueue MessageRetentionPeriod (a test holds the two equal).
INTAKE_RETRY_WINDOW: Final = timedelta(days=14)
#: An attempt given no deadline (a caller without a Lambda context) is presumed stopped after Lambda's longest
#: timeout, 15 minutes.
UNLEASED_RUN: Final = timedelta(minutes=15)
#: Beyond the window, for the hosts' clocks and a reconcile run that reads the index a moment early.
SETTLE_MARGIN: Final = timedelta(minutes=1)


def settle_after(*, source: str, new_batch_id: bool, lease: int | None, now: datetime) -> int:
    """From when (epoch seconds) no retry can resume the batch this attempt writes: its lease (the deadline, as
    `accepting_until`) or, without one, `UNLEASED_RUN` from now, plus the retry window of how it came."""
    if source == "sqs":
        window = INTAKE_RETRY_WINDOW
    elif new_batch_id:
        window = KEYLESS_RETRY_WINDOW
    else:
        window = KEYED_RETRY_WINDOW
    stopped = lease if lease is not None else math.ceil((now + UNLEASED_RUN).timestamp())
    return stopped + math.ceil((window + SETTLE_MARGIN).total_seconds())


def all_written(header: BatchRecord, stored: Sequence[MessageRecord]) -> bool:
    """Whether the attempt that wrote `header` wrote all of its records (and so may have queued packs)."""
    return len(stored) >= header.accepted


def fresh_prefix(batch_id: str, resumes: int) -> str:
    """The pack id prefix of the recipients resume number `resumes` packs afresh: never one an earlier attempt used
    (the first used the batch id, and each resume takes its number over the header, conditionally)."""
    return f"{batch_id}~{resumes}"


def with_stored(
    records: Sequence[MessageRecord], errors: Sequence[RecipientError], stored: Sequence[MessageRecord]
) -> tuple[list[MessageRecord], list[RecipientError]]:
    """A new plan's records and refusals with the stored records standing in for (or added beside) the planned
    ones of their ids, copied (packing sets a record's pack_key), in index order; no refusal for a stored id.
    An OTP planned for a number a stored OTP record already texts is refused as the plan refuses a repeat
    (`DUPLICATE_RECIPIENT`): the plan sees its own records only, and one planned otherwise than the stopped attempt
    (a route that now takes the first of two, refused for its route then) sent the number two codes (a review)."""
    by_id = {r.id: r for r in stored}
    indexes = {message_seq(r.id) for r in stored}
    texted = {r.to for r in stored if r.type == MessageType.OTP}
    repeats = [r for r in records if r.id not in by_id and r.type == MessageType.OTP and r.to in texted]
    left_out = {r.id for r in repeats}
    merged = [*(r.model_copy() for r in stored), *(r for r in records if r.id not in by_id and r.id not in left_out)]
    refused = [e for e in errors if e.index not in indexes] + [
        RecipientError(
            index=message_seq(r.id),
            to=r.to,
            code=RecipientCode.DUPLICATE_RECIPIENT,
            message="an OTP to this number is already in this request",
        )
        for r in repeats
    ]
    return sorted(merged, key=lambda r: message_seq(r.id)), sorted(refused, key=lambda e: e.index)


def packs_as_stored(
    records: Sequence[MessageRecord], *, batch: BatchRecord
) -> tuple[dict[ProviderName, list[DispatchPack]], list[HeldGroup]]:
    """Each record (all with a pack_key) still `in_its_pack` back in the pack its pack_key names: the packs to queue
    now, by provider, and the held ones, by send_at."""
    by_key: dict[str, list[MessageRecord]] = {}
    for record in records:
        assert record.pack_key is not None
        by_key.setdefault(record.pack_key, []).append(record)
    now: dict[ProviderName, list[DispatchPack]] = {}
    held: dict[str, list[DispatchPack]] = {}
    for key, group in by_key.items():
        unsent = [r for r in group if in_its_pack(r)]
        if not unsent:
            continue
        provider = ProviderName(key.rsplit(":", 2)[-2])  # `:aliyun:3`, `@<send time>:aliyun:0`, `~1:aliyun:0`
        pack = pack_again(
            unsent,
            pack_id=batch.batch_id + key,
            provider=provider,
            batch_id=batch.batch_id,
            created_at=batch.created_at,
            expires_at=batch.expires_at,
            currency=_currency(records, group[0], provider),
        )
        send_at = group[0].send_at
        if send_at is None:
            now.setdefault(provider, []).append(pack)
        else:
            held.setdefault(send_at, []).append(pack)
    return now, [HeldGroup(ReleaseRef(batch.batch_id, at), tuple(packs)) for at, packs in sorted(held.items())]


def in_its_pack(record: MessageRecord) -> bool:
    """Whether a stored record still goes in the pack accept put it in: never handed on (ACCEPTED, SCHEDULED), or
    claimed by a release of its held pack (QUEUED, the claim keeps its pack_key), which may yet send that pack again
    (a release that died half way re-reads it). Not a record sent or failed over (dispatch rewrites it whole, without
    its pack_key), nor one canceled: its pack was claimed and sends nothing again, unless the claim has expired since
    (after 14 days), when the pack sends only those never handed on."""
    if record.status in UNSENT:
        return True
    return record.status is Status.QUEUED and record.pack_key is not None and "@" in record.pack_key


def _currency(records: Sequence[MessageRecord], member: MessageRecord, provider: ProviderName) -> str | None:
    """A pack's currency as `pack_records` gave it: that of any priced record packed with `member`'s kind (same
    provider and pack size, same send_at)."""
    kind = (provider, recipients_per_pack(member), member.send_at)
    return next(
        (r.currency for r in records if r.currency and (r.provider, recipients_per_pack(r), r.send_at) == kind), None
    )


def joined(
    first: tuple[dict[ProviderName, list[DispatchPack]], list[HeldGroup]],
    second: tuple[dict[ProviderName, list[DispatchPack]], list[HeldGroup]],
) -> tuple[dict[ProviderName, list[DispatchPack]], list[HeldGroup]]:
    """Two sets of packs as one: providers' packs in turn, held packs of one send_at in one group."""
    now: dict[ProviderName, list[DispatchPack]] = {}
    held: dict[ReleaseRef, list[DispatchPack]] = {}
    for packs, groups in (first, second):
        for provider, provider_packs in packs.items():
            now.setdefault(provider, []).extend(provider_packs)
        for group in groups:
            held.setdefault(group.ref, []).extend(group.packs)
    return now, [HeldGroup(ref, tuple(packs)) for ref, packs in sorted(held.items(), key=lambda i: i[0].send_at)]
