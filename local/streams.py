"""DynamoDB stream event sources, played against moto's stream as Lambda's event source mapping does: records of
each shard in order, in batches of up to BatchSize (after the batching window), filtered by the mapping's
FilterCriteria, a failed batch handed over again from its same first record (no bisecting).

`StreamReader.read` is one pass over the stream (tests and the cost bench drain it between phases);
`StreamPoller.run` keeps reading for a function host of the local stack. A reader starts at the stream's end
unless told otherwise: a host started against a moto that already holds changes does not count them again. Given a
`positions` file, it keeps there how far it has handed the stream over and the attempt under way, and a reader
started on that file goes on from there: the event source's position outlives an execution environment, so a host
started again after a timeout or a crash hands over the batch it died in from the same first record (the status
counts' exactly-once markers count on that), counts that attempt as failed (a batch that kills every host is set
aside after MAX_ATTEMPTS, as Lambda counts a timeout), and skips nothing written meanwhile.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from local.template import StreamEventSource

log = logging.getLogger("local.streams")

#: moto keeps the stream only in memory; a shard read from its start is where each moto run began.
IDLE_SLEEP_SECONDS = 0.25  # Lambda polls a shard four times a second
MAX_ATTEMPTS = 20  # the template's MaximumRetryAttempts, then the batch is set aside (logged here)


def matches(pattern: Any, value: Any) -> bool:
    """Whether `value` (a stream record, as JSON) matches an event pattern: nested objects, lists of allowed values,
    and `{"prefix": ...}`; any other operator is refused rather than guessed."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and matches(p, value[k]) for k, p in pattern.items())
    if isinstance(pattern, list):
        return any(_allowed(option, value) for option in pattern)
    raise ValueError(f"unsupported event pattern {pattern!r}")


def _allowed(option: Any, value: Any) -> bool:
    if isinstance(option, dict):
        if set(option) != {"prefix"}:
            raise ValueError(f"unsupported event pattern operator {option!r}")
        return isinstance(value, str) and value.startswith(option["prefix"])
    return bool(option == value)


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as Lambda hands it to the function (the same fields, plus the stream's ARN)."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if created is not None and not isinstance(created, int | float):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {**{k: v for k, v in record.items() if k != "dynamodb"}, "dynamodb": dynamodb, "eventSourceARN": stream_arn}


class JsonStreamsClient:
    """The three DynamoDB Streams calls a reader makes, sent to an endpoint (the local stack's moto) as plain JSON and
    answered as plain JSON, as Lambda's event source mapping reads a stream: no botocore on the way. botocore's
    parser turns every attribute of every old and new image into Python objects by the service model, and for a
    status counts function fed a thousand changes a second that was the busiest part of its host (about 20 CPU
    seconds in the utilisation figure's 60 s window). The request is not signed: moto does not check signatures,
    and this client is for the local stack only (`stream_pollers_for` uses boto3 when AWS is real)."""

    TARGET = "DynamoDBStreams_20120810."

    def __init__(self, endpoint_url: str, region: str) -> None:
        import httpx

        self._http = httpx.Client(base_url=endpoint_url, timeout=30)
        self._authorization = (  # what moto reads to tell the service and region; the signature is not checked
            f"AWS4-HMAC-SHA256 Credential=local/20260101/{region}/dynamodb/aws4_request, "
            "SignedHeaders=host;x-amz-target, Signature=0"
        )

    def _call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": self.TARGET + operation,
            "Authorization": self._authorization,
        }
        response = self._http.post("/", content=json.dumps(body), headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"DynamoDB Streams {operation}: HTTP {response.status_code} {response.text[:300]}")
        answer: dict[str, Any] = response.json()
        return answer

    def describe_stream(self, **arguments: Any) -> dict[str, Any]:
        return self._call("DescribeStream", arguments)

    def get_shard_iterator(self, **arguments: Any) -> dict[str, Any]:
        return self._call("GetShardIterator", arguments)

    def get_records(self, **arguments: Any) -> dict[str, Any]:
        return self._call("GetRecords", arguments)


