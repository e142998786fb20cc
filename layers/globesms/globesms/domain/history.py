"""One step of our own in a message's history (pure).

A message's history (`MessageRecord.events`, and `PackRecipient.history` while a pack carries it to its next
dispatcher) holds two kinds of entries: the receipts a provider pushed (`DeliveryReport.event`, `"type": "receipt"`)
and the steps the gateway itself took (`"type": "status"`): SENDING after an unknown outcome, QUEUED on the next
provider of the route after a failover (also after an UNDELIVERED receipt, `receipts.failover`, with the first
attempt's SUBMITTED before it), SENDING again for a resend, FAILED when an unknown outcome expired.

`HistoryStep` is such a step. It is stored as the plain dict of `to_item()`: records in DynamoDB and packs on SQS
keep exactly the shape they had when these were written by hand, and the readers (`receipts.implied_status`, which
skips `"type": "status"` entries; the API's `accept.queries.history`) read it unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from globesms.domain.status import Status
from globesms.models.outbound import ProviderName

#: The `type` of our own steps; receipts are `"receipt"`.
STEP_TYPE = "status"
#: The id of the step that resent a message through the next provider after an UNDELIVERED receipt.
RECEIPT_FAILOVER_STEP = "receipt-failover"
#: The id of the step, written with `RECEIPT_FAILOVER_STEP`, that keeps when (and through which provider) the first
#: attempt was submitted: the record's `submitted_at` is the resend's once it is sent.
FIRST_SUBMITTED_STEP = "first-attempt-submitted"
#: The id of the step that made a message SENDING after an unknown outcome (dispatch/records.py).
SENDING_STEP = "sending"
#: The id of the step that sent a message once more after its outcome stayed unknown (policy `resend`).
RESEND_AFTER_UNKNOWN_OUTCOME_STEP = "resend-after-unknown-outcome"


def has_step(history: Sequence[Mapping[str, Any]] | None, *step_ids: str) -> bool:
    """A message's history (its record's events, or the history a pack carries for it) holds one of these steps."""
    return any(entry.get("id") in step_ids for entry in history or ())


def earlier_attempt(history: Sequence[Mapping[str, Any]] | None) -> tuple[ProviderName, str] | None:
    """The provider and provider message id the resend after an UNDELIVERED receipt left (its step keeps both)."""
    step = next((e for e in history or () if e.get("id") == RECEIPT_FAILOVER_STEP), None)
    if step is None or not step.get("provider") or not step.get("provider_message_id"):
        return None
    return ProviderName(step["provider"]), str(step["provider_message_id"])


def sent_before(history: Sequence[Mapping[str, Any]] | None) -> bool:
    """The history says an earlier attempt of the message reached a provider, or may have: it was resent after an
    UNDELIVERED receipt or after an unknown outcome. Whatever becomes of the resend, its cost is not one a
    provider never saw (`guardrails.release.never_reached_a_provider`)."""
    return has_step(history, RECEIPT_FAILOVER_STEP, RESEND_AFTER_UNKNOWN_OUTCOME_STEP)


@dataclass(frozen=True, slots=True)
class HistoryStep:
    id: str  # stable for the step, so a repeated step (a dispatcher redoing its work) is recognisable
    status: Status  # what the step made of the message
    error_code: str | None  # why: the provider's code, or one of ours (CIRCUIT_OPEN, ...); None: no error
    received_at: str  # ISO-8601 UTC, as every history entry's time
    provider: ProviderName | None = None  # the provider the step left (failover)
    provider_message_id: str | None = None  # the attempt the step left (a resend after an UNDELIVERED receipt)

    def to_item(self) -> dict[str, Any]:
        """The stored entry; `provider`, `provider_message_id` and `error_code` only when there is one (the key order
        is the one written before)."""
        item: dict[str, Any] = {"id": self.id, "type": STEP_TYPE, "status": self.status.value}
        if self.provider is not None:
            item["provider"] = self.provider.value
        if self.provider_message_id is not None:
            item["provider_message_id"] = self.provider_message_id
        if self.error_code is not None:
            item["error_code"] = self.error_code
        item["received_at"] = self.received_at
        return item
