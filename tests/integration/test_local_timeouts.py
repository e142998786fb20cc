"""The local stack ends an invocation at its function's Timeout as Lambda does (local/lambda_host.py): the host
process exits, the runner starts it again, and a stream source goes on from the batch the host died in
(local/streams.py). What is asserted is what happens, never how fast."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from local import run, streams
from local.lambda_host import TIMED_OUT_EXIT_CODE
from local.streams import StreamReader
from local.template import REPO_ROOT, StreamEventSource

# A host's runtime with a handler that sleeps as long as its event says, in a process of its own (a timeout ends
# the process). Timeout 2 s: a second of margin for a loaded machine.
HOST_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from types import SimpleNamespace
    from pathlib import Path
    from local.lambda_host import FunctionRuntime
    from local.template import FunctionSpec

    spec = FunctionSpec("SlowFunction", Path(sys.argv[1]), "slow_app.handler", (), {}, 2, 128, None)
    stack = SimpleNamespace(
        function_environment=lambda function: {},
        context=SimpleNamespace(region="us-east-1", account_id="123456789012"),
    )
    runtime = FunctionRuntime(spec, stack)
    print(runtime.invoke({"sleep": 0.0}), flush=True)
    time.sleep(1.2)
    # Its own two seconds, not what was left of the first's: that one's clock is stopped, and would have run out in
    # this one (at 2.0 s).
    print(runtime.invoke({"sleep": 1.0}), flush=True)
    print(runtime.invoke({"sleep": 30}), flush=True)
    """
)


def test_an_invocation_past_its_timeout_ends_the_host_and_one_within_it_does_not(tmp_path: Path) -> None:
    (tmp_path / "slow_app.py").write_text(
        "import time\n\ndef handler(event, context):\n    time.sleep(event['sleep'])\n    return 'done'\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", HOST_SCRIPT, str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == TIMED_OUT_EXIT_CODE, finished.stderr
    assert finished.stdout.splitlines() == ["done", "done"]  # the third never answered
    assert "Task timed out after 2.00 seconds" in finished.stderr


class FakeChild:
    def __init__(self, name: str, code: int | None = None) -> None:
        self.name = name
        self.process = SimpleNamespace(returncode=code)


class FakeGroup:
    """Children that exit in a scripted order; `restart` records which were started again."""

    def __init__(self, exits: list[FakeChild]) -> None:
        self.exits = list(exits)
        self.restarted: list[str] = []

    def first_exited(self) -> FakeChild | None:
        return self.exits.pop(0)

    def restart(self, child: FakeChild) -> None:
        self.restarted.append(child.name)


@pytest.mark.parametrize("restart_hosts", [False, True])
def test_a_host_that_timed_out_is_started_again_any_other_exit_as_told(restart_hosts: bool) -> None:
    timed_out, crashed, moto = FakeChild("Dispatch", TIMED_OUT_EXIT_CODE), FakeChild("Api", -9), FakeChild("moto", 1)
    group = FakeGroup([timed_out, crashed, moto])

    code = run.supervise(group, [timed_out, crashed], restart_hosts=restart_hosts)  # type: ignore[arg-type]

    assert code == 1
    assert group.restarted == (["Dispatch", "Api"] if restart_hosts else ["Dispatch"])
    assert group.exits == ([] if restart_hosts else [moto])  # without the flag, the crashed host stopped the stack


class ListedStream:
    """One shard's records, read as DynamoDB Streams answers (pages of `Limit`)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, *names: str) -> None:
        for name in names:
            sequence = f"{len(self.records) + 1:06d}"
            self.records.append({"eventName": name, "dynamodb": {"SequenceNumber": sequence}})

    def describe_stream(self, **_: Any) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "shard-1"}]}}

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        after = kwargs.get("SequenceNumber", "")
        return {"ShardIterator": json.dumps(sum(r["dynamodb"]["SequenceNumber"] <= after for r in self.records))}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        start = json.loads(ShardIterator)
        page = self.records[start : start + Limit]
        return {"Records": page, "NextShardIterator": json.dumps(start + len(page)) if page else None}


class HostDied(BaseException):
    """The host's process ending in the middle of an invocation (not an error the event source retries)."""


# Batches of two; records named "skip" are filtered out, as a FilterCriteria leaves records out.
SOURCE = StreamEventSource(
    function_id="StatusCountsFunction",
    event_name="Changes",
    table_id="MessagesTable",
    batch_size=2,
    maximum_batching_window_seconds=0,
    filter_patterns=(json.dumps({"eventName": ["a", "b", "c", "d", "e", "f"]}),),
)


def names(event: dict[str, Any]) -> list[str]:
    return [r["eventName"] for r in event["Records"]]


def test_a_host_started_again_hands_over_the_batch_it_died_in_and_what_came_meanwhile(tmp_path: Path) -> None:
    stream, positions = ListedStream(), tmp_path / "positions.json"
    stream.write("a")  # before the first host: it starts at the stream's end
    handed: list[list[str]] = []

    def dies_in_batch_d(event: dict[str, Any]) -> None:
        if names(event)[0] == "d":
            raise HostDied
        handed.append(names(event))

    first = StreamReader(stream, "arn:stream", SOURCE, dies_in_batch_d, positions=positions)
    first.read()
    stream.write("b", "skip", "c", "d", "skip")
    with pytest.raises(HostDied):
        first.read()  # [b, c] handed over, then dies in [d]
    stream.write("e")  # while no host reads

    second = StreamReader(stream, "arn:stream", SOURCE, lambda e: handed.append(names(e)), positions=positions)
    second.read()

    assert handed == [["b", "c"], ["d", "e"]]
    on_its_own: list[list[str]] = []
    StreamReader(stream, "arn:stream", SOURCE, lambda e: on_its_own.append(names(e))).read()  # no file: the end
    assert on_its_own == []


def test_a_batch_that_kills_every_host_is_set_aside_after_the_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "MAX_ATTEMPTS", 3)
    stream, positions = ListedStream(), tmp_path / "positions.json"
    StreamReader(stream, "arn:stream", SOURCE, lambda e: None, positions=positions).read()  # at the end
    stream.write("a", "b", "c")
    attempts: list[list[str]] = []

    def dies_in_batch_a(event: dict[str, Any]) -> None:
        attempts.append(names(event))
        if names(event)[0] == "a":
            raise HostDied

    for _host in range(streams.MAX_ATTEMPTS):
        with pytest.raises(HostDied):
            StreamReader(stream, "arn:stream", SOURCE, dies_in_batch_a, positions=positions).read()
    StreamReader(stream, "arn:stream", SOURCE, dies_in_batch_a, positions=positions).read()

    assert attempts == [["a", "b"]] * streams.MAX_ATTEMPTS + [["c"]]  # the fourth host sets it aside unsent


