"""Count a batch's statuses again from its message records: after the status-counts consumer set changes aside or
counted some twice, and once after upgrading from a version without the counts (`--all`).

    python -m tools.recount BATCH_ID [BATCH_ID ...] [--stack NAME | --table NAME] [--dry-run]
    python -m tools.recount --all [--stack NAME | --table NAME] [--dry-run]
    make recount BATCH=<batch id> [STACK=globesms-prod] [DRY_RUN=1]
    make recount ALL=1 [STACK=globesms-prod] [DRY_RUN=1]

`GET /v1/batches/{id}` reads a batch's counts item (`B#<batch>`, `#counts`), which StatusCountsFunction keeps from
the table's stream. A stream batch it could not count after 20 attempts goes to StatusCountsFailureQueue
(StatusCountsFailuresAlarm), and the counts of the batches it touched stay off by what it held; a few rare cases
count a change twice (aws/dynamodb_counts.py): the message records themselves are right. This reads every record of
the batch (a consistent query of its partition, ~1,200 read units for 10,000 recipients) and sets each `n_<STATUS>`
to what the records say (a status no record has any more: 0), each `created_<STATUS>` to how many were created in
it (`counts.tally.creation_status`), and the item's `expires_at` to the batch's (its records').

`--all`: every batch header still in retention (its `expires_at` not passed), found by a Scan of the table filtered
to headers (no index holds them all: the `OpenAccepts` index holds only unfinished accepts). The Scan reads the
whole table once (0.5 read units per 4 KB, every item), then each batch is read as above. Needed once after
upgrading from a version before the counts existed: a batch accepted then has no counts item (the stream's
consumer sees only later writes), and its poll would show every record not counted as ACCEPTED/QUEUED until it
expires.

The write is conditional on the counts the recount read (each attribute's value, or its absence): a change the
consumer counts while the recount reads the records makes it read again, up to MAX_ATTEMPTS times; a batch whose
counts kept changing is left as it was, named, and the exit status is 1. A change still in the stream when the
recount reads would be counted again on top of it, so recount after the consumer has caught up (its IteratorAge
near 0), at a quiet time for the batches concerned. Which batches after a failure: the queue's message names the
shard and the sequence numbers of what was set aside, not batches; the stream (24 h) holds the records of that
range (docs/operations.md). --dry-run prints the counts before and after, writes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from globesms.accept.queries import batch_messages
from globesms.aws.conditions import condition_failed
from globesms.aws.dynamodb_counts import COUNT_PREFIX, CREATED_PREFIX, count_attribute, created_attribute
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.aws.message_items import COUNTS_SK, HEADER_SK, batch_id_of_header_keys, batch_pk
from globesms.counts.tally import creation_status
from globesms.domain.status import Status
from globesms.models.records import MessageRecord
from tools.stack import AWS_ERRORS, default_stack, exit_for_aws_error, messages_table

MAX_ATTEMPTS = 5
NOT_SETTLED = 1  # the exit status when a batch's counts kept changing while it was recounted
#: Every attribute the consumer may add to (`n_` per status, `created_` per creation status): the write's condition
#: holds each to the value read, or to its absence, so no count the consumer changes meanwhile is overwritten.
COUNTED = (
    *(count_attribute(s) for s in Status),
    *(created_attribute(s) for s in (Status.ACCEPTED, Status.SCHEDULED)),
)


@dataclass(frozen=True)
class Recount:
    batch_id: str
    before: dict[str, int]  # the counts item's statuses as it was
    after: dict[str, int]  # what the records say
    changed: bool = False  # the item differs from what the records say (counts, creations or its expiry)
    settled: bool = True  # False: the counts kept changing while it read, nothing was written


def recount(store: DynamoDBMessageStore, client: Any, table: str, batch_id: str, *, dry_run: bool) -> Recount:
    """The batch's counts set from its records (unless `dry_run`); a batch without records is left alone."""
    for _ in range(MAX_ATTEMPTS):
        item = _counts_item(client, table, batch_id)  # read before the records: the condition is on what it read
        records = batch_messages(store, batch_id)
        wanted, expires_at = _wanted(records), max((r.expires_at for r in records if r.expires_at), default=None)
        read = _counted(item)
        changed = any(read.get(n, 0) != wanted.get(n, 0) for n in {*read, *wanted}) or (
            expires_at is not None and item.get("expires_at") != {"N": str(expires_at)}
        )
        result = Recount(batch_id, _statuses(read), _statuses(wanted), changed)
        if not changed or not records or dry_run:
            return result
        if _set_if_unchanged(client, table, batch_id, read, wanted, expires_at):
            return result
    return Recount(batch_id, result.before, result.after, changed=True, settled=False)


def _counts_item(client: Any, table: str, batch_id: str) -> dict[str, Any]:
    key = {"pk": {"S": batch_pk(batch_id)}, "sk": {"S": COUNTS_SK}}
    item: dict[str, Any] = client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item", {})
    return item


