import json

from hypothesis import given, settings
from hypothesis import strategies as st

from globesms.accept.packing import pack_records
from globesms.domain.provider_limits import PACK_BYTES_BUDGET, RECIPIENTS_PER_CALL
from globesms.domain.status import Status
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.records import MessageRecord, message_id

NOW = "2026-11-26T10:00:00.000000Z"


def record(seq: int, provider: ProviderName, text: str | None = "hello", template: str | None = None) -> MessageRecord:
    return MessageRecord(
        id=message_id("B", seq),
        batch_id="B",
        to=f"+8525{seq:07d}",
        provider=provider,
        type=MessageType.NOTIFY,
        status=Status.ACCEPTED,
        text=None if template else text,
        template_id=template,
        template_params={"code": str(seq)} if template else None,
        created_at=NOW,
        updated_at=NOW,
    )


def test_packs_respect_each_providers_per_call_cap() -> None:
    records = [record(i, ProviderName.ALIYUN) for i in range(2_500)]
    records += [record(i, ProviderName.TENCENT, template="otp") for i in range(2_500, 2_950)]
    records += [record(i, ProviderName.HUAWEI, template="otp") for i in range(3_000, 4_001)]
    packs = pack_records(records, batch_id="B", created_at=NOW, expires_at=None)
    assert [len(p.recipients) for p in packs[ProviderName.ALIYUN]] == [1000, 1000, 500]
    assert [len(p.recipients) for p in packs[ProviderName.TENCENT]] == [200, 200, 50]
    assert [len(p.recipients) for p in packs[ProviderName.HUAWEI]] == [500, 500, 1]


def test_shared_content_is_stored_once_per_pack() -> None:
    packs = pack_records(
        [record(i, ProviderName.ALIYUN) for i in range(1000)], batch_id="B", created_at=NOW, expires_at=None
    )
    (pack,) = packs[ProviderName.ALIYUN]
    assert len(pack.contents) == 1
    assert {r.c for r in pack.recipients} == {0}


def test_large_distinct_contents_split_by_bytes_under_the_sqs_limit() -> None:
    records = [record(i, ProviderName.ALIYUN, text=f"{i} " + "x" * 1_500) for i in range(1000)]
    packs = pack_records(records, batch_id="B", created_at=NOW, expires_at=None)[ProviderName.ALIYUN]
    assert len(packs) > 1
    for pack in packs:
        assert len(pack.model_dump_json(exclude_none=True).encode()) <= PACK_BYTES_BUDGET + 2_000


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(list(ProviderName)), st.sampled_from(["a", "b", "é" * 300, None])),
        min_size=1,
        max_size=600,
    )
)
def test_every_record_lands_in_exactly_one_pack_in_order(spec: list[tuple[ProviderName, str | None]]) -> None:
    records = [
        record(i, provider, text=text or "t", template="otp" if provider is not ProviderName.ALIYUN else None)
        for i, (provider, text) in enumerate(spec)
    ]
    packs = pack_records(records, batch_id="B", created_at=NOW, expires_at=None)
    for provider, provider_packs in packs.items():
        ids = [r.id for p in provider_packs for r in p.recipients]
        assert ids == [r.id for r in records if r.provider is provider]
        assert len({p.pack_id for p in provider_packs}) == len(provider_packs)
        for pack in provider_packs:
            assert len(pack.recipients) <= RECIPIENTS_PER_CALL[provider]
            for recipient in pack.recipients:
                original = next(r for r in records if r.id == recipient.id)
                content = pack.contents[recipient.c]
                assert (content.text, content.template_params) == (original.text, original.template_params)
            json.loads(pack.model_dump_json())


def test_pack_ids_are_deterministic() -> None:
    records = [record(i, ProviderName.ALIYUN) for i in range(10)]
    first = pack_records(records, batch_id="B", created_at=NOW, expires_at=None)
    second = pack_records(records, batch_id="B", created_at=NOW, expires_at=None)
    assert [p.pack_id for p in first[ProviderName.ALIYUN]] == [p.pack_id for p in second[ProviderName.ALIYUN]]


def test_alibaba_otp_packs_stay_small_because_each_recipient_is_one_call() -> None:
    otp = [record(i, ProviderName.ALIYUN).model_copy(update={"type": MessageType.OTP}) for i in range(120)]
    notify = [record(i, ProviderName.ALIYUN) for i in range(120, 1120)]
    packs = pack_records(otp + notify, batch_id="B", created_at=NOW, expires_at=None)[ProviderName.ALIYUN]
    assert sorted(len(p.recipients) for p in packs) == [20, 50, 50, 1000]
    assert len({p.pack_id for p in packs}) == 4


def test_priced_recipients_carry_price_cost_and_owner_and_stay_within_the_byte_budget() -> None:
    """What a 1,000-recipient Aliyun pack of priced, owned records weighs: within the budget the packer counted."""
    records = [
        record(i, ProviderName.ALIYUN, text=f"{i} " + "x" * 200).model_copy(
            update={"price": "0.0440", "cost": "0.1320", "currency": "USD", "owner": "k1a2b3c4d5", "encoding": "GSM-7"}
        )
        for i in range(1000)
    ]
    packs = pack_records(records, batch_id="B", created_at=NOW, expires_at=None)[ProviderName.ALIYUN]
    assert sum(len(p.recipients) for p in packs) == 1000
    for pack in packs:
        assert (pack.owner, pack.currency) == ("k1a2b3c4d5", "USD")
        assert {(r.price, r.cost, r.encoding) for r in pack.recipients} == {("0.0440", "0.1320", "GSM-7")}
        assert len(pack.model_dump_json(exclude_none=True).encode()) <= PACK_BYTES_BUDGET + 2_000
