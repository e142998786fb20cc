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

from globesms.consent.quiet_window import Window
from globesms.models.outbound import MessageType
from globesms.models.packs import DispatchPack, PackContent

MAX_DELAY_SECONDS = 900  # SQS DelaySeconds


def quiet_positions(pack: DispatchPack, now: datetime) -> dict[int, int]:
    """The positions of the recipients inside their quiet hours at `now`, each with the seconds until it may go."""
    windows = {c: window for c, content in enumerate(pack.contents) if (window := _window_of(content))}
    if not windows:
        return {}
    # Imported here: the time zones of numbers (phonenumbers, zoneinfo) are loaded by a dispatcher's first marketing
    # pack, not at every dispatcher's cold start.
    from globesms.consent.quiet_hours import quiet_until

    held: dict[int, int] = {}
    for i, recipient in enumerate(pack.recipients):
        window = windows.get(recipient.c)
        until = None if window is None else quiet_until(recipient.to, window, now)
        if until is not None:
            held[i] = max(1, math.ceil((until - now).total_seconds()))
    return held


def _window_of(content: PackContent) -> Window | None:
    """An MKT content's quiet hours; none for other types, a waiver, or a window no longer readable (it was read
    once already, at accept)."""
    if content.type is not MessageType.MKT or not content.quiet_hours:
        return None
    try:
        return Window.parse(content.quiet_hours)
    except ValueError:
        return None


def quiet_delay(held: dict[int, int]) -> int:
    """The delay of the pack the held recipients go back in: until the first of them may go, within SQS's limit."""
    return min(MAX_DELAY_SECONDS, min(held.values()))
