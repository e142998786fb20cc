"""Count a batch's statuses again from its message records, after the status-counts consumer set changes aside.

    python -m tools.recount BATCH_ID [BATCH_ID ...] [--stack NAME | --table NAME] [--dry-run]
    make recount BATCH=<batch id> [STACK=globesms-prod] [DRY_RUN=1]

`GET /v1/batches/{id}` reads a batch's counts item (`B#<batch>`, `#counts`), which StatusCountsFunction keeps from
the table's stream. A stream batch it could not count after 20 attempts goes to StatusCountsFailureQueue
(StatusCountsFailuresAlarm), and the counts of the batches it touched stay off by what it held: the message records
themselves are right. This reads every record of the batch (a consistent query of its partition, ~1,200 read units
for 10,000 recipients) and sets each `n_<STATUS>` to what the records say (a status no record has any more: 0).

When: after the consumer has caught up (its IteratorAge near 0) and while the batch's messages are not changing.
A change still in the stream when the recount reads would be counted again on top of it; one made after it is
counted once, as always. Which batches: the queue's message names the shard and the sequence numbers of what was set
aside, not batches; the consumer's log names the error, and the stream (24 h) holds the records of that range.
--dry-run prints the counts before and after, writes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3

from globesms.aws.dynamodb_counts import count_attribute
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.aws.message_items import COUNTS_SK, batch_pk
from tools.stack import AWS_ERRORS, default_stack, exit_for_aws_error, messages_table

PAGE = 1_000


@dataclass(frozen=True)
class Recount:
    batch_id: str
    before: dict[str, int]  # the counts item as it was
    after: dict[str, int]  # what the records say

    @property
    def changed(self) -> bool:
        return self.before != self.after


def recount(store: DynamoDBMessageStore, client: Any, table: str, batch_id: str, *, dry_run: bool) -> Recount:
    """The batch's counts set from its records (unless `dry_run`); a batch without records is left alone."""
    before = store.count_batch_statuses(batch_id)
    after = Counter[str]()
    cursor: str | None = None
    while True:
        records, cursor = store.list_batch_messages(batch_id, limit=PAGE, after=cursor)
        after.update(record.status.value for record in records)
        if cursor is None:
            break
    result = Recount(batch_id, before, dict(after))
    if result.changed and after and not dry_run:
        statuses = sorted(set(before) | set(after))
        client.update_item(
            TableName=table,
            Key={"pk": {"S": batch_pk(batch_id)}, "sk": {"S": COUNTS_SK}},
            UpdateExpression="SET " + ", ".join(f"#c{i} = :c{i}" for i in range(len(statuses))),
            ExpressionAttributeNames={f"#c{i}": count_attribute(status) for i, status in enumerate(statuses)},
            ExpressionAttributeValues={f":c{i}": {"N": str(after[s])} for i, s in enumerate(statuses)},
        )
    return result


def parse_arguments(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    default = default_stack(environ)
    parser = argparse.ArgumentParser(
        prog="python -m tools.recount", description="Count a batch's statuses again from its message records."
    )
    parser.add_argument("batch_ids", nargs="+", metavar="BATCH_ID")
    parser.add_argument("--stack", default=default, help=f"stack name (default: {default})")
    parser.add_argument("--table", help="the messages table's name (default: the stack's)")
    parser.add_argument("--dry-run", action="store_true", help="print the counts before and after, write nothing")
    return parser.parse_args(argv)


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    client: Callable[[str], Any] | None = None,
) -> int:
    env = os.environ if environ is None else environ
    arguments = parse_arguments(argv, env)
    try:
        return _run(arguments, client or boto3.client)
    except AWS_ERRORS as exc:  # no credentials or region, access denied, unreachable: one line, never a traceback
        code, kind = exit_for_aws_error(exc)
        print(f"recount: {kind}: {exc}", file=sys.stderr)
        return code


def _run(arguments: argparse.Namespace, make: Callable[[str], Any]) -> int:
    # boto3 reads AWS_ENDPOINT_URL_DYNAMODB, then AWS_ENDPOINT_URL, itself (tools/stack.py)
    table = arguments.table or messages_table(arguments.stack, make("cloudformation"))
    dynamodb = make("dynamodb")
    store = DynamoDBMessageStore(table, lambda: dynamodb)
    for batch_id in arguments.batch_ids:
        result = recount(store, dynamodb, table, batch_id, dry_run=arguments.dry_run)
        verb = "unchanged" if not result.changed else "would set" if arguments.dry_run else "set"
        if not result.after:
            verb = "no records: left alone"
        print(f"{batch_id}: {verb} {result.after or ''} (was {result.before})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
