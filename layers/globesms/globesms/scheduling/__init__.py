"""Scheduled sends (`send_at`) and cancel: held packs, their release at send_at, and CANCELED (docs/scheduling.md)."""
