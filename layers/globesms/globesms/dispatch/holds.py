"""Quiet-hours holds at dispatch: a pack of a hold (`<id>.q<n>`, `requeue.quiet_pack`) waits again, or ends the
hold before anything of it is sent or recorded.

An MKT recipient its dispatcher reaches inside its quiet hours waits on its provider queue, in packs of at most 15
minutes' delay, until the hours end (`quiet.py`): a night is a chain of packs, the *hold*. Its recipients stay
QUEUED, and a customer may cancel them meanwhile. The pack accept put them in cannot be canceled any more (its
dispatcher claimed it), so a cancel takes the hold instead: `<id>.q`, a claim item of its own, named on the held
records (`held_key`). The dispatcher that ends the hold (to send, or to record a recipient whose validity lapsed)
takes the same item first (`PackClaims.take_hold`): exactly one of the two wins, so a recipient is never both sent
and reported canceled. A hold found canceled sends nothing and ends every recipient of it CANCELED.

A pack whose every recipient is still inside its hours just waits again, the hold untouched: no write, and no read
of the opt-out list (the pack that ends the hold reads it). A canceled hold keeps waiting until then too (a few SQS
messages a night) rather than costing every wait a read.
"""

from __future__ import annotations

from datetime import datetime

from globesms.dispatch.canceled import finish_cancel
from globesms.dispatch.deps import DispatchDeps, Recorders
from globesms.dispatch.failover import Rerouted
from globesms.dispatch.quiet import quiet_delay, quiet_positions
from globesms.dispatch.requeue import hold_of, requeue_after_send
from globesms.dispatch.summary import DispatchSummary
from globesms.dispatch.validity import lapsed_positions
from globesms.models.packs import DispatchPack


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
    """The hold's next wait. Nothing of the pack is sent here, whatever fails: its claim is then let go (as for a
    failure before a provider call), so the next delivery waits again under the same id rather than taking the pack
    over as possibly sent, which would end the hold (`canceled_hold`) and with it the recipients' cancel."""
    try:
        requeue_after_send(
            deps.claims,
            deps.queues,
            pack,
            retried=(),
            deferred=(),
            moved=Rerouted(),
            deferred_delay=1,
            quiet=sorted(quiet),
            quiet_delay=quiet_delay(quiet),
        )
        deps.claims.finish(pack.pack_id)
    except Exception:
        deps.claims.release(pack.pack_id)
        raise
    return DispatchSummary(submitted=0, failed=0, unknown=0, quiet=len(quiet))


def ends_canceled_hold(pack: DispatchPack, deps: DispatchDeps | Recorders, *, now: datetime) -> DispatchSummary | None:
    """For a pack of a hold about to be sent or recorded (claimed by this dispatcher): the hold is ended first, and
    None; or a cancel took it first, and the pack is finished as canceled (nothing sent, every recipient CANCELED)."""
    hold = hold_of(pack.pack_id)
    if hold is None or deps.claims.take_hold(hold, now=now):
        return None
    summary = finish_cancel(pack, deps, now=now)
    deps.claims.finish(pack.pack_id)
    return summary


def canceled_hold(pack: DispatchPack, deps: DispatchDeps, *, now: datetime) -> DispatchSummary | None:
    """For a pack of a hold whose earlier dispatcher died holding it (`Claim.STALE`). One that had only queued the
    hold's next wait (its claim notes every recipient as put back for quiet hours) sent nothing: None, and the pack
    is recovered as any other (the wait queued again under its id), the hold left as it is. Otherwise a hold a
    cancel took first was never ended by anyone, so nothing of the pack was sent: it is finished as canceled (the
    cancel may have died before moving every recipient) instead of its unmoved recipients being settled as possibly
    sent; and a hold nobody canceled is ended (the dead dispatcher may have sent) and None."""
    if hold_of(pack.pack_id) is None:
        return None
    if set(deps.claims.notes(pack.pack_id).requeued.quiet) == set(range(len(pack.recipients))):
        return None
    return ends_canceled_hold(pack, deps, now=now)
