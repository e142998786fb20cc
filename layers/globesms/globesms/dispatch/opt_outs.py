"""The opt-out list read again at dispatch: a number listed after its message was accepted does not get it.

Accept refuses a listed number (`consent.screen`); a message accepted before its number opted out waits for its
send_at, through quiet hours or behind a rate limit, and every one of them goes through a dispatcher last. So the
dispatcher asks the list once per pack for the numbers the rule applies to (MKT and NOTIFY; OTP too where the
deployment says so), and a listed one is recorded FAILED with `OPTED_OUT`, never sent, its spend given back. A
dispatcher without the consent table (a deployment without it, unit tests) has no list.
"""

from __future__ import annotations

from globesms.consent.rules import blocked_types
from globesms.consent.screen import OptOutCheck
from globesms.models.outbound import MessageType
from globesms.models.packs import DispatchPack


def opted_out_positions(pack: DispatchPack, check: OptOutCheck | None) -> set[int]:
    """The positions of the pack's recipients whose number is on the list for their message's type."""
    if check is None:
        return set()
    blocked = blocked_types(otp_too=check.otp_too)
    kept = [
        (i, recipient.to)
        for i, recipient in enumerate(pack.recipients)
        if MessageType(pack.contents[recipient.c].type) in blocked
    ]
    listed = check.store.listed(check.owner, {to for _, to in kept}) if kept else set()
    return {i for i, to in kept if to in listed}
