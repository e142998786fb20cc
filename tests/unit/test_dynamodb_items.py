"""The messages table's item serialisation: its fast path gives exactly what boto3's TypeSerializer gives."""

from typing import Any

from boto3.dynamodb.types import TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from globesms.aws.message_items import from_item, message_from_item, message_item, to_item
from globesms.domain.status import Status
from globesms.models.outbound import MessageType, ProviderName
from globesms.models.records import MessageRecord

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(min_size=1, max_size=8), JSON_VALUES | st.frozensets(st.text(min_size=1)).map(set)))
def test_items_are_what_typeserializer_makes(data: dict[str, Any]) -> None:
    serializer = TypeSerializer()
    expected = {k: serializer.serialize(v) for k, v in data.items() if v is not None}
    assert to_item(data) == expected
    assert from_item(to_item(data)) == {k: v for k, v in data.items() if v is not None}


def _dumped_item(record: MessageRecord) -> dict[str, Any]:
    """`message_item` the general way: the record's JSON dump, serialised."""
    data = record.model_dump(mode="json", exclude_none=True)
    data["pk"], data["sk"] = f"B#{record.batch_id}", f"M#{int(record.id.rpartition('.')[2]):05d}"
    if record.provider_message_id:
        data["provider_ref"] = f"{record.provider}#{record.provider_message_id}"
    if record.template_params and len(record.template_params) > 1:
        data["template_param_order"] = list(record.template_params)
    return to_item(data)


_OPTIONAL_TEXT = st.none() | st.text(max_size=12)
_FRESH_RECORDS = st.builds(
    MessageRecord,
    id=st.integers(0, 99999).map(lambda seq: f"01JDTESTBATCH.{seq:05d}"),
    batch_id=st.just("01JDTESTBATCH"),
    to=st.just("+85251234567"),
    provider=st.sampled_from(ProviderName),
    status=st.sampled_from(Status),
    type=st.sampled_from(MessageType),
    text=_OPTIONAL_TEXT,
    template_id=_OPTIONAL_TEXT,
    template_params=st.none() | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    template_ref=_OPTIONAL_TEXT,
    route=st.none() | st.lists(st.sampled_from(ProviderName), max_size=3).map(tuple),
    sender_id=_OPTIONAL_TEXT,
    validity_seconds=st.none() | st.integers(1, 10**6),
    client_ref=_OPTIONAL_TEXT,
    status_callback=_OPTIONAL_TEXT,
    status_callback_on_submitted=st.none() | st.booleans(),
    segments=st.none() | st.integers(1, 10),
    provider_message_id=_OPTIONAL_TEXT,
    error_code=_OPTIONAL_TEXT,
    created_at=st.just("2026-01-02T03:04:05.000000Z"),
    updated_at=st.just("2026-01-02T03:04:05.000000Z"),
    expires_at=st.none() | st.integers(0, 2**40),
    version=st.integers(0, 5),
)


@given(_FRESH_RECORDS)
def test_a_record_without_receipts_gets_the_item_its_json_dump_makes(record: MessageRecord) -> None:
    item = message_item(record)
    assert item == _dumped_item(record)
    assert _plain(item)  # str enums equal their values: their values must be what is stored


def _plain(value: Any) -> bool:
    if type(value) is dict:
        return all(_plain(v) for v in value.values())
    if type(value) is list:
        return all(_plain(v) for v in value)
    return type(value) in (str, bool)


@given(_FRESH_RECORDS, st.booleans(), st.randoms())
def test_template_params_read_back_in_their_written_order_whatever_order_dynamodb_returns(
    record: MessageRecord, with_events: bool, shuffle: Any
) -> None:
    """DynamoDB keeps a map's keys in an order of its own; Tencent's and Huawei's templates take params by position:
    a resend queued again from the stored record swapped an OTP's code and minutes."""
    if with_events:  # the other way a record is written: with its receipts
        record = record.model_copy(update={"events": [{"id": "r1", "status": "DELIVERED"}], "receipt_ids": {"r1"}})
    item = message_item(record)
    if "template_params" in item:
        returned = list(item["template_params"]["M"].items())
        shuffle.shuffle(returned)  # as DynamoDB may return them
        item["template_params"] = {"M": dict(returned)}
    read = message_from_item(item)
    assert list((read.template_params or {}).items()) == list((record.template_params or {}).items())
