"""`PackQueues` on SQS (one standard queue per provider) and `WebhookQueue` on SQS (the webhook sender's queue)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from globesms.aws import clients
from globesms.aws.sqs_batches import SendFailed, send_in_batches
from globesms.models.outbound import ProviderName
from globesms.models.packs import DispatchPack
from globesms.models.webhooks import WebhookDelivery

__all__ = ["SendFailed", "SqsPackQueues", "SqsWebhookQueue"]


class SqsPackQueues:
    def __init__(self, queue_urls: dict[ProviderName, str], client_factory: Callable[[], Any] = clients.sqs) -> None:
        self._urls = queue_urls
        self._client = client_factory

    def send_packs(self, provider: ProviderName, packs: Sequence[DispatchPack], *, delay_seconds: int = 0) -> None:
        url = self._urls.get(provider)
        if url is None:
            raise SendFailed(f"no queue configured for provider {provider}")
        bodies = [p.model_dump_json(exclude_none=True) for p in packs]
        send_in_batches(self._client(), url, bodies, noun="pack", delay_seconds=delay_seconds)


class SqsWebhookQueue:
    """Each delivery is one queue message (the JSON of `WebhookDelivery`), so each is retried on its own."""

    def __init__(self, queue_url: str, client_factory: Callable[[], Any] = clients.sqs) -> None:
        self._url = queue_url
        self._client = client_factory

    def send_webhooks(self, deliveries: Sequence[WebhookDelivery]) -> None:
        if not deliveries:
            return
        if not self._url:
            raise SendFailed("no webhook queue configured (GLOBESMS_WEBHOOK_QUEUE_URL)")
        send_in_batches(self._client(), self._url, [d.model_dump_json() for d in deliveries], noun="webhook")
