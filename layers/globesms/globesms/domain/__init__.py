"""The words every stage shares: statuses, phone numbers, segments, ids, the clock, providers' per-call caps."""