def test_unreadable_positions_start_at_the_end(tmp_path: Path) -> None:
    stream, positions = ListedStream(), tmp_path / "positions.json"
    stream.write("a")
    positions.write_text("{not json")
    handed: list[Any] = []

    StreamReader(stream, "arn:stream", SOURCE, handed.append, positions=positions).read()

    assert handed == []
    assert json.loads(positions.read_text()) == {"after": {"shard-1": "000001"}, "trying": None}


class ScriptedReads:
    """A reader whose reads hand over so many records each, in turn; a stop that notes each wait and ends the loop
    when the reads are used up."""

    def __init__(self, handed: list[int]) -> None:
        self.handed = list(handed)
        self.waits: list[float] = []

    def read(self) -> int:
        return self.handed.pop(0)

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        return True

    def is_set(self) -> bool:
        return not self.handed


@pytest.mark.parametrize(
    ("window", "handed", "waits"),
    [
        (2, [3, 0, 1000], [2, 2, 2]),  # a window: one read per window, whatever a read found (as Lambda gathers)
        (0, [3, 0, 5, 4], [streams.IDLE_SLEEP_SECONDS]),  # none: again at once after records, a pause after none
    ],
)
def test_a_stream_is_read_once_per_batching_window(window: int, handed: list[int], waits: list[float]) -> None:
    scripted = ScriptedReads(handed)
    source = dataclasses.replace(SOURCE, maximum_batching_window_seconds=window)
    streams.StreamPoller(scripted, source).run(scripted)  # type: ignore[arg-type]
    assert scripted.waits == waits
