"""Quiet hours, checked again at dispatch (pure): an MKT recipient accepted outside its quiet hours can still reach
its dispatcher inside them (a marketing batch larger than the providers' rates deliver before the evening). It is
not sent then: it goes back on its provider queue under a pack of its own, `<pack id>.q<n>`, delayed by the time
until its first recipient may go (at most SQS's 15 minutes, so a long night is several short waits), and is checked
again on arrival. Its validity still runs: one that lapses meanwhile ends EXPIRED with `VALIDITY_LAPSED`
(`validity.py`), never sent. The window is the one accept applied, carried by the content (`quiet_hours`).
"""

from __future__ import annotations

import math
from datetime import datetime

from globesms.consent.quiet_hours import quiet_until
from globesms.models.outbound import MessageType
from globesms.models.packs import DispatchPack

MAX_DELAY_SECONDS = 900  # SQS DelaySeconds


def quiet_positions(pack: DispatchPack, now: datetime) -> dict[int, int]:
    """The positions of the recipients inside their quiet hours at `now`, each with the seconds until it may go."""
    held: dict[int, int] = {}
    for i, recipient in enumerate(pack.recipients):
        content = pack.contents[recipient.c]
        if content.type is not MessageType.MKT or not content.quiet_hours:
            continue
        until = quiet_until(recipient.to, content.quiet_hours, now)
        if until is not None:
            held[i] = max(1, math.ceil((until - now).total_seconds()))
    return held


def quiet_delay(held: dict[int, int]) -> int:
    """The delay of the pack the held recipients go back in: until the first of them may go, within SQS's limit."""
    return min(MAX_DELAY_SECONDS, min(held.values()))
