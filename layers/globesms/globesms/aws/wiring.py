"""The adapters each handler uses, built once per process from the settings (handlers share this, not copies)."""

from __future__ import annotations

from functools import cache

from globesms.aws.dynamodb_breakers import DynamoDBCircuitBreakers
from globesms.aws.dynamodb_claims import DynamoDBPackClaims
from globesms.aws.dynamodb_rate_limiter import DynamoDBRateLimiter
from globesms.aws.dynamodb_receipts import DynamoDBReceiptStore
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.aws.sqs_queues import SqsPackQueues, SqsWebhookQueue
from globesms.config import ProviderQueueSettings, TableSettings, WebhookQueueSettings, settings
from globesms.dispatch.rate_limits import configured_rate_limits


@cache
def message_store() -> DynamoDBMessageStore:
    return DynamoDBMessageStore(_table_name())


@cache
def receipt_store() -> DynamoDBReceiptStore:
    return DynamoDBReceiptStore(_table_name())


@cache
def pack_claims() -> DynamoDBPackClaims:
    return DynamoDBPackClaims(_table_name())


@cache
def circuit_breakers() -> DynamoDBCircuitBreakers:
    return DynamoDBCircuitBreakers(_table_name())


@cache
def rate_limiter() -> DynamoDBRateLimiter:
    """Provider call permits shared by every dispatcher; rates from GLOBESMS_RATE_LIMITS over the defaults."""
    return DynamoDBRateLimiter(_table_name(), configured_rate_limits())


@cache
def pack_queues() -> SqsPackQueues:
    return SqsPackQueues(settings(ProviderQueueSettings).queue_urls)


@cache
def webhook_queue() -> SqsWebhookQueue:
    return SqsWebhookQueue(settings(WebhookQueueSettings).webhook_queue_url)


def reset() -> None:
    """Forget the adapters (tests change settings between cases)."""
    for factory in (
        message_store,
        receipt_store,
        pack_claims,
        circuit_breakers,
        rate_limiter,
        pack_queues,
        webhook_queue,
    ):
        factory.cache_clear()


def _table_name() -> str:
    return settings(TableSettings).table_name
