from datetime import UTC, datetime

import pytest

from globesms.accept.idempotency_outcomes import BatchDoneBefore
from globesms.accept.planning import AcceptPlan, TooManyRecipients, plan_batch
from globesms.accept.service import accept
from globesms.dispatch.sending import outbound_messages
from globesms.domain.status import Status
from globesms.models.api import MessageSpec
from globesms.models.outbound import ProviderName
from globesms.models.packs import DispatchPack
from globesms.providers.aliyun.client import message_violation
from globesms.routing.route_table import parse_route_table
from tests.fakes import MemoryQueues, MemoryStore
from tests.samples import REGISTRY

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


def test_an_otp_number_repeated_in_any_spec_is_sent_once() -> None:
    # One OTP per number per request (a second code voids the first); other types may carry different texts to one
    # number in different specs.
    store, queues = MemoryStore(), MemoryQueues()
    otp = [spec(to="+85251234567", text=f"Your code is {n}", type="OTP") for n in range(3)]
    notify = [spec(to="+85251234567", text=f"Order {n} shipped") for n in range(2)]
    result = run([*otp, *notify], store, queues)
    assert [(e.index, e.code) for e in result.errors] == [(1, "DUPLICATE_RECIPIENT"), (2, "DUPLICATE_RECIPIENT")]
    assert [m.id for m in result.messages] == ["B1.00000", "B1.00003", "B1.00004"]


def test_a_refused_recipient_does_not_make_a_later_one_to_its_number_a_duplicate() -> None:
    # The number was counted as seen before its route and content were checked: an OTP refused NO_ROUTE (free text
    # to +86) made the valid one after it a DUPLICATE_RECIPIENT, and the number got no code at all.
    store, queues = MemoryStore(), MemoryQueues()
    cn = "+8613800138000"
    otp_template = {"id": "1234567", "params": {"code": "123456"}}
    result = run(
        [
            spec(to=cn, text="Your code is 123456", type="OTP"),
            MessageSpec.model_validate({"to": cn, "template": otp_template, "type": "OTP"}),
            MessageSpec.model_validate({"to": cn, "template": otp_template, "type": "OTP"}),
        ],
        store,
        queues,
    )
    assert [(e.index, e.code) for e in result.errors] == [(0, "NO_ROUTE"), (2, "DUPLICATE_RECIPIENT")]
    assert [m.id for m in result.messages] == ["B1.00001"]


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


def test_a_repeated_accept_of_a_finished_batch_is_its_answer_again_and_sends_nothing() -> None:
    store, queues = MemoryStore(), MemoryQueues()
    first = run([spec(to=[*GOOD, "12345"])], store, queues)
    puts = store.put_calls
    store.messages["B1.00000"] = store.messages["B1.00000"].model_copy(update={"status": Status.DELIVERED})
    with pytest.raises(BatchDoneBefore) as done:
        run([spec(to=[*GOOD, "12345"])], store, queues)
    assert store.put_calls == puts
    assert len(queues.sent[ProviderName.ALIYUN]) == 1
    # The batch as it stands: its real statuses (not "QUEUED" for all), its counts and errors.
    again = done.value.answer
    assert [m.status for m in again.messages] == [Status.DELIVERED, Status.QUEUED, Status.QUEUED]
    assert again.model_copy(update={"messages": first.messages}) == first


def test_a_batch_id_minted_for_the_request_is_not_looked_up_first(mocker) -> None:  # type: ignore[no-untyped-def]
    """An API request without an Idempotency-Key gets a new id: no header can exist, so no read is spent on it (the
    conditional header write still catches anything)."""
    store, queues = MemoryStore(), MemoryQueues()
    looked_up = mocker.spy(store, "get_batch")
    accept(
        [spec(to=["+85251234567"])],
        batch_id="B1",
        source="api",
        now=NOW,
        retention_days=90,
        store=store,
        queues=queues,
        new_batch_id=True,
    )
    assert looked_up.call_count == 0 and store.batches["B1"].state == "QUEUED"
    run([spec(to=["+85251234567"])], store, queues, batch_id="B2")
    assert looked_up.call_count == 1


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


# ---- routing and templates ----

