"""Batch ids: ULIDs (time-ordered, 26 Crockford base-32 characters), so ids sort by acceptance time."""

from __future__ import annotations

import hashlib
import os
import re
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


# The message attribute `make redrive` (tools/redrive.py) gives a message it moves back from a dead-letter queue:
# the SQS MessageId it was first sent with, as a redriven message is sent again under a new one. The intake derives
# a body's batch id from it, so a redriven body resumes its first batch (packs already sent skipped) instead of
# being accepted as a second one, which would text again whoever the first reached.
FIRST_MESSAGE_ID = "globesms-first-message-id"
_SQS_MESSAGE_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")  # a UUID


def first_message_id(message_id: str, first: str | None) -> str:
    """The SQS MessageId a body was first sent with: `first` (the FIRST_MESSAGE_ID attribute) when it reads as one
    (SQS gives UUIDs: `sqs-<id>` is then 40 characters, as a batch id must be at most 64), else the message's own (a
    value that does not is ignored: the attribute is the sender's to set)."""
    return first if first is not None and _SQS_MESSAGE_ID.fullmatch(first) else message_id


def sqs_batch_id(sqs_message_id: str) -> str:
    """The batch id of an SQS intake message that names none: derived from the SQS MessageId (which the client
    got back from SendMessage), so a redelivery maps to the same batch and the client can look it up."""
    return f"sqs-{sqs_message_id}"


def keyed_batch_id(scope: str, key: str, body: str) -> str:
    """The batch id of a request sent with an idempotency key: derived from the key (in its scope) and the body,
    so an attempt that died after queueing its packs but before its answer was kept, and is run again once its
    in-progress record expires, resumes the same batch (same records, same packs, claimed once) instead of
    sending a second one. `k` and 25 Crockford base-32 characters (125 bits of SHA-256)."""
    digest = int.from_bytes(hashlib.sha256(f"{scope}\n{key}\n{body}".encode()).digest()[:16], "big") >> 3
    chars = []
    for _ in range(25):
        chars.append(_CROCKFORD[digest & 31])
        digest >>= 5
    return "k" + "".join(reversed(chars))
