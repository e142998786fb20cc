from datetime import UTC, datetime

import pytest

from globesms.accept import queries
from globesms.accept.service import accept
from globesms.domain.status import Status
from globesms.models.api import MessageSpec
from globesms.ports import InvalidCursor, MessageLookup
from tests.fakes import MemoryQueues, MemoryStore

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def accepted_store() -> MemoryStore:
    store = MemoryStore()
    spec = MessageSpec.model_validate({"to": ["+85251234567", "+6591234567", "+447911123456"], "text": "hi"})
    accept([spec], batch_id="B", source="api", now=NOW, retention_days=90, store=store, queues=MemoryQueues())
    return store


def test_accepted_records_of_a_queued_batch_read_as_queued() -> None:
    store = accepted_store()
    view = queries.get_message(store, "B.00000")
    assert view is not None and view.status is Status.QUEUED
    batch = queries.get_batch(store, "B", limit=10, after=None)
    assert batch is not None and batch.counts == {"QUEUED": 3}


def test_records_of_an_unfinished_accept_read_as_accepted() -> None:
    store = accepted_store()
    store.batches["B"] = store.batches["B"].model_copy(update={"state": "ACCEPTING"})
    view = queries.get_message(store, "B.00001")
    assert view is not None and view.status is Status.ACCEPTED


def test_batch_messages_are_paginated_in_id_order() -> None:
    store = accepted_store()
    first = queries.get_batch(store, "B", limit=2, after=None)
    assert first is not None and [m.id for m in first.messages] == ["B.00000", "B.00001"]
    assert first.next == "B.00001"
    second = queries.get_batch(store, "B", limit=2, after=first.next)
    assert second is not None and [m.id for m in second.messages] == ["B.00002"] and second.next is None


def test_unknown_ids_are_none() -> None:
    store = accepted_store()
    assert queries.get_message(store, "B.00009") is None
    assert queries.get_message(store, "nonsense") is None
    assert queries.get_batch(store, "nope", limit=10, after=None) is None


def test_messages_are_found_by_client_ref_newest_first_across_batches_page_by_page() -> None:
    store = MemoryStore()
    for batch_id, minute in (("OLD", 0), ("NEW", 5)):
        spec = MessageSpec.model_validate({"to": ["+85251234567", "+6591234567"], "text": "hi", "client_ref": "o-1"})
        now = NOW.replace(minute=minute)
        accept([spec], batch_id=batch_id, source="api", now=now, retention_days=90, store=store, queues=MemoryQueues())
    other = MessageSpec.model_validate({"to": "+85251234567", "text": "hi", "client_ref": "o-2"})
    accept([other], batch_id="X", source="api", now=NOW, retention_days=90, store=store, queues=MemoryQueues())
    lookup = MessageLookup("client_ref", "o-1")
    first = queries.find_messages(store, lookup, limit=3, after=None)
    assert [m.id for m in first.messages] == ["NEW.00001", "NEW.00000", "OLD.00001"]
    assert {m.status for m in first.messages} == {Status.QUEUED}  # the batch header is read with them
    assert first.next is not None
    second = queries.find_messages(store, lookup, limit=3, after=first.next)
    assert ([m.id for m in second.messages], second.next) == (["OLD.00000"], None)
    by_number = queries.find_messages(store, MessageLookup("to", "+85251234567"), limit=10, after=None)
    assert [m.id for m in by_number.messages] == ["NEW.00000", "X.00000", "OLD.00000"]


def test_a_cursor_of_another_lookup_is_refused() -> None:
    store = accepted_store()
    store.messages["B.00000"].client_ref = "o-1"
    store.messages["B.00001"].client_ref = "o-1"
    page = queries.find_messages(store, MessageLookup("client_ref", "o-1"), limit=1, after=None)
    assert page.next is not None
    with pytest.raises(InvalidCursor):
        queries.find_messages(store, MessageLookup("client_ref", "o-2"), limit=1, after=page.next)


def test_a_record_without_an_owner_belongs_to_its_batchs_owner() -> None:
    """A record a dispatcher rewrote before packs carried the owner: the batch header still says whose it is."""
    store = MemoryStore()
    spec = MessageSpec.model_validate({"to": ["+85251234567"], "text": "hi"})
    accept(
        [spec], batch_id="B", source="api", now=NOW, retention_days=90, store=store, queues=MemoryQueues(), owner="k1"
    )
    store.messages["B.00000"] = store.messages["B.00000"].model_copy(update={"owner": None})
    assert queries.get_message(store, "B.00000", owner="k1") is not None
    assert queries.get_message(store, "B.00000", owner="k2") is None