def _counted(item: Mapping[str, Any]) -> dict[str, int]:
    """The counts item's `n_` and `created_` attributes as read (zeros kept: a condition names them)."""
    return {n: int(v["N"]) for n, v in item.items() if n.startswith((COUNT_PREFIX, CREATED_PREFIX))}


def _wanted(records: Sequence[MessageRecord]) -> dict[str, int]:
    statuses = Counter(count_attribute(r.status) for r in records)
    return dict(statuses + Counter(created_attribute(creation_status(r)) for r in records))


def _statuses(counted: Mapping[str, int]) -> dict[str, int]:
    return {n.removeprefix(COUNT_PREFIX): v for n, v in counted.items() if n.startswith(COUNT_PREFIX) and v}


def _set_if_unchanged(
    client: Any, table: str, batch_id: str, read: Mapping[str, int], wanted: Mapping[str, int], expires_at: int | None
) -> bool:
    """Sets the counts to `wanted` if they are still as `read`: True once written, False if they changed."""
    names = sorted({*COUNTED, *read, *wanted})
    placeholders = {f"#a{i}": name for i, name in enumerate(names)}
    values: dict[str, Any] = {}
    sets, conditions = [], []
    for i, name in enumerate(names):
        if name in read or name in wanted:  # a status no record has any more: 0
            sets.append(f"#a{i} = :v{i}")
            values[f":v{i}"] = {"N": str(wanted.get(name, 0))}
        if name in read:
            conditions.append(f"#a{i} = :o{i}")
            values[f":o{i}"] = {"N": str(read[name])}
        else:
            conditions.append(f"attribute_not_exists(#a{i})")
    if expires_at is not None:  # the counts item expires with the batch (one the recount made, too)
        sets.append("expires_at = :expires")
        values[":expires"] = {"N": str(expires_at)}
    try:
        client.update_item(
            TableName=table,
            Key={"pk": {"S": batch_pk(batch_id)}, "sk": {"S": COUNTS_SK}},
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression=" AND ".join(conditions),
            ExpressionAttributeNames=placeholders,
            ExpressionAttributeValues=values,
        )
    except ClientError as exc:
        if not condition_failed(exc):
            raise
        return False
    return True


def headers_in_retention(client: Any, table: str, *, now: int) -> Iterator[str]:
    """The ids of every batch whose header has not expired: a Scan of the whole table, filtered to headers."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": "pk",
        "FilterExpression": "sk = :header AND begins_with(pk, :batch) AND attribute_exists(batch_id) "
        "AND (attribute_not_exists(expires_at) OR expires_at > :now)",
        "ExpressionAttributeValues": {
            ":header": {"S": HEADER_SK},
            ":batch": {"S": batch_pk("")},
            ":now": {"N": str(now)},
        },
    }
    while True:
        page = client.scan(**kwargs)
        yield from (batch_id_of_header_keys(item) for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def parse_arguments(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    default = default_stack(environ)
    parser = argparse.ArgumentParser(
        prog="python -m tools.recount", description="Count a batch's statuses again from its message records."
    )
    parser.add_argument("batch_ids", nargs="*", metavar="BATCH_ID")
    parser.add_argument("--all", action="store_true", help="every batch still in retention (a Scan of the table)")
    parser.add_argument("--stack", default=default, help=f"stack name (default: {default})")
    parser.add_argument("--table", help="the messages table's name (default: the stack's)")
    parser.add_argument("--dry-run", action="store_true", help="print the counts before and after, write nothing")
    arguments = parser.parse_args(argv)
    if bool(arguments.batch_ids) == arguments.all:
        parser.error("name the batches (BATCH_ID ...) or give --all, not both")
    return arguments


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
    # Which deployment it counts: STACK falls back to globesms-dev (a review).
    where = f"table {table}" if arguments.table else f"table {table} (stack {arguments.stack})"
    print(f"dry run: {where}" if arguments.dry_run else where)
    dynamodb = make("dynamodb")
    store = DynamoDBMessageStore(table, lambda: dynamodb)
    batch_ids = headers_in_retention(dynamodb, table, now=int(time.time())) if arguments.all else arguments.batch_ids
    unsettled = 0
    for batch_id in batch_ids:
        result = recount(store, dynamodb, table, batch_id, dry_run=arguments.dry_run)
        if not result.settled:
            unsettled += 1
            print(
                f"{batch_id}: its counts kept changing while it was read ({MAX_ATTEMPTS} times): left as they were "
                f"{result.before}; recount it once the batch is quiet",
                file=sys.stderr,
            )
            continue
        verb = "unchanged" if not result.changed else "would set" if arguments.dry_run else "set"
        if not result.after:
            verb = "no records: left alone"
        print(f"{batch_id}: {verb} {result.after or ''} (was {result.before})")
    return NOT_SETTLED if unsettled else 0


if __name__ == "__main__":
    sys.exit(main())
