"""Putting recipients back on a queue: which pack id they come back under, and after how long. (Named for what
it does rather than `pack_ids`: the ids are the means by which putting something back twice stays harmless.)

Every pack id derives from the id of the pack it came from, so a dispatcher that redoes its work after a crash
queues the very same packs again, and the claims send each of them once:

- `<batch>:<provider>:<n>`: a pack as accept wrote it (`accept.packing.pack_records`);
- `<id>.r<n>`: recipients with a transient error, on attempt n (`retry_pack`);
- `<id>.w<n>`: recipients that found no rate-limit permit, the n-th time in a row (`deferred_pack`);
- `<id>.q<n>`: MKT recipients their dispatcher reached inside their quiet hours, the n-th time in a row
  (`quiet_pack`, `quiet.py`);
- `<id>.f:<provider>:<n>`: recipients failed over to the next provider of their route (`failover.reroute`);
- `<id>.u`: unknown outcomes, to settle after the window (`unknown_outcomes.settle_pack`);
- `<id>.s`: unknown outcomes sent once more, under the policy `resend` (`unknown_outcomes.settle`).

Delays: a retry pack waits `retry_delay` (exponential backoff with full jitter); a deferred pack the delay the
rate limits worked out (`rate_limits.defer_delay`); a quiet pack until the first of its recipients may go (at most
15 minutes); a failover pack none.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from globesms.dispatch.failover import Rerouted
from globesms.models.packs import DispatchPack
from globesms.ports import PackClaims, PackQueues, Requeued

#: Retry packs carry their attempt number; the last one records transient failures as FAILED.
MAX_PACK_ATTEMPTS = 5

_DEFERRAL = re.compile(r"\.w([0-9]+)$")
_QUIET = re.compile(r"\.q([0-9]+)$")


def retry_pack(pack: DispatchPack, indexes: Sequence[int]) -> DispatchPack:
    """The recipients at `indexes` as a pack of their own, one attempt further on."""
    return pack.model_copy(
        update={
            "pack_id": f"{pack.pack_id}.r{pack.attempt + 1}",
            "attempt": pack.attempt + 1,
            "recipients": [pack.recipients[i] for i in indexes],
        }
    )


def deferred_pack(pack: DispatchPack, indexes: Sequence[int]) -> DispatchPack:
    """The recipients at `indexes`, which found no rate-limit permit, as a pack of their own: the same attempt
    (waiting for a permit is no failure) under a new id, `<pack id>.w<n>` for the n-th deferral in a row, so
    that a repeated delivery of the original, now finished, sends nothing and the new pack is claimed afresh."""
    return _counted(pack, indexes, _DEFERRAL, "w")


def quiet_pack(pack: DispatchPack, indexes: Sequence[int]) -> DispatchPack:
    """The recipients at `indexes`, inside their quiet hours, as a pack of their own (`<pack id>.q<n>`), as a
    deferred pack is: the same attempt, a new id."""
    return _counted(pack, indexes, _QUIET, "q")


def _counted(pack: DispatchPack, indexes: Sequence[int], pattern: re.Pattern[str], tag: str) -> DispatchPack:
    found = pattern.search(pack.pack_id)
    base, count = (pack.pack_id[: found.start()], int(found.group(1))) if found else (pack.pack_id, 0)
    return pack.model_copy(
        update={"pack_id": f"{base}.{tag}{count + 1}", "recipients": [pack.recipients[i] for i in indexes]}
    )


def retry_delay(attempt: int) -> int:
    """Seconds before a partly throttled pack's remainder is tried again: exponential with full jitter, within
    SQS's 15-minute DelaySeconds limit."""
    return random.randint(1, min(900, 10 * 2**attempt))


def requeue(
    queues: PackQueues,
    pack: DispatchPack,
    retried: Sequence[int],
    deferred: Sequence[int],
    *,
    deferred_delay: int,
    quiet: Sequence[int] = (),
    quiet_delay: int = 1,
) -> None:
    """The retry pack, the deferred pack and the quiet pack of `pack`, for whichever of them has recipients."""
    if retried:
        queues.send_packs(pack.provider, [retry_pack(pack, retried)], delay_seconds=retry_delay(pack.attempt))
    if deferred:
        queues.send_packs(pack.provider, [deferred_pack(pack, deferred)], delay_seconds=deferred_delay)
    if quiet:
        queues.send_packs(pack.provider, [quiet_pack(pack, quiet)], delay_seconds=quiet_delay)


def queue_moved(queues: PackQueues, rerouted: Rerouted) -> None:
    for target, packs in rerouted.packs.items():
        queues.send_packs(target, packs)


def requeue_after_send(
    claims: PackClaims,
    queues: PackQueues,
    pack: DispatchPack,
    *,
    retried: Sequence[int],
    deferred: Sequence[int],
    moved: Rerouted,
    deferred_delay: int,
    quiet: Sequence[int] = (),
    quiet_delay: int = 1,
) -> None:
    """Everything of a sent pack that goes back on a queue (its own provider's, or the next provider's)."""
    if not (retried or deferred or moved.moved or quiet):
        return
    # Kept on the claim first: if this dispatcher dies before recording, the next delivery knows these were never
    # sent (and queues them again, under the same pack ids) instead of taking them for unknown outcomes.
    claims.record_requeued(pack.pack_id, Requeued(tuple(retried), tuple(deferred), tuple(moved.moved), tuple(quiet)))
    requeue(queues, pack, retried, deferred, deferred_delay=deferred_delay, quiet=quiet, quiet_delay=quiet_delay)
    queue_moved(queues, moved)
