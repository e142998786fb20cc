"""Validity that holds in the gateway too: a recipient whose validity ran out before it was handed to a provider
(queued behind a rate limit, deferred, waiting in a retry pack) is never sent; it ends EXPIRED with
`VALIDITY_LAPSED` (`records.lapsed_record`).

The validity is the message's `validity_seconds`: the request's, or for an OTP that named none the default accept
stored (`reconcile.deadline.with_default_validity`). A message with none (NOTIFY, MKT) is not dropped by the gateway:
the carrier's own default applies. It counts from the message's accept time (`created_at`), or from its `send_at`
when it was scheduled: a scheduled message's validity starts when it is due. Checked once per pack, before any call.
"""

from __future__ import annotations

import math
from datetime import datetime

from globesms.models.content import MessageContent
from globesms.models.packs import DispatchPack


def validity_start(content: MessageContent, created_at: str) -> datetime:
    """When the validity starts counting: `send_at` for a scheduled message, else the accept time."""
    return datetime.fromisoformat(content.send_at or created_at)


def validity_left(content: MessageContent, created_at: str, now: datetime) -> int | None:
    """The seconds of the content's validity left at `now` (rounded up, at least 1: a lapsed recipient is never
    sent, `lapsed_positions`), or None when it has none (the carrier's default applies)."""
    validity = content.validity_seconds
    if not validity:
        return validity
    left = validity_start(content, created_at).timestamp() + validity - now.timestamp()
    return max(1, math.ceil(left))


def lapsed_positions(pack: DispatchPack, now: datetime) -> set[int]:
    """The positions of the recipients whose validity ended at or before `now`."""
    lapsed_contents = set()
    for c, content in enumerate(pack.contents):
        validity = content.validity_seconds
        if validity and validity_start(content, pack.created_at).timestamp() + validity <= now.timestamp():
            lapsed_contents.add(c)
    if not lapsed_contents:
        return set()
    return {i for i, recipient in enumerate(pack.recipients) if recipient.c in lapsed_contents}
