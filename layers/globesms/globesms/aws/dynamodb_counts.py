"""`StatusCounts` on the messages table: one counts item per batch, `pk = B#<batch_id>`, `sk = #counts`, a number
attribute `n_<STATUS>` per status, and `created_<STATUS>` per status records were created in (ACCEPTED, SCHEDULED:
what a poll fills in for the records not counted yet, `counts.tally.batch_counts`). DynamoDB's ADD on numbers is
atomic, so stream shards add concurrently.

Once per change, but for the two cases below: a stream batch is counted in transactions (TransactWriteItems, all or
nothing), each with a marker item `pk = S#<sequence of its first change>`, `sk = #`, that must not exist and records
the last change it covered. The event source hands a failed stream batch over again from the same first record
(BisectBatchOnFunctionError stays off: a split would start a retry elsewhere), so a retry finds the marker of what
an earlier attempt committed and goes on after the change that marker names. Markers expire (TTL) after
MARKER_DAYS, well past the stream's 24 h.

Not covered: a retry holding fewer changes than a committed chunk of an earlier attempt. AWS documents retrying the
batch whole ("reprocesses the entire batch"), and this handles it within the retry, but the invocation after it
would start inside that chunk, where no marker is keyed, and count the chunk's rest again. A per-shard "counted
through" mark would close it; the stream's records do not name their shard. Also a new event source mapping
(renamed function, stream re-enabled) starts at TRIM_HORIZON and counts the last 24 h again. A creation counted
twice makes a batch's counts add up to more than it accepted, but a move X -> Y counted twice keeps the total (X one
short, shown as none below zero; Y one over), so the counts alone do not tell the batches concerned: they are found
by when it happened (docs/operations.md, "Status counts"), and `make recount` (tools/recount.py) sets them again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError

from globesms.aws import clients
from globesms.aws.message_items import COUNTS_SK, batch_pk
from globesms.counts.tally import BatchTally, StatusChange, creations, deltas

MARKER_SK = "#"
MARKER_DAYS = 3
#: TransactWriteItems takes 100 items: one marker and up to 99 batches' counts.
MAX_BATCHES_PER_TRANSACTION = 99
MAX_CONFLICT_ATTEMPTS = 6


def marker_pk(sequence: str) -> str:
    return f"S#{sequence}"


COUNT_PREFIX = "n_"
CREATED_PREFIX = "created_"


def count_attribute(status: str) -> str:
    return f"{COUNT_PREFIX}{status}"


def created_attribute(status: str) -> str:
    return f"{CREATED_PREFIX}{status}"


def tally_of_item(item: dict[str, Any]) -> BatchTally:
    """A counts item as `BatchTally` (an absent item: nothing counted); zero counts left out."""
    statuses, created = {}, {}
    for name, value in item.items():
        if name.startswith(COUNT_PREFIX) and int(value["N"]):
            statuses[name.removeprefix(COUNT_PREFIX)] = int(value["N"])
        elif name.startswith(CREATED_PREFIX) and int(value["N"]):
            created[name.removeprefix(CREATED_PREFIX)] = int(value["N"])
    return BatchTally(statuses, created)


def _chunk_end(changes: Sequence[StatusChange], start: int) -> int:
    """The end (exclusive) of the longest run from `start` that touches at most MAX_BATCHES_PER_TRANSACTION batches."""
    batches: set[str] = set()
    end = start
    while end < len(changes):
        batches.add(changes[end].batch_id)
        if len(batches) > MAX_BATCHES_PER_TRANSACTION:
            break
        end += 1
    return end


class DynamoDBStatusCounts:
    def __init__(self, table_name: str, client_factory: Callable[[], Any] = clients.dynamodb) -> None:
        self._table = table_name
        self._client = client_factory

    def add(self, changes: Sequence[StatusChange]) -> None:
        position = 0
        while position < len(changes):
            end = _chunk_end(changes, position)
            covered = self._commit(changes[position:end])
            if covered is None:
                position = end
                continue
            # An earlier attempt at this stream batch committed from here on, through `covered`.
            after = next((i + 1 for i in range(position, len(changes)) if changes[i].sequence == covered), None)
            if after is None:  # that attempt covered more than this one holds: all of it is counted
                return
            position = after

    def _commit(self, chunk: Sequence[StatusChange]) -> str | None:
        """Count `chunk` in one transaction; None when done, else the last change an earlier commit covered."""
        created = creations(chunk)
        changed = deltas(chunk)  # a batch with creations has a delta too: each adds one to its status
        items = [self._marker(chunk)] + [self._update(b, d, created.get(b, {}), chunk) for b, d in changed.items() if d]
        for attempt in range(MAX_CONFLICT_ATTEMPTS):
            try:
                self._client().transact_write_items(TransactItems=items)
                return None
            except ClientError as exc:
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return self._covered_through(chunk[0].sequence)
                if "TransactionConflict" not in reasons or attempt == MAX_CONFLICT_ATTEMPTS - 1:
                    raise
                # Another shard's transaction was adding to the same counts item: try again shortly.
                time.sleep(min(0.05 * 2**attempt, 1.0) * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")

    def _marker(self, chunk: Sequence[StatusChange]) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": {
                    "pk": {"S": marker_pk(chunk[0].sequence)},
                    "sk": {"S": MARKER_SK},
                    "through": {"S": chunk[-1].sequence},
                    "expires_at": {"N": str(int(time.time()) + MARKER_DAYS * 86_400)},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _update(
        self, batch_id: str, delta: dict[str, int], created: dict[str, int], chunk: Sequence[StatusChange]
    ) -> dict[str, Any]:
        added = {count_attribute(s): n for s, n in delta.items()} | {
            created_attribute(s): n for s, n in created.items()
        }
        names = {f"#c{i}": name for i, name in enumerate(added)}
        values = {f":c{i}": {"N": str(n)} for i, n in enumerate(added.values())}
        expression = "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(added)))
        expires = max((c.expires_at for c in chunk if c.batch_id == batch_id and c.expires_at), default=None)
        if expires is not None:
            expression += " SET expires_at = :e"
            values[":e"] = {"N": str(expires)}
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": batch_pk(batch_id)}, "sk": {"S": COUNTS_SK}},
                "UpdateExpression": expression,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _covered_through(self, first_sequence: str) -> str:
        item = self._client().get_item(
            TableName=self._table,
            Key={"pk": {"S": marker_pk(first_sequence)}, "sk": {"S": MARKER_SK}},
            ConsistentRead=True,
        )["Item"]
        return str(item["through"]["S"])
