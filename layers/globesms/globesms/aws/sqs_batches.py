"""SendMessageBatch for any queue: bodies grouped into calls SQS accepts, and the entries it failed retried.

Every queue writer (`SqsPackQueues`, `SqsWebhookQueue`) sends through `send_in_batches`, so the grouping and
retry rules live here once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from globesms.domain.provider_limits import SQS_MESSAGE_BYTES

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

ENTRIES_PER_CALL = 10  # SendMessageBatch's limit
# What a JSON body may hold that SQS refuses (its allowed characters: #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
# #x10000-#x10FFFF; JSON escapes the control characters already): U+FFFE, U+FFFF, and lone surrogates. Such a
# character can only be inside a JSON string, where its `\uXXXX` escape reads back as the same text.
_REFUSED_BY_SQS = re.compile("[\ud800-\udfff\ufffe\uffff]")
ATTEMPTS = 3  # per call: the first try and two retries of the entries SQS failed on its side


class SendFailed(RuntimeError):
    pass


def group_calls(
    bodies: Sequence[str], *, max_entries: int = ENTRIES_PER_CALL, max_bytes: int = SQS_MESSAGE_BYTES
) -> list[list[str]]:
    """Group bodies, in order, into SendMessageBatch calls of at most `max_entries` entries and `max_bytes` bytes.
    A body that is too big on its own gets a call of its own (and SQS refuses it)."""
    calls: list[list[str]] = []
    current: list[str] = []
    size = 0
    for body in bodies:
        length = len(body.encode())
        if current and (len(current) == max_entries or size + length > max_bytes):
            calls.append(current)
            current, size = [], 0
        current.append(body)
        size += length
    if current:
        calls.append(current)
    return calls


def sqs_text(body: str) -> str:
    """A JSON body SQS accepts: a reply's or a receipt's text may carry U+FFFE or U+FFFF (a UCS-2 SMS can), and SQS
    refused the whole call as the sender's fault, for good: a reply push holding one was answered 5xx at every
    retry, its other replies (a STOP among them) never stored."""
    if _REFUSED_BY_SQS.search(body) is None:
        return body
    return _REFUSED_BY_SQS.sub(lambda found: f"\\u{ord(found.group()):04x}", body)


def send_in_batches(
    client: SQSClient,
    queue_url: str,
    bodies: Sequence[str],
    *,
    noun: str = "message",
    attempts: int = ATTEMPTS,
    delay_seconds: int = 0,
) -> None:
    """Put every body on the queue or raise `SendFailed`. Entries SQS failed on its side are retried (only those,
    up to `attempts` tries per call); an entry refused as the sender's fault fails at once. A retry after a partial
    failure may repeat nothing that was sent, but a raise may leave earlier calls sent: consumers dedupe."""
    for call in group_calls([sqs_text(body) for body in bodies]):
        _send_call(client, queue_url, call, noun=noun, attempts=attempts, delay_seconds=delay_seconds)


def _send_call(
    client: SQSClient, queue_url: str, bodies: list[str], *, noun: str, attempts: int, delay_seconds: int
) -> None:
    pending = {str(i): body for i, body in enumerate(bodies)}
    for _ in range(attempts):
        response = client.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": i, "MessageBody": b, "DelaySeconds": delay_seconds} for i, b in pending.items()],
        )
        failed = response.get("Failed") or []
        if not failed:
            return
        if any(f.get("SenderFault") for f in failed):
            raise SendFailed(f"SQS refused {len(failed)} {noun}(s): {failed[0].get('Code')}")
        pending = {f["Id"]: pending[f["Id"]] for f in failed}
    raise SendFailed(f"SQS failed {len(pending)} {noun}(s) after {attempts} attempts")
