from datetime import UTC, datetime

import pytest

from globesms.accept import TooManyRecipients, accept
from globesms.models.api import MessageSpec
from globesms.models.outbound import ProviderName
from globesms.status import Status
from tests.fakes import MemoryQueues, MemoryStore

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
GOOD = ["+85251234567", "+6591234567", "+447911123456"]


def run(specs: list[MessageSpec], store: MemoryStore, queues: MemoryQueues, batch_id: str = "B1"):  # type: ignore[no-untyped-def]
    return accept(specs, batch_id=batch_id, source="api", now=NOW, retention_days=90, store=store, queues=queues)


def spec(**fields: object) -> MessageSpec:
    return MessageSpec.model_validate({"text": "hello", **fields})


def test_accepts_persists_and_queues_every_good_recipient() -> None:
    store, queues = MemoryStore(), MemoryQueues()
    result = run([spec(to=GOOD)], store, queues)
    assert (result.accepted, result.rejected) == (3, 0)
    assert [m.status for m in result.messages] == [Status.QUEUED] * 3
    assert {m.status for m in store.messages.values()} == {Status.ACCEPTED}
    assert store.batches["B1"].state == "QUEUED"
    (pack,) = queues.sent[ProviderName.ALIYUN]
    assert [r.to for r in pack.recipients] == GOOD


def test_bad_recipients_are_rejected_alone_with_their_index_and_code() -> None:
    store, queues = MemoryStore(), MemoryQueues()
    result = run(
        [spec(to=["+85251234567", "12345"]), spec(to=["+8613800138000"]), spec(to="+6591234567", text="x")],
        store,
        queues,
    )
    assert result.accepted == 2
    assert [(e.index, e.code) for e in result.errors] == [(1, "INVALID_NUMBER"), (2, "NO_ROUTE")]
    assert [m.id for m in result.messages] == ["B1.00000", "B1.00003"]


def test_a_number_repeated_in_one_spec_is_sent_once() -> None:
    store, queues = MemoryStore(), MemoryQueues()
    result = run([spec(to=["+85251234567", "+852 5123 4567"])], store, queues)
    assert result.accepted == 1
    assert result.errors[0].code == "DUPLICATE_RECIPIENT"


def test_templates_route_to_tencent_and_mainland_to_huawei() -> None:
    store, queues = MemoryStore(), MemoryQueues()
    template = {"id": "1234567", "params": {"code": "123456"}}
    run([MessageSpec.model_validate({"to": ["+85251234567", "+8613800138000"], "template": template})], store, queues)
    assert [r.to for p in queues.sent[ProviderName.TENCENT] for r in p.recipients] == ["+85251234567"]
    assert [r.to for p in queues.sent[ProviderName.HUAWEI] for r in p.recipients] == ["+8613800138000"]


def test_too_many_recipients_writes_nothing() -> None:
    store, queues = MemoryStore(), MemoryQueues()
    with pytest.raises(TooManyRecipients):
        run(
            [spec(to=[f"+8525{i:07d}" for i in range(6_000)]), spec(to=[f"+6591{i:06d}" for i in range(4_001)])],
            store,
            queues,
        )
    assert not store.batches and not store.messages and not queues.sent


def test_a_repeated_accept_of_a_finished_batch_writes_and_sends_nothing() -> None:
    store, queues = MemoryStore(), MemoryQueues()
    run([spec(to=GOOD)], store, queues)
    puts = store.put_calls
    run([spec(to=GOOD)], store, queues)
    assert store.put_calls == puts
    assert len(queues.sent[ProviderName.ALIYUN]) == 1


def test_an_accept_that_crashed_midway_is_completed_without_rewriting_records() -> None:
    store, queues = MemoryStore(), MemoryQueues()
    queues.fail_for.add(ProviderName.ALIYUN)
    with pytest.raises(RuntimeError):
        run([spec(to=GOOD)], store, queues)
    assert store.batches["B1"].state == "ACCEPTING"
    store.messages["B1.00000"] = store.messages["B1.00000"].model_copy(update={"status": Status.SUBMITTED})
    queues.fail_for.clear()
    run([spec(to=GOOD)], store, queues)
    assert store.batches["B1"].state == "QUEUED"
    assert store.messages["B1.00000"].status is Status.SUBMITTED  # not regressed to ACCEPTED
    assert len(queues.sent[ProviderName.ALIYUN]) == 1


def test_a_batch_with_nothing_accepted_is_recorded_as_rejected() -> None:
    store, queues = MemoryStore(), MemoryQueues()
    result = run([spec(to=["12345"])], store, queues)
    assert result.accepted == 0
    assert store.batches["B1"].state == "REJECTED"
    assert not queues.sent
