"""What receipts do to a message's status (pure).

A message's receipts are kept as events on its record. The status they imply: the first final outcome reported
(final statuses never change afterwards); for a long Huawei message sent in `parts` parts, the first final report of
each part: DELIVERED only when every part is reported delivered, and the failure of any part fails the message.

The one backward-looking exception: a message the gateway itself ended EXPIRED with `NO_RECEIPT` (no final receipt
by its deadline, reconcile/) takes a real final receipt that comes later. That verdict only said "we never heard";
the receipt says what happened.

After a resend through the next provider (`receipts.failover`, step `RECEIPT_FAILOVER_STEP`) only the second
attempt's receipts count: those after the step, and never a late one of the first attempt (kept in the history with
the mark `EARLIER_ATTEMPT`, and changing nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from globesms.domain.history import RECEIPT_FAILOVER_STEP
from globesms.domain.status import UNDELIVERED_OUTCOMES, Status, forward
from globesms.errors import DispatchCode

NO_RECEIPT = DispatchCode.NO_RECEIPT.value
#: The mark on a receipt of a resent message's first attempt that came after the resend (kept, never counted).
EARLIER_ATTEMPT = "earlier_attempt"


def implied_status(events: Sequence[Mapping[str, Any]]) -> Status | None:
    # Only receipts report outcomes; "status" entries record our own steps (e.g. SENDING after an unknown outcome).
    reported = [
        (Status(e["status"]), e) for e in current_attempt(events) if e.get("status") and e.get("type") != "status"
    ]
    if not reported:
        return None
    parts = max((int(e.get("parts") or 1) for _, e in reported), default=1)
    if parts <= 1:
        return reported[0][0]
    # Each part's first final report stands, as a one-part message's does: a later, contradicting one for the same
    # part (a stale or repeated report) changes nothing.
    first_of_part: dict[int, Status] = {}
    for status, event in reported:
        first_of_part.setdefault(int(event.get("part") or 1), status)
    failure = next((status for status in first_of_part.values() if status in UNDELIVERED_OUTCOMES), None)
    if failure is not None:
        return failure
    delivered_parts = [part for part, status in first_of_part.items() if status is Status.DELIVERED]
    return Status.DELIVERED if len(delivered_parts) >= parts else None


def status_after(current: Status, events: Sequence[Mapping[str, Any]]) -> Status:
    implied = implied_status(events)
    if implied is None:
        return current
    if current is Status.EXPIRED and implied.is_final and expired_without_receipt(events):
        return implied
    return forward(current, implied)


def expired_without_receipt(events: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the gateway's own NO_RECEIPT step (reconcile/) is in the history."""
    return any(e.get("type") == "status" and e.get("error_code") == NO_RECEIPT for e in events)


def carrier_error(events: Sequence[Mapping[str, Any]], status: Status) -> Mapping[str, Any] | None:
    """The receipt that explains a failed delivery (its raw code and description go on the record)."""
    if status not in UNDELIVERED_OUTCOMES:
        return None
    return next((e for e in current_attempt(events) if e.get("status") == status.value), None)


def current_attempt(events: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    """The events of the message's latest attempt: after its resend step, when it has one, without the earlier
    attempt's receipts that came later."""
    step = next((i for i in range(len(events) - 1, -1, -1) if events[i].get("id") == RECEIPT_FAILOVER_STEP), None)
    if step is None:
        return events
    return [e for e in events[step + 1 :] if not e.get(EARLIER_ATTEMPT)]
