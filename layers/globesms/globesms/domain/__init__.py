"""The words every stage shares: statuses, phone numbers, segments, ids, the clock, providers' per-call caps, the
history step, and which status_callback URLs and addresses an event may go to (`callback_urls`, the one module here
that reads a setting; `addresses`)."""
