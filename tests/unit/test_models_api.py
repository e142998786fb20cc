import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from globesms.models.api import MessageBatchSpec, MessageSpec, SendBody
from globesms.validation import problems

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


# A text is limited in SMS parts (what a recipient's phone joins, and what a provider bills), not in characters:
# 1,600 emoji passed the old 1,600-character limit as 48 parts.
@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("😀" * 1_600, 49),  # outside the BMP: a surrogate pair each, never split: 33 a part
        ("😀" * 331, 11),  # 662 units, but 33 a part (the 34th would straddle two parts)
        ("验" * 671, 11),  # UCS-2: 67 units a part
        ("x" * 1_531, 11),  # GSM-7: 153 septets a part
        ("{" * 761, 11),  # GSM-7 extension characters take two septets, never split: 76 a part
    ],
)
def test_a_text_over_the_parts_limit_is_refused_naming_the_parts(text: str, parts: int) -> None:
    from globesms.models.limits import MAX_TEXT_SEGMENTS

    with pytest.raises(ValidationError) as info:
        MessageSpec.model_validate({"to": "+85251234567", "text": text})
    (error,) = info.value.errors()
    assert error["loc"] == ("text",)
    assert f"at most {MAX_TEXT_SEGMENTS} SMS parts" in error["msg"] and f"this text is {parts}" in error["msg"]


@pytest.mark.parametrize("text", ["😀" * 330, "验" * 670, "x" * 1_530, "{" * 760, "x" * 160])
def test_a_text_of_ten_parts_or_fewer_passes(text: str) -> None:
    assert MessageSpec.model_validate({"to": "+85251234567", "text": text}).text == text


def _refusal(fields: dict[str, object]) -> tuple[tuple[str | int, ...], str]:
    with pytest.raises(ValidationError) as info:
        MessageSpec.model_validate({"to": "+85251234567", **fields})
    (error,) = info.value.errors()
    return error["loc"], error["msg"]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("code\x00 1234", "U+0000"),
        ("pay \u202eRSU 001\u202c now", "U+202E"),  # right-to-left override: shows the amount reversed
        ("\u2067isolate\u2069", "U+2067"),
        ("esc\x1b[31m", "U+001B"),
        ("bom\ufeffinside", "U+FEFF"),
        ("c1\x85control", "U+0085"),
        ("lone \ud800 surrogate", "unicode"),  # pydantic's own rule: no provider's encoding can carry one
    ],
)
def test_control_and_bidi_override_characters_in_text_are_refused_by_name(text: str, named: str) -> None:
    location, rule = _refusal({"text": text})
    assert location == ("text",) and named in rule


@pytest.mark.parametrize(
    "text",
    [
        "line one\nline two\r\n\tindented",  # newline, carriage return and tab are what multi-line texts are made of
        "👩\u200d💻 team",  # ZWJ joins emoji sequences
        "می\u200cخواهم",  # noqa: RUF001 - ZWNJ is spelling in Persian (and Indic scripts)
        "\u200fשלום 123",  # noqa: RUF001 - RLM/LRM mark direction without overriding it
        "สวัสดี\u200bครับ",  # ZWSP separates words in Thai, Khmer, Lao and Burmese
        "café ünïcode 😀",
    ],
)
def test_characters_legitimate_in_sms_text_pass(text: str) -> None:
    assert MessageSpec.model_validate({"to": "+85251234567", "text": text}).text == text.strip()


@pytest.mark.parametrize("ref", ["order\x00-42", "order-\u202e24", "order\u200b-42", "order\n42", "ref\u2028x"])
def test_client_ref_must_be_printable_without_invisible_characters(ref: str) -> None:
    location, rule = _refusal({"text": "x", "client_ref": ref})
    assert location == ("client_ref",) and "U+" in rule


def test_an_ordinary_client_ref_passes() -> None:
    spec = MessageSpec.model_validate({"to": "+85251234567", "text": "x", "client_ref": "order-42 / Zürich #7"})
    assert spec.client_ref == "order-42 / Zürich #7"


@pytest.mark.parametrize("name", ["co\u200bde", "code\x00", "\u202ecode", "co\tde"])
def test_template_parameter_names_must_be_printable(name: str) -> None:
    location, rule = _refusal({"template": {"id": "otp", "params": {name: "1234"}}})
    assert location == ("template", "params") and "U+" in rule


@pytest.mark.parametrize("value", ["12\x0034", "\u202e4321"])
def test_template_parameter_values_follow_the_text_rules(value: str) -> None:
    location, rule = _refusal({"template": {"id": "otp", "params": {"code": value}}})
    assert location == ("template", "params") and "U+" in rule


@pytest.mark.parametrize("value", ["", "   "])
def test_a_template_parameter_value_is_not_empty(value: str) -> None:
    """Spaces are stripped; an empty value no provider takes (Huawei refused it at dispatch, FAILED after accept)."""
    with pytest.raises(ValidationError) as info:
        MessageSpec.model_validate({"to": "+85251234567", "template": {"id": "otp", "params": {"code": value}}})
    first = info.value.errors()[0]  # then: nor is it an integer
    assert first["loc"][:3] == ("template", "params", "code") and "at least 1 character" in first["msg"]


def test_an_otp_cannot_be_scheduled_by_its_own_send_at_or_the_requests() -> None:
    """The refusal names the send_at field, as every send_at rule does (docs/scheduling.md); it named `body` or
    `messages.1`, with the field's name at the start of the rule."""
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    otp = {"to": "+85251234567", "text": "Your code is 123456", "type": "OTP"}
    notify = {**otp, "type": "NOTIFY"}
    cases = [
        ({**otp, "send_at": later}, "send_at", "an OTP cannot be scheduled"),
        ({"messages": [notify, {**otp, "send_at": later}]}, "messages.1.send_at", "an OTP cannot be scheduled"),
        ({"messages": [notify, otp], "send_at": later}, "send_at", "it would reach messages.1, an OTP: an OTP cannot"),
    ]
    for body, field, rule in cases:
        with pytest.raises(ValidationError) as refused:
            TypeAdapter(SendBody).validate_python(body)
        [(named, said)] = problems(refused.value)
        assert named == field and said.startswith(rule), (named, said)
    # A NOTIFY may be scheduled, by its own send_at or the request's.
    assert MessageSpec.model_validate({**notify, "send_at": later}).send_at is not None
    assert MessageBatchSpec.model_validate({"messages": [{**otp, "type": "MKT"}], "send_at": later}).send_at


@pytest.mark.parametrize("value", [True, False, 5.0, None, [1]])
def test_a_template_parameter_is_a_string_or_an_integer_as_written(value: object) -> None:
    # Read laxly, `true` became 1 and `5.0` 5: an OTP went out with the code "1" rather than a 422.
    with pytest.raises(ValidationError):
        MessageSpec.model_validate(
            {"to": ["+85251234567"], "template": {"id": "example-otp", "params": {"code": value}}}
        )
