"""Putting recipients back on a queue: which pack id they come back under, and after how long. (Named for what
it does rather than `pack_ids`: the ids are the means by which putting something back twice stays harmless.)

Every pack id derives from the id of the pack it came from, so a dispatcher that redoes its work after a crash
queues the very same packs again, and the claims send each of them once:

- `<batch>:<provider>:<n>`: a pack as accept wrote it (`accept.packing.pack_records`);
- `<id>.r<n>`: recipients with a transient error, on attempt n (`retry_pack`);
- `<id>.w<n>`: recipients that found no rate-limit permit, the n-th time in a row (`deferred_pack`);
- `<id>.q<n>`: MKT recipients their dispatcher reached inside their quiet hours, the n-th wait of the *hold*
  `<id>.q` (`quiet_pack`, `quiet.py`). A hold's packs follow one another while every recipient of it is still
  inside its hours; a cancel takes the hold (its id is a claim of its own, which the dispatcher that ends the hold
  takes too: `PackClaims.take_hold`), so its records name it (`held_key`, written when the hold starts);
- `<id>.f:<provider>:<n>`: recipients failed over to the next provider of their route (`failover.reroute`);
- `<id>.u`: unknown outcomes, to settle after the window (`unknown_outcomes.settle_pack`);
- `<id>.s`, `<id>.s2`...: unknown outcomes sent once more, under the policy `resend`, split to fit the packing
  budget (`unknown_outcomes.resend_packs`).

Delays: a retry pack waits `retry_delay` (exponential backoff with full jitter); a deferred pack the delay the
rate limits worked out (`rate_limits.defer_delay`); a quiet pack until the first of its recipients may go (at most
15 minutes); a failover pack none.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from globesms.dispatch.failover import Rerouted
from globesms.models.packs import DispatchPack
from globesms.models.records import message_seq
from globesms.ports import MessageStore, PackClaims, PackQueues, Requeued

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
    """The recipients at `indexes`, inside their quiet hours, as a pack of their own, as a deferred pack is: the
    same attempt, a new id. A pack of a hold whose every recipient is still inside its hours is the hold's next
    wait (`<hold><n+1>`): whatever a cancel did to the hold holds for it. Otherwise the held recipients start a
    hold of their own, `<pack id>.q`: those of a pack that has not waited yet, and those of a hold that is ending
    for others of it (ended for all of them: its dispatcher took it before sending any)."""
    if hold_of(pack.pack_id) is not None and len(indexes) == len(pack.recipients):
        return _counted(pack, indexes, _QUIET, "q")
    return pack.model_copy(
        update={"pack_id": f"{pack.pack_id}.q1", "recipients": [pack.recipients[i] for i in indexes]}
    )


def hold_of(pack_id: str) -> str | None:
    """The quiet-hours hold a pack is a wait of (`<id>.q` for `<id>.q<n>`); None for any other pack."""
    found = _QUIET.search(pack_id)
    return None if found is None else pack_id[: found.start()] + ".q"


def note_hold(store: MessageStore | None, pack: DispatchPack, held: DispatchPack) -> None:
    """A hold that starts with `held` is written on its recipients' records (`held_key`) before its first pack is
    queued, so a cancel finds it as soon as it can take it; a hold that goes on keeps what they name. A crash
    before the write leaves them naming the pack accept put them in, which their dispatcher claimed: answered as
    not cancelable, never canceled while sent. (A hold id always begins with its batch id, as every pack id does;
    one that did not would be left unwritten rather than written as some other id.)"""
    hold = hold_of(held.pack_id)
    if store is None or hold is None or hold == hold_of(pack.pack_id) or not hold.startswith(pack.batch_id):
        return
    store.mark_held([r.id for r in held.recipients], held_key=hold.removeprefix(pack.batch_id))


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
    store: MessageStore | None = None,
) -> None:
    """The retry pack, the deferred pack and the quiet pack of `pack`, for whichever of them has recipients. `store`:
    where a hold that starts is noted on its records (`note_hold`; without it, its recipients are not cancelable)."""
    if retried:
        queues.send_packs(pack.provider, [retry_pack(pack, retried)], delay_seconds=retry_delay(pack.attempt))
    if deferred:
        queues.send_packs(pack.provider, [deferred_pack(pack, deferred)], delay_seconds=deferred_delay)
    if quiet:
        held = quiet_pack(pack, quiet)
        note_hold(store, pack, held)
        queues.send_packs(pack.provider, [held], delay_seconds=quiet_delay)


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
    store: MessageStore | None = None,
    charge_moves: Callable[[Rerouted], Rerouted] | None = None,
) -> None:
    """Everything of a sent pack that goes back on a queue (its own provider's, or the next provider's).
    `charge_moves`: what the moved recipients cost at their new provider, charged after the note and before their
    packs are queued (`guardrails.charges.charged_moves`): a dispatcher that dies in between leaves a note the
    takeover moves them by, charging what was not charged, so a charge never stands for a move that did not
    happen, nor a move goes out uncharged."""
    if not (retried or deferred or moved.moved or quiet):
        return
    # Kept on the claim first: if this dispatcher dies before recording, the next delivery knows these were never
    # sent (and queues them again, under the same pack ids) instead of taking them for unknown outcomes.
    put_back = Requeued(tuple(retried), tuple(deferred), tuple(moved.moved), tuple(quiet))
    claims.record_requeued(pack.pack_id, as_noted(pack, put_back))
    if charge_moves is not None and moved.moved:
        moved = charge_moves(moved)
    requeue(
        queues,
        pack,
        retried,
        deferred,
        deferred_delay=deferred_delay,
        quiet=quiet,
        quiet_delay=quiet_delay,
        store=store,
    )
    queue_moved(queues, moved)


def as_noted(pack: DispatchPack, put_back: Requeued) -> Requeued:
    """What the claim keeps of `put_back` (positions in `pack`): each recipient by the sequence number of its
    message id (`<batch>.<seq>`; one batch's, so one each in a pack). A takeover may hold a copy of the pack with
    fewer recipients under the same id (a resumed accept's, accept/resume.py), whose positions are others."""

    def seqs(positions: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(message_seq(pack.recipients[i].id) for i in positions)

    return Requeued(
        seqs(put_back.retried), seqs(put_back.deferred), seqs(put_back.failed_over), seqs(put_back.quiet), False
    )


def in_pack(pack: DispatchPack, noted: Requeued) -> Requeued:
    """`noted` (as the claim keeps it) as positions in `pack`: those of the recipients it names that are in `pack`.
    A copy that leaves a noted recipient out does so because the recipient's record moved on since (it is not the
    copy's to put back). A note written as positions is read as such."""
    if noted.by_position:
        return noted
    position = {message_seq(r.id): i for i, r in enumerate(pack.recipients)}

    def positions(seqs: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(position[seq] for seq in seqs if seq in position)

    return Requeued(
        positions(noted.retried), positions(noted.deferred), positions(noted.failed_over), positions(noted.quiet)
    )
