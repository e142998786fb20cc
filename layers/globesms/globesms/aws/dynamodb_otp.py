"""`OtpCounters` on the messages table: one item per number, one per country, one marker per batch chunk.

- A number: `pk = V#<E.164>`, `sk = $otp`, holding `five` and `hours` (maps: bucket -> count, pruned to the
  windows at every write), `ver` (bumped by every write) and `expires_at` (TTL, 26 hours on: past every window).
  Written whole with `Put` under `ver = :seen` (or `attribute_not_exists(pk)` for a first write): optimistic
  concurrency, so two Lambdas that read the same counters cannot both add to them.
- A country: `pk = P#<country>`, `sk = $otp`, holding one top-level number attribute per bucket (`m<minute>`:
  recipients offered, `h<hour>`: recipients let through; `ADD` works only on top-level attributes), and
  `released_until` (an operator's release). Buckets no window reads are removed by the next count.
- A batch chunk's marker: `pk = B#<batch_id>`, `sk = $otp#<chunk>` (its position, its planning hour and a digest
  of its recipients: `otp_guard.chunk_key`), holding the chunk's refusals.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from botocore.exceptions import ClientError

from globesms.aws import clients
from globesms.aws.batch_reads import batch_get
from globesms.guardrails.ports import CountryAdd, CountryCounts, NumberCounts, OtpCommit

SK = "$otp"
NUMBER_TTL_SECONDS = 26 * 3600  # the day window reaches 25 hours back
COUNTRY_TTL_SECONDS = 3 * 86_400  # the baseline reaches 48 hours back at most
CONFLICT_RETRIES = 4


def number_key(number: str) -> dict[str, Any]:
    return {"pk": {"S": f"V#{number}"}, "sk": {"S": SK}}


def country_key(country: str) -> dict[str, Any]:
    return {"pk": {"S": f"P#{country}"}, "sk": {"S": SK}}


def marker_key(batch_id: str, chunk: str) -> dict[str, Any]:
    return {"pk": {"S": f"B#{batch_id}"}, "sk": {"S": f"{SK}#{chunk}"}}


def _buckets(counts: Mapping[int, int]) -> dict[str, Any]:
    return {"M": {str(bucket): {"N": str(n)} for bucket, n in counts.items()}}


def _read_buckets(value: dict[str, Any] | None) -> dict[int, int]:
    return {int(k): int(v["N"]) for k, v in (value or {}).get("M", {}).items()}


def _number_counts(item: dict[str, Any]) -> NumberCounts:
    return NumberCounts(int(item["ver"]["N"]), _read_buckets(item.get("five")), _read_buckets(item.get("hours")))


def _country_counts(item: dict[str, Any]) -> CountryCounts:
    minutes = {int(k[1:]): int(v["N"]) for k, v in item.items() if k.startswith("m") and k[1:].isdigit()}
    hours = {int(k[1:]): int(v["N"]) for k, v in item.items() if k.startswith("h") and k[1:].isdigit()}
    return CountryCounts(minutes, hours, int(item.get("released_until", {"N": "0"})["N"]))


class DynamoDBOtpCounters:
    def __init__(self, table_name: str, client_factory: Callable[[], Any] = clients.dynamodb) -> None:
        self._table = table_name
        self._client = client_factory

    def read(
        self, numbers: Collection[str], countries: Collection[str]
    ) -> tuple[dict[str, NumberCounts], dict[str, CountryCounts]]:
        found_numbers = dict.fromkeys(numbers, NumberCounts())  # immutable: one for every number not found
        found_countries = {c: CountryCounts() for c in countries}
        keys = [number_key(n) for n in found_numbers] + [country_key(c) for c in found_countries]
        for item in batch_get(self._client(), self._table, keys):
            kind, _, name = item["pk"]["S"].partition("#")
            if kind == "V":
                found_numbers[name] = _number_counts(item)
            else:
                found_countries[name] = _country_counts(item)
        return found_numbers, found_countries

    def try_commit(self, commit: OtpCommit) -> tuple[Mapping[int, tuple[str, str]], bool] | None:
        items = self._transaction(commit)
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                self._client().transact_write_items(TransactItems=items)
                return commit.refused, True
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return self._marker(commit.batch_id, commit.chunk), False
            if "ConditionalCheckFailed" in reasons:
                return None
            if attempt < CONFLICT_RETRIES:  # TransactionConflict: the same items were busy at that moment
                time.sleep(0.01 * 2**attempt * random.uniform(0.5, 1.0))
        return None

    def _transaction(self, commit: OtpCommit) -> list[dict[str, Any]]:
        refused = {str(i): {"L": [{"S": code}, {"S": message}]} for i, (code, message) in commit.refused.items()}
        marker = {
            **marker_key(commit.batch_id, commit.chunk),
            "refused": {"M": refused},
            "expires_at": {"N": str(commit.expires_at)},
        }
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table, "Item": marker, "ConditionExpression": "attribute_not_exists(pk)"}}
        ]
        ttl = {"N": str(int(time.time()) + NUMBER_TTL_SECONDS)}
        for write in commit.writes:
            item = {
                **number_key(write.number),
                "ver": {"N": str(write.counts.version)},
                "five": _buckets(write.counts.five_minutes),
                "hours": _buckets(write.counts.hours),
                "expires_at": ttl,
            }
            put: dict[str, Any] = {"TableName": self._table, "Item": item}
            if write.seen_version:
                put["ConditionExpression"] = "ver = :seen"
                put["ExpressionAttributeValues"] = {":seen": {"N": str(write.seen_version)}}
            else:
                put["ConditionExpression"] = "attribute_not_exists(pk)"
            items.append({"Put": put})
        return items

    def _marker(self, batch_id: str, chunk: str) -> dict[int, tuple[str, str]]:
        key = marker_key(batch_id, chunk)
        item = self._client().get_item(TableName=self._table, Key=key, ConsistentRead=True)["Item"]
        return {int(i): (v["L"][0]["S"], v["L"][1]["S"]) for i, v in item["refused"]["M"].items()}

    def add_country(self, add: CountryAdd, expires_at: int) -> None:
        names = {"#m": f"m{add.minute}", "#h": f"h{add.hour}"}
        names |= {f"#s{i}": name for i, name in enumerate(add.stale)}
        expression = "ADD #m :offered, #h :passed SET expires_at = :ttl"
        if add.stale:
            expression += " REMOVE " + ", ".join(f"#s{i}" for i in range(len(add.stale)))
        self._client().update_item(
            TableName=self._table,
            Key=country_key(add.country),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={
                ":offered": {"N": str(add.offered)},
                ":passed": {"N": str(add.passed)},
                ":ttl": {"N": str(max(expires_at, int(time.time()) + COUNTRY_TTL_SECONDS))},
            },
        )

    def release_country(self, country: str, until: int) -> None:
        self._client().update_item(
            TableName=self._table,
            Key=country_key(country),
            UpdateExpression="SET released_until = :until, expires_at = :ttl",
            ExpressionAttributeValues={
                ":until": {"N": str(until)},
                ":ttl": {"N": str(max(until, int(time.time())) + COUNTRY_TTL_SECONDS)},
            },
        )
