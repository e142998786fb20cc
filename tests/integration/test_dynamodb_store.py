"""The DynamoDB adapter against moto, with the table exactly as template.yaml declares it."""

from datetime import UTC, datetime

from globesms.accept import resume
from globesms.accept.queries import batch_messages, get_batch
from globesms.accept.service import accept
from globesms.aws.dynamodb_store import DynamoDBMessageStore
from globesms.domain.status import Status
from globesms.models.api import MessageSpec
from globesms.models.records import BatchRecord
from tests.fakes import MemoryQueues

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def header(batch_id: str = "B", state: str = "ACCEPTING") -> BatchRecord:
    return BatchRecord(batch_id=batch_id, source="api", state=state, created_at="2026-11-26T10:00:00Z")  # type: ignore[arg-type]


def test_begin_batch_is_conditional_and_returns_the_existing_header(stack) -> None:  # type: ignore[no-untyped-def]
    store = DynamoDBMessageStore(stack.table_name)
    assert store.begin_batch(header()) is None
    store.finish_batch(header(state="QUEUED"))
    existing = store.begin_batch(header())
    assert existing is not None and existing.state == "QUEUED"


def test_only_a_body_refused_as_a_whole_gives_its_batch_id_up(stack) -> None:  # type: ignore[no-untyped-def]
    store = DynamoDBMessageStore(stack.table_name)
    refused = header(state="REJECTED")
    assert store.begin_batch(refused) is None
    assert store.begin_batch(refused) is not None  # a refused body again: written once
    assert store.begin_batch(header().model_copy(update={"body_hash": "h1"})) is None  # a corrected body takes it
    for again in (refused, header().model_copy(update={"body_hash": "h2"})):
        kept = store.begin_batch(again)
        assert kept is not None and kept.body_hash == "h1"


def test_accepted_batch_round_trips_with_pagination_counts_and_lookup(stack) -> None:  # type: ignore[no-untyped-def]
    store = DynamoDBMessageStore(stack.table_name)
    numbers = [f"+8525123{i:04d}" for i in range(60)]
    spec = MessageSpec.model_validate({"to": numbers, "text": "hello", "client_ref": "r-1"})
    result = accept([spec], batch_id="B", source="api", now=NOW, retention_days=90, store=store, queues=MemoryQueues())
    assert result.accepted == 60

    assert store.get_batch("B").state == "QUEUED"  # type: ignore[union-attr]
    # Nothing counted yet (the stream's consumer keeps the counts, tests/integration/test_status_counts.py): a
    # poll shows every accepted record as accepted, QUEUED once its packs are queued.
    assert get_batch(store, "B", limit=1, after=None).counts == {Status.QUEUED: 60}  # type: ignore[union-attr]
    assert len(batch_messages(store, "B")) == 60

    page, cursor = store.list_batch_messages("B", limit=25, after=None)
    assert [m.id for m in page] == [f"B.{i:05d}" for i in range(25)]
    page2, _ = store.list_batch_messages("B", limit=25, after=cursor)
    assert page2[0].id == "B.00025"

    found = store.get_message("B.00007")
    assert found is not None
    record, batch = found
    assert (record.to, record.client_ref, record.expires_at is not None) == ("+85251230007", "r-1", True)
    assert batch is not None and batch.batch_id == "B"
    assert store.get_message("B.00099") is None
    assert store.get_message("not-an-id") is None


def test_submitted_records_are_found_through_the_provider_ref_index(stack) -> None:  # type: ignore[no-untyped-def]
    store = DynamoDBMessageStore(stack.table_name)
    spec = MessageSpec.model_validate({"to": "+85251234567", "text": "hello"})
    accept([spec], batch_id="C", source="api", now=NOW, retention_days=90, store=store, queues=MemoryQueues())
    record, _ = store.get_message("C.00000")  # type: ignore[misc]
    store.put_messages([record.model_copy(update={"status": Status.SUBMITTED, "provider_message_id": "m-1"})])
    items = stack.dynamodb.query(
        TableName=stack.table_name,
        IndexName="ProviderRef",
        KeyConditionExpression="provider_ref = :r",
        ExpressionAttributeValues={":r": {"S": "aliyun#m-1"}},
    )["Items"]
    assert [(i["pk"]["S"], i["sk"]["S"]) for i in items] == [("B#C", "M#00000")]


