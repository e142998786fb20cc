"""Interrupted accepts against moto, with the table (and its sparse `OpenAccepts` index) as template.yaml declares
it: a header is in the index only while ACCEPTING, and the scheduled reconcile run ends a keyless accept that stopped
INTERRUPTED once its lease is over, its recipients CANCELED (reconcile/interrupted.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from globesms.accept.queries import batch_messages
from globesms.accept.service import accept
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.domain.status import Status
from globesms.models.api import MessageSpec
from globesms.models.outbound import ProviderName
from tests.fakes import MemoryQueues

EVENTS = Path(__file__).resolve().parents[2] / "events"
NUMBERS = [f"+8525123{i:04d}" for i in range(30)]


def accept_one(
    store: DynamoDBMessageStore, batch_id: str, queues: MemoryQueues, *, now: datetime, keyless: bool = True
) -> None:
    spec = MessageSpec.model_validate({"to": NUMBERS, "text": "hello"})
    accept(
        [spec],
        batch_id=batch_id,
        source="api",
        now=now,
        retention_days=90,
        store=store,
        queues=queues,
        new_batch_id=keyless,
        accepting_until=now + timedelta(seconds=30),
    )


def stopped_accept(store: DynamoDBMessageStore, batch_id: str, *, now: datetime, keyless: bool = True) -> None:
    """Every record written, then the provider queue fails: the header stays ACCEPTING."""
    queues = MemoryQueues()
    queues.fail_for.update(ProviderName)
    with pytest.raises(RuntimeError):
        accept_one(store, batch_id, queues, now=now, keyless=keyless)


def test_a_header_is_in_the_index_only_while_accepting_and_once_due(stack: Any) -> None:
    store = DynamoDBMessageStore(stack.table_name)
    now = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    stopped_accept(store, "stopped", now=now)
    stopped_accept(store, "keyed", now=now, keyless=False)
    accept_one(store, "done", MemoryQueues(), now=now)
    settle_after = store.get_batch("stopped").settle_after  # type: ignore[union-attr]
    assert settle_after is not None

    assert store.open_accepts(due_by=settle_after - 1) == []
    assert store.open_accepts(due_by=settle_after) == ["stopped"]  # not "done" (QUEUED), not "keyed" (24 h on)
    assert set(store.open_accepts(due_by=settle_after + 2 * 86_400)) == {"stopped", "keyed"}


def test_the_scheduled_run_ends_a_stopped_keyless_accept(stack: Any, load_handler: Any, lambda_context: Any) -> None:
    store = DynamoDBMessageStore(stack.table_name)
    stopped_accept(store, "stopped", now=datetime.now(UTC) - timedelta(minutes=5))
    reconcile = load_handler("reconcile")
    event = json.loads((EVENTS / "reconcile_schedule.json").read_text())

    result = reconcile.lambda_handler(event, lambda_context)

    assert result["interrupted"] == 1
    header = store.get_batch("stopped")
    assert header is not None and header.state == "INTERRUPTED" and header.accepted == len(NUMBERS)
    assert {r.status for r in batch_messages(store, "stopped")} == {Status.CANCELED}
    assert store.open_accepts(due_by=2**40) == []
    assert reconcile.lambda_handler(event, lambda_context)["interrupted"] == 0


def test_an_interrupted_header_stays_in_the_index_until_ended_whole(stack: Any) -> None:
    """A run that stopped half way leaves the header INTERRUPTED with its settle_after: the next run must find it."""
    store = DynamoDBMessageStore(stack.table_name)
    stopped_accept(store, "stopped", now=datetime(2026, 12, 6, 10, 0, tzinfo=UTC))
    header = store.get_batch("stopped")
    assert header is not None

    begun = header.model_copy(update={"state": "INTERRUPTED", "resumes": 1})
    assert store.take_over_batch(begun, header)
    assert not store.take_over_batch(begun, header)  # taken over since it was read: refused
    assert store.open_accepts(due_by=2**40) == ["stopped"]

    store.finish_batch(begun.model_copy(update={"settle_after": None}))
    assert store.open_accepts(due_by=2**40) == []


def test_the_handler_gives_the_sweep_what_is_left_of_its_time_share(
    stack: Any, load_handler: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    reconcile = load_handler("reconcile")
    given: dict[str, Any] = {}

    def sweep(deps: Any, **kwargs: Any) -> Any:
        given.update(kwargs)
        return reconcile.InterruptedSummary()

    monkeypatch.setattr(reconcile, "settle_interrupted", sweep)
    reconcile.lambda_handler(json.loads((EVENTS / "reconcile_schedule.json").read_text()), lambda_context)

    # The context has 30 s left: the sweep stops within three quarters of it, by the real clock.
    assert given["clock"] is not None
    assert timedelta(0) < given["stop_at"] - datetime.now(UTC) <= timedelta(seconds=30 * reconcile.TIME_SHARE)
