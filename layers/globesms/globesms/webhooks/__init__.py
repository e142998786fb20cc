"""Signed status webhooks to the customer's `status_callback`.

`signing` is the scheme (standard library only, what a receiver needs); `delivery` checks a queue body, signs the
event and POSTs it once with short timeouts (httpx: an adapter, like the provider clients); the retries, backoff
and dead-lettering are the webhook queue's (functions/webhooks/app.py, template.yaml).
"""

from globesms.webhooks.sender import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    WebhookFailed,
    WebhookSecretUnavailable,
    backoff_ceiling,
    backoff_seconds,
    deliver,
    new_http_client,
    parse_delivery,
    signed_request,
    url_host,
    webhook_secrets,
)
from globesms.webhooks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign, signature, verify

__all__ = [
    "BACKOFF_BASE_SECONDS",
    "BACKOFF_CAP_SECONDS",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "WebhookFailed",
    "WebhookSecretUnavailable",
    "backoff_ceiling",
    "backoff_seconds",
    "deliver",
    "new_http_client",
    "parse_delivery",
    "sign",
    "signature",
    "signed_request",
    "url_host",
    "verify",
    "webhook_secrets",
]
