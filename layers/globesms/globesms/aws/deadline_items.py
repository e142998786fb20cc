"""Deadline entries (reconcile/deadline.py) as items of the messages table: `pk = DUE#<UTC minute>#<shard>`,
`sk = <due_at, 10 digits>#<digest>`, so a bucket's entries sort by deadline and one Query reads those due in a
range of seconds. Written by the dispatcher beside the records (`DynamoDBMessageStore.put_messages`), read by the
reconciler (`DynamoDBReceiptDeadlines`)."""

from __future__ import annotations

from typing import Any, Final

from globesms.models.records import message_id, split_message_id
from globesms.reconcile.deadline import DeadlineEntry

#: How long an entry is kept past its deadline before the table's TTL deletes it (free). The reconciler's watermark
#: passes it within minutes; the days are for a reconciler stopped for a while (it reads from its watermark).
ENTRY_TTL_SECONDS: Final = 14 * 86_400


def entry_pk(bucket: str) -> str:
    return f"DUE#{bucket}"


def deadline_item(entry: DeadlineEntry) -> dict[str, Any]:
    """An entry as an item: its ids as `{batch id: "seq,seq,..."}` (a pack's ids share their batch: ~6 bytes each)."""
    by_batch: dict[str, list[str]] = {}
    for message in entry.message_ids:
        parts = split_message_id(message)
        if parts is None:
            raise ValueError(f"not a message id: {message!r}")
        by_batch.setdefault(parts[0], []).append(str(parts[1]))
    return {
        "pk": {"S": entry_pk(entry.bucket)},
        "sk": {"S": entry.key},
        "due_at": {"N": str(entry.due_at)},
        "ids": {"M": {batch: {"S": ",".join(seqs)} for batch, seqs in by_batch.items()}},
        "expires_at": {"N": str(entry.due_at + ENTRY_TTL_SECONDS)},
    }


def entry_from_item(item: dict[str, Any]) -> DeadlineEntry:
    ids = [message_id(batch, int(seq)) for batch, seqs in item["ids"]["M"].items() for seq in seqs["S"].split(",")]
    return DeadlineEntry(int(item["due_at"]["N"]), tuple(ids))
