"""Quiet-hours holds at dispatch: a pack of a hold (`<id>.q<n>`, `requeue.quiet_pack`) waits again, or ends the
hold before anything of it is sent or recorded.

An MKT recipient its dispatcher reaches inside its quiet hours waits on its provider queue, in packs of at most 15
minutes' delay, until the hours end (`quiet.py`): a night is a chain of packs, the *hold*. Its recipients stay
QUEUED, and a customer may cancel them meanwhile. The pack accept put them in cannot be canceled any more (its
dispatcher claimed it), so a cancel takes the hold instead: `<id>.q`, a claim item of its own, named on the held
records (`held_key`). The dispatcher that ends the hold (to send, or to record a recipient whose validity lapsed)
takes the same item first (`PackClaims.take_hold`): exactly one of the two wins, so a recipient is never both sent
and reported canceled. A hold found canceled sends nothing and ends every recipient of it CANCELED.

A pack whose every recipient is still inside its hours just waits again, the hold untouched: its claim's writes as
every pack's, nothing written to its records or the hold, and no read of the opt-out list (the pack that ends the
hold reads it). A canceled hold keeps waiting until then too (a few SQS messages and claims a night) rather than
costing every wait a read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from globesms.dispatch.canceled import finish_cancel
from globesms.dispatch.deps import DispatchDeps, Recorders
from globesms.dispatch.quiet import quiet_delay, quiet_positions
from globesms.dispatch.requeue import as_noted, hold_of, requeue
from globesms.dispatch.summary import DispatchSummary
from globesms.dispatch.validity import lapsed_positions
from globesms.models.packs import DispatchPack
from globesms.ports import Requeued


def wait_or_end_hold(pack: DispatchPack, deps: DispatchDeps, *, now: datetime) -> DispatchSummary | None:
    """For a pack of a hold (claimed by this dispatcher): its next wait, or the hold found canceled (what this
    pack's delivery did, its claim finished); None when the pack is to be dispatched as any other: no hold, or the
    hold ended by this dispatcher now (or before)."""
    hold = hold_of(pack.pack_id)
    if hold is None:
        return None
    quiet = quiet_positions(pack, now)
    if len(quiet) == len(pack.recipients) and not lapsed_positions(pack, now):
        return _wait_again(pack, deps, quiet)
    return ends_canceled_hold(pack, deps, now=now)


def _wait_again(pack: DispatchPack, deps: DispatchDeps, quiet: dict[int, int]) -> DispatchSummary:
    """The hold's next wait, noted on the pack's claim before it is queued (as every pack put back is). A failure
    to note it leaves nothing queued or sent: `WaitNotNoted`, and the pack is let go as one that failed before its
    provider call. A failure after it keeps the claim (the next wait may be on its queue already): the takeover
    queues the same next wait again, which is claimed once. (Letting the claim go then, as the first version of
    this did, let a redelivery of this wait after the hours ended send the recipients its queued next wait sent
    too.)"""
    ordered = sorted(quiet)
    try:
        deps.claims.record_requeued(pack.pack_id, as_noted(pack, Requeued(quiet=tuple(ordered))))
    except Exception as exc:
        raise WaitNotNoted(pack.pack_id) from exc
    delay = quiet_delay(quiet)
    requeue(deps.queues, pack, (), (), deferred_delay=1, quiet=ordered, quiet_delay=delay, store=deps.store)
    deps.claims.finish(pack.pack_id)
    return DispatchSummary(submitted=0, failed=0, unknown=0, quiet=len(quiet))


class WaitNotNoted(RuntimeError):
    """A hold's next wait could not be noted on the pack's claim: nothing of the pack was queued or sent."""

    def __init__(self, pack_id: str) -> None:
        super().__init__(f"the next wait of {pack_id} was not noted: nothing queued")


def ends_canceled_hold(pack: DispatchPack, deps: DispatchDeps | Recorders, *, now: datetime) -> DispatchSummary | None:
    """For a pack of a hold about to be sent or recorded (claimed by this dispatcher): the hold is ended first, and
    None; or a cancel took it first, and the pack is finished as canceled (nothing sent, every recipient CANCELED)."""
    hold = hold_of(pack.pack_id)
    if hold is None or deps.claims.take_hold(hold, now=now):
        return None
    return _finish_canceled(pack, deps, now=now)


def _finish_canceled(pack: DispatchPack, deps: DispatchDeps | Recorders, *, now: datetime) -> DispatchSummary:
    summary = finish_cancel(pack, deps, now=now)
    deps.claims.finish(pack.pack_id)
    return summary


@dataclass(frozen=True)
class Takeover:
    """What a takeover of a hold's pack may do (`take_over_hold`)."""

    finished: DispatchSummary | None = None  # the hold was canceled: the pack is done with
    as_claimed: bool = False  # nothing of the pack was sent or queued: it is dispatched as if just claimed


def take_over_hold(pack: DispatchPack, deps: DispatchDeps, *, now: datetime) -> Takeover:
    """For a pack whose earlier dispatcher died holding it (`Claim.STALE`), what its hold proves:
    - canceled: nobody ended it, so nothing of the pack was sent; finished as canceled (the cancel may have died
      before moving every recipient), rather than its unmoved recipients settled as possibly sent;
    - never ended, and nothing noted on the claim: the dead dispatcher sent nothing (every send from a hold's pack
      ends the hold first) and queued nothing (a wait is noted before it is queued), so the pack is dispatched as if
      just claimed, and its hold stays open: still cancelable;
    and otherwise (or for a pack of no hold) it is recovered as any other (`recovery.settle_interrupted`): what was
    noted queued again under the same ids, the rest settled as possibly sent."""
    hold = hold_of(pack.pack_id)
    if hold is None:
        return Takeover()
    state = deps.claims.hold_state(hold)
    if state == "CANCELED":
        return Takeover(finished=_finish_canceled(pack, deps, now=now))
    return Takeover(as_claimed=state is None and not deps.claims.notes(pack.pack_id).requeued)