class StreamReader:
    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        source: StreamEventSource,
        invoke: Callable[[dict[str, Any]], Any],
        *,
        from_start: bool = False,
        positions: Path | None = None,
    ) -> None:
        self._streams = streams
        self._arn = stream_arn
        self._source = source
        self._invoke = invoke
        self._patterns = [json.loads(p) for p in source.filter_patterns]
        self._from_start = from_start
        self._positions = positions
        # shard -> the last sequence number read (None: none yet, from the shard's start); the first record of the
        # batch being handed over and its attempts so far (one a host died in counts, as Lambda counts a timeout)
        self._after, self._trying = _read_positions(positions)
        self._kept: dict[str, Any] = {"after": dict(self._after), "trying": self._trying}  # what `positions` holds

    def read(self) -> int:
        """Hand over every record written since the last read; returns how many were handed over."""
        handed = 0
        for shard in self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            if shard_id not in self._after and not self._from_start:
                self._after[shard_id] = None
                for _ in self._records(shard_id):  # starting at the end: skip what the shard holds now
                    pass
                self._keep()
                continue
            for batch in self._batches(self._records(shard_id)):
                self._hand_over(batch)
                handed += len(batch)
                self._keep()  # the batch's last record is the last one read: `_batches` reads no further ahead
            self._keep()  # records the filter left out after the last batch
        return handed

    def _keep(self) -> None:
        """After a batch was handed over (or set aside, or records skipped): the positions move on to what was read."""
        self._trying = None
        self._write(dict(self._after))

    def _note_attempt(self, first: str, attempt: int) -> None:
        """Before an attempt: noted with the positions as the last batch handed over left them (the generator has
        read this batch already), so a host that dies in it hands the batch over again, and counts the attempt."""
        self._trying = (first, attempt)
        self._write(self._kept["after"])

    def _write(self, after: dict[str, str | None]) -> None:
        held = {"after": after, "trying": self._trying}
        if self._positions is None or held == self._kept:
            return
        partial = self._positions.with_name(self._positions.name + ".partial")
        partial.write_text(json.dumps(held))
        partial.replace(self._positions)  # whole or not at all, whenever the host dies
        self._kept = held

    def _records(self, shard_id: str) -> Iterable[dict[str, Any]]:
        """The shard's records after the last one read, each remembered as read once yielded. A new iterator each
        time, after the last sequence number seen (moto's iterators go stale when a transaction is rolled back)."""
        after = self._after.get(shard_id)
        kind = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after} if after else {}
        iterator = self._streams.get_shard_iterator(
            StreamArn=self._arn, ShardId=shard_id, **(kind or {"ShardIteratorType": "TRIM_HORIZON"})
        )["ShardIterator"]
        while iterator:
            response = self._streams.get_records(ShardIterator=iterator, Limit=1000)
            records = response.get("Records", [])
            if not records:
                return
            for record in records:
                self._after[shard_id] = record["dynamodb"]["SequenceNumber"]
                yield lambda_record(record, self._arn)
            iterator = response.get("NextShardIterator")

    def _batches(self, records: Iterable[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        for record in records:
            if self._patterns and not any(matches(p, record) for p in self._patterns):
                continue
            batch.append(record)
            if len(batch) == self._source.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _hand_over(self, batch: list[dict[str, Any]]) -> None:
        first = batch[0]["dynamodb"]["SequenceNumber"]
        made = self._trying[1] if self._trying is not None and self._trying[0] == first else 0  # by a host before
        for attempt in range(made + 1, MAX_ATTEMPTS + 1):
            self._note_attempt(first, attempt)
            try:
                self._invoke({"Records": batch})
                return
            except Exception:
                log.exception("%s: stream batch failed (attempt %d)", self._source.function_id, attempt)
        first, last = batch[0]["dynamodb"]["SequenceNumber"], batch[-1]["dynamodb"]["SequenceNumber"]
        log.error(
            "%s: stream batch %s..%s set aside after %d attempts", self._source.function_id, first, last, MAX_ATTEMPTS
        )


def _read_positions(positions: Path | None) -> tuple[dict[str, str | None], tuple[str, int] | None]:
    if positions is None or not positions.exists():
        return {}, None
    try:
        kept = json.loads(positions.read_text())
        after, trying = kept["after"], kept["trying"]
        if not all(isinstance(v, str | None) for v in after.values()):
            raise TypeError("a position that is not a sequence number")
        return dict(after), None if trying is None else (str(trying[0]), int(trying[1]))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        log.warning("%s holds no stream positions: starting at the stream's end", positions)
        return {}, None


class StreamPoller:
    """A thread's loop over `StreamReader.read`, with the source's batching window between reads."""

    def __init__(self, reader: StreamReader, source: StreamEventSource) -> None:
        self.reader = reader
        self.source = source

    def run(self, stop: threading.Event) -> None:
        """With a batching window, one read per window: Lambda's mapping gathers a shard's records for up to the
        window before it invokes the function (sooner with a full batch, as `read` hands each over when it has read
        it), so a change is counted within the window, and a busy table's changes go over in a few large batches
        rather than one small batch per read (reading again at once after every handed batch cost the local stack
        about five stream calls per message at 20 messages a second). Without a window, again at once after a read
        that handed records over, and IDLE_SLEEP_SECONDS after one that found none."""
        window = self.source.maximum_batching_window_seconds
        while not stop.is_set():
            try:
                handed = self.reader.read()
            except Exception:
                log.exception("reading the stream for %s failed", self.source.function_id)
                handed = 0
            if window:
                stop.wait(window)
            elif not handed:
                stop.wait(IDLE_SLEEP_SECONDS)


def start_stream_pollers(pollers: Iterable[StreamPoller], stop: threading.Event) -> list[threading.Thread]:
    threads = []
    for poller in pollers:
        thread = threading.Thread(
            target=poller.run, args=(stop,), name=f"stream-{poller.source.event_name}", daemon=True
        )
        thread.start()
        threads.append(thread)
    return threads
