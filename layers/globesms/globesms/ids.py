"""Batch ids: ULIDs (time-ordered, 26 Crockford base-32 characters), so ids sort by acceptance time."""

from __future__ import annotations

import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_batch_id(now_ms: int | None = None, entropy: bytes | None = None) -> str:
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    value = (millis << 80) | int.from_bytes(entropy if entropy is not None else os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def sqs_batch_id(sqs_message_id: str) -> str:
    """The batch id of an SQS intake message that names none: derived from the SQS MessageId (which the client
    got back from SendMessage), so a redelivery maps to the same batch and the client can look it up."""
    return f"sqs-{sqs_message_id}"