def test_a_page_cut_by_dynamodbs_one_megabyte_limit_still_has_a_cursor(stack) -> None:  # type: ignore[no-untyped-def]
    # 1,100 messages of 1,500-character texts (about 3 KB stored each): a page of 1,000 is more than the 1 MB a
    # Query returns at once, so DynamoDB stops early with a LastEvaluatedKey. That page used to end the listing
    # (`next` None after a few hundred messages); every message must be reachable by following the cursors.
    store = DynamoDBMessageStore(stack.table_name)
    numbers = [f"+85251{i:06d}" for i in range(1_100)]
    spec = MessageSpec.model_validate({"to": numbers, "text": "é" * 1_500})
    accept([spec], batch_id="L", source="api", now=NOW, retention_days=90, store=store, queues=MemoryQueues())

    first, cursor = store.list_batch_messages("L", limit=1_000, after=None)
    assert len(first) < 1_000 and cursor == first[-1].id
    seen = [m.id for m in first]
    while cursor is not None:
        page, cursor = store.list_batch_messages("L", limit=1_000, after=cursor)
        seen += [m.id for m in page]
    assert seen == [f"L.{i:05d}" for i in range(1_100)]


def test_the_stored_records_make_again_the_very_packs_accept_queued(stack) -> None:  # type: ignore[no-untyped-def]
    """What resuming an accept relies on (accept/resume.py): the records as DynamoDB gives them back, each put back
    into the pack it names, are the packs accept queued, byte for byte."""
    store, queues = DynamoDBMessageStore(stack.table_name), MemoryQueues()
    hong_kong = [f"+8525123{i:04d}" for i in range(60)]
    specs = [
        MessageSpec.model_validate({"to": hong_kong, "text": "Your code is 123456", "type": "OTP"}),
        MessageSpec.model_validate({"to": [*hong_kong[:20], "+6591234567"], "text": "Grüße, 你好", "client_ref": "r"}),
        MessageSpec.model_validate({"to": hong_kong[:3], "template": {"id": "1234567", "params": {"code": "42"}}}),
    ]
    accept(specs, batch_id="B", source="sqs", now=NOW, retention_days=90, store=store, queues=queues)
    assert {provider: len(packs) for provider, packs in queues.sent.items()} == {"aliyun": 3, "tencent": 1}

    packs, held = resume.packs_as_stored(batch_messages(store, "B"), batch=store.get_batch("B"))  # type: ignore[arg-type]

    assert held == []
    assert all(pack.currency and pack.recipients[0].cost for ps in packs.values() for pack in ps)  # priced
    assert {p: [pack.model_dump_json() for pack in ps] for p, ps in packs.items()} == {
        p: [pack.model_dump_json() for pack in ps] for p, ps in queues.sent.items()
    }


def test_a_stopped_accept_is_taken_over_by_one_resume_at_a_time(stack) -> None:  # type: ignore[no-untyped-def]
    store = DynamoDBMessageStore(stack.table_name)
    stopped = header()
    assert store.begin_batch(stopped) is None
    first = stopped.model_copy(update={"resumes": 1})
    assert store.take_over_batch(first, stopped)
    assert not store.take_over_batch(first, stopped)  # another resume that read the same header: too late
    second = first.model_copy(update={"resumes": 2})
    assert store.take_over_batch(second, first)
    store.finish_batch(second.model_copy(update={"state": "QUEUED"}))
    assert not store.take_over_batch(second.model_copy(update={"resumes": 3}), second)  # finished: never taken
    assert store.get_batch("B").state == "QUEUED"  # type: ignore[union-attr]


def test_a_resends_records_are_written_only_over_a_record_still_sending(stack) -> None:  # type: ignore[no-untyped-def]
    store = DynamoDBMessageStore(stack.table_name)
    specs = [MessageSpec.model_validate({"to": f"+8525123456{i}", "text": "hello"}) for i in range(3)]
    accept(specs, batch_id="R", source="api", now=NOW, retention_days=90, store=store, queues=MemoryQueues())
    records = [store.get_message(f"R.0000{i}")[0] for i in range(3)]  # type: ignore[index]
    sending = [r.model_copy(update={"status": Status.SENDING}) for r in records[:2]]
    delivered = records[2].model_copy(update={"status": Status.DELIVERED})
    store.put_messages([*sending, delivered])
    resent = [r.model_copy(update={"status": Status.SUBMITTED, "provider_message_id": f"m-{r.id}"}) for r in records]
    assert store.put_if_sending(resent[1:]) == {"R.00002"}  # a receipt settled it: left as it is
    assert store.put_if_sending(resent[:1]) == set()  # one alone: no threads
    stored = store.get_messages([r.id for r in records])
    assert [stored[r.id].status for r in records] == [Status.SUBMITTED, Status.SUBMITTED, Status.DELIVERED]
