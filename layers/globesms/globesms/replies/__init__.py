"""Replies (inbound SMS) pushed by the providers: parsed in each provider's own format (`providers/<p>/replies.py`),
stored once, keywords applied to the opt-out list, forwarded to the customer as `message.received`."""
