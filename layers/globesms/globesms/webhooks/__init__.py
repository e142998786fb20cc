"""Signed status webhooks to the customer's `status_callback`.

`signing` is the scheme (standard library only, what a receiver needs); `events` decides which status changes
become events; `sender` checks a queue body, signs the event and POSTs it once with short timeouts (httpx: an
adapter, like the provider clients); the retries, backoff and dead-lettering are the webhook queue's
(functions/webhooks/app.py, template.yaml).

This package module imports none of them, so `globesms.webhooks.signing` (and `events`) load without httpx: import
what you need from its own module.
"""