ROUTES = parse_route_table(
    {
        "version": 1,
        "default": {"text": [{"provider": "aliyun"}], "template": [{"provider": "tencent"}, {"provider": "huawei"}]},
        "countries": {
            "SG": {"template": [{"provider": "aliyun"}, {"provider": "tencent"}]},
            "GB": {"template": [{"provider": "tencent", "weight": 1}, {"provider": "huawei", "weight": 1}]},
        },
    },
    "test",
)
LOGIN = {"id": "login", "params": {"minutes": 5, "code": "123456"}}


def plan(*specs: dict[str, object], batch_id: str = "B1") -> AcceptPlan:
    return plan_batch(
        [MessageSpec.model_validate(s) for s in specs],
        batch_id=batch_id,
        now=NOW,
        retention_days=90,
        routes=ROUTES,
        templates=REGISTRY,
    )


def test_a_registered_template_is_rendered_for_each_provider_it_goes_to() -> None:
    result = plan({"to": ["+85251234567", "+6591234567", "+8613800138000"], "template": LOGIN})
    hk, sg, cn = result.records
    assert (hk.provider, hk.template_id, hk.template_params, hk.text) == (
        ProviderName.TENCENT,
        "1800308",
        {"code": "123456", "minutes": "5"},
        None,
    )
    assert list(cn.template_params or {}) == ["minutes", "code"]  # Huawei's order
    assert (cn.provider, cn.template_id) == (ProviderName.HUAWEI, "tplLogin")
    assert (sg.provider, sg.text, sg.template_id, sg.template_params, sg.segments) == (
        ProviderName.ALIYUN,
        "Acme: your code is 123456 (5 min)",
        None,
        {"code": "123456", "minutes": "5"},  # kept beside the text (not sent to Alibaba) for a failover to render
        1,
    )
    assert {r.template_ref for r in result.records} == {"login"}
    assert [r.route for r in result.records] == [
        (ProviderName.TENCENT, ProviderName.HUAWEI),
        (ProviderName.ALIYUN, ProviderName.TENCENT),
        (ProviderName.HUAWEI,),
    ]


def test_a_template_too_long_in_the_drawn_providers_version_goes_to_the_next_that_can_carry_it() -> None:
    # SG routes Alibaba first; its version renders these params past 10 parts, Tencent's carries them by its id. The
    # recipients the draw gave Alibaba were refused TEMPLATE_PARAMS while the others went out (a review).
    long_code = {"id": "login", "params": {"minutes": 5, "code": "\U0001f600" * 400}}
    result = plan({"to": [f"+659123{n:04d}" for n in range(10)], "template": long_code, "type": "OTP"})
    assert not result.errors
    assert {(r.provider, r.route) for r in result.records} == {(ProviderName.TENCENT, (ProviderName.TENCENT,))}


def test_a_failover_route_holds_only_the_providers_that_can_carry_the_rendered_template() -> None:
    # Drawn to Tencent, whose version carries it, the route still named Alibaba next, whose rendering is over 10
    # parts: a failover (the next provider only) stopped there (a review).
    template_route = [{"provider": "tencent"}, {"provider": "aliyun"}]
    routes = parse_route_table(
        {"version": 1, "default": {"text": [{"provider": "aliyun"}], "template": template_route}}, "test"
    )
    long_code = {"id": "login", "params": {"minutes": 5, "code": "\U0001f600" * 400}}
    result = plan_batch(
        [MessageSpec.model_validate({"to": "+85251234567", "template": long_code})],
        batch_id="B1", now=NOW, retention_days=90, routes=routes, templates=REGISTRY,
    )  # fmt: skip
    assert [(r.provider, r.route) for r in result.records] == [(ProviderName.TENCENT, (ProviderName.TENCENT,))]


def test_the_route_and_logical_id_travel_in_the_packs() -> None:
    result = plan({"to": "+85251234567", "template": LOGIN})
    (pack,) = result.packs[ProviderName.TENCENT]
    assert pack.contents[0].route == (ProviderName.TENCENT, ProviderName.HUAWEI)
    assert pack.contents[0].template_ref == "login"
    assert DispatchPack.model_validate_json(pack.model_dump_json()) == pack


