"""Providers' delivery receipts: who may push them, matching them to messages, and what they do to a status."""
