import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from globesms.models.api import MessageBatchSpec, MessageSpec, SendBody

body = TypeAdapter(SendBody)


def test_single_and_batch_bodies_parse_to_their_shapes() -> None:
    assert isinstance(body.validate_python({"to": "+85251234567", "text": "x"}), MessageSpec)
    parsed = body.validate_python({"messages": [{"to": ["+85251234567"], "template": {"id": "otp"}}]})
    assert isinstance(parsed, MessageBatchSpec)


@pytest.mark.parametrize(
    "fields",
    [
        {"to": "+85251234567"},  # neither text nor template
        {"to": "+85251234567", "text": "x", "template": {"id": "otp"}},  # both
        {"to": [], "text": "x"},
        {"to": "+85251234567", "text": ""},
        {"to": "+85251234567", "text": "x" * 1601},
        {"to": "+85251234567", "text": "x", "type": "SPAM"},
        {"to": "+85251234567", "text": "x", "sender_id": "Acme Corp"},
        {"to": "+85251234567", "text": "x", "sender_id": "AcmeCorpLtd1"},  # 12 chars with letters
        {"to": "+85251234567", "text": "x", "sender_id": "1234567890123456"},  # 16 digits
        {"to": "+85251234567", "text": "x", "validity_seconds": 10},
        {"to": "+85251234567", "text": "x", "provider": "twilio"},
        {"to": "+85251234567", "text": "x", "unknown": 1},
        {"to": "+85251234567", "template": {"id": "has space"}},
    ],
)
def test_specs_that_break_the_rules_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MessageSpec.model_validate(fields)


@pytest.mark.parametrize("sender", ["Acme", "AcmeCorpLtd", "123456789012345"])
def test_sender_ids_within_the_rules_pass(sender: str) -> None:
    assert MessageSpec.model_validate({"to": "+85251234567", "text": "x", "sender_id": sender}).sender_id == sender


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "to": json_values,
            "text": json_values,
            "template": json_values,
            "type": json_values,
            "messages": json_values,
            "sender_id": json_values,
        },
    )
)
def test_any_json_body_either_parses_or_raises_a_validation_error(candidate: dict[str, object]) -> None:
    with contextlib.suppress(ValidationError):
        body.validate_python(candidate)
