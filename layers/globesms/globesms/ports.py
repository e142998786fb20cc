"""The small interfaces the logic talks to. Adapters: `globesms.aws` (boto3) and `globesms.providers` (httpx).

The logic modules (`accept`, `dispatch`, `queries`) import these, never boto3 or httpx, so they run in unit tests
against in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from globesms.models.outbound import OutboundSms, ProviderName, SendOutcome

if TYPE_CHECKING:
    from globesms.models.packs import DispatchPack
    from globesms.models.records import BatchRecord, MessageRecord
    from globesms.models.webhooks import WebhookDelivery


class Provider(Protocol):
    """A provider client. `send` takes up to `max_recipients_per_call` recipients and returns one outcome each,
    in the same order. It raises `errors.InvalidProviderRequest` (before sending anything) when a field breaks the
    provider's rules; every provider-side failure comes back as an outcome with an `error`."""

    name: ProviderName
    max_recipients_per_call: int

    def send(self, messages: Sequence[OutboundSms]) -> list[SendOutcome]: ...


class MessageStore(Protocol):
    def begin_batch(self, batch: BatchRecord) -> BatchRecord | None:
        """Create the batch header unless it exists; returns the existing header when it does."""
        ...

    def finish_batch(self, batch: BatchRecord) -> None: ...

    def existing_message_ids(self, batch_id: str) -> set[str]: ...

    def put_messages(self, messages: Sequence[MessageRecord]) -> None:
        """Write whole records, as many per request as the store allows."""
        ...

    def get_message(self, message_id: str) -> tuple[MessageRecord, BatchRecord | None] | None: ...

    def get_batch(self, batch_id: str) -> BatchRecord | None: ...

    def list_batch_messages(
        self, batch_id: str, *, limit: int, after: str | None
    ) -> tuple[list[MessageRecord], str | None]:
        """A page of a batch's messages in id order, and the cursor of the next page (None at the end)."""
        ...

    def count_batch_statuses(self, batch_id: str) -> dict[str, int]: ...


class WebhookQueue(Protocol):
    def send_webhooks(self, deliveries: Sequence[WebhookDelivery]) -> None:
        """Queue each delivery for the webhook sender, or raise."""
        ...


class PackQueues(Protocol):
    def send_packs(self, provider: ProviderName, packs: Sequence[DispatchPack]) -> None:
        """Put every pack on the provider's queue, or raise; packs may repeat on retry (consumers dedupe)."""
        ...
