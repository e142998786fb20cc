"""The messages table's item serialisation: its fast path gives exactly what boto3's TypeSerializer gives."""

from typing import Any

from boto3.dynamodb.types import TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from globesms.aws.dynamodb_store import from_item, to_item

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