def test_an_alibaba_rendering_is_free_text_to_the_alibaba_client() -> None:
    result = plan({"to": "+6591234567", "template": LOGIN})
    (message,) = outbound_messages(result.packs[ProviderName.ALIYUN][0])
    assert message_violation(message) is None
    assert message.text == "Acme: your code is 123456 (5 min)"


def test_a_provider_own_template_id_is_sent_as_it_is() -> None:
    result = plan({"to": ["+85251234567", "+8613800138000"], "template": {"id": "1234567", "params": {"b": 2, "a": 1}}})
    assert [(r.provider, r.template_id, r.template_params, r.template_ref, r.route) for r in result.records] == [
        (ProviderName.TENCENT, "1234567", {"b": "2", "a": "1"}, None, (ProviderName.TENCENT,)),
        (ProviderName.HUAWEI, "1234567", {"b": "2", "a": "1"}, None, (ProviderName.HUAWEI,)),
    ]


def test_free_text_records_its_route() -> None:
    (record,) = plan({"to": "+85251234567", "text": "hello"}).records
    assert (record.route, record.template_ref, record.segments) == ((ProviderName.ALIYUN,), None, 1)


def test_recipients_no_provider_can_carry_are_rejected_with_a_code() -> None:
    result = plan(
        {"to": ["+85251234567", "+8613800138000"], "template": {"id": "login", "params": {"code": "1"}}},
        {"to": "+8613800138000", "template": {"id": "promo"}},  # only Tencent has it; +86 goes through Huawei
        {"to": "+85251234567", "template": {"id": "promo"}, "provider": "huawei"},
        {"to": "+8613800138000", "text": "hi"},
        {"to": "+6591234567", "template": LOGIN},
    )
    assert [(e.index, e.code) for e in result.errors] == [
        (0, "TEMPLATE_PARAMS"),
        (1, "TEMPLATE_PARAMS"),
        (2, "TEMPLATE_UNKNOWN_FOR_PROVIDER"),
        (3, "TEMPLATE_UNKNOWN_FOR_PROVIDER"),
        (4, "NO_ROUTE"),
    ]
    assert "minutes" in result.errors[0].message
    assert [r.id for r in result.records] == ["B1.00005"]


def test_a_weighted_route_splits_a_batch_and_a_repeat_routes_everyone_the_same_way() -> None:
    to = [f"+447400123{n:03d}" for n in range(400)]
    first = plan({"to": to, "template": LOGIN})
    again = plan({"to": to, "template": LOGIN})
    providers = [r.provider for r in first.records]
    assert providers == [r.provider for r in again.records]
    share = providers.count(ProviderName.TENCENT) / len(providers)
    assert 0.4 < share < 0.6
    assert set(first.packs) == {ProviderName.TENCENT, ProviderName.HUAWEI}
    assert next(r.route for r in first.records if r.provider is ProviderName.HUAWEI) == (
        ProviderName.HUAWEI,
        ProviderName.TENCENT,
    )


def test_the_shipped_example_template_goes_through_accept() -> None:
    store, queues = MemoryStore(), MemoryQueues()
    template = {"id": "example-otp", "params": {"code": "123456", "minutes": "5"}}
    result = run([MessageSpec.model_validate({"to": GOOD, "template": template})], store, queues)
    assert result.accepted == 3
    assert {m.provider for m in result.messages} == {ProviderName.TENCENT}
    assert store.messages["B1.00000"].route == (ProviderName.TENCENT, ProviderName.HUAWEI, ProviderName.ALIYUN)


def test_the_answer_gives_each_recipients_segments_and_encoding() -> None:
    store, queues = MemoryStore(), MemoryQueues()
    template = {"id": "1234567", "params": {"code": "123456"}}
    result = run(
        [
            spec(to="+85251234567", text="a" * 161),
            spec(to="+6591234567", text="你好"),
            MessageSpec.model_validate({"to": "+447911123456", "template": template}),
        ],
        store,
        queues,
    )
    assert [(m.segments, m.encoding) for m in result.messages] == [(2, "GSM-7"), (1, "UCS-2"), (None, None)]
    # What the answer says is what the record keeps (and what dispatch sends).
    assert [store.messages[m.id].segments for m in result.messages] == [2, 1, None]
