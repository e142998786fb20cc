import pytest
from hypothesis import given
from hypothesis import strategies as st

from globesms.domain.phone import InvalidNumber, mask, parse_mobile


@pytest.mark.parametrize(
    ("raw", "e164", "country"),
    [
        ("+85251234567", "+85251234567", 852),
        ("+852 5123 4567", "+85251234567", 852),
        ("+65-9123-4567", "+6591234567", 65),
        ("+44 7911 123456", "+447911123456", 44),
        ("+86 138 0013 8000", "+8613800138000", 86),
        (" +1 (201) 555-0123 ", "+12015550123", 1),
    ],
)
def test_valid_mobile_numbers_are_normalised_to_e164(raw: str, e164: str, country: int) -> None:
    parsed = parse_mobile(raw)
    assert parsed.e164 == e164
    assert parsed.country_code == country


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("85251234567", "INVALID_NUMBER"),  # no +
        ("+", "INVALID_NUMBER"),
        ("+abc", "INVALID_NUMBER"),
        ("+8525123", "INVALID_NUMBER"),  # too short for Hong Kong
        ("+85221234567", "NOT_MOBILE"),  # Hong Kong fixed line
        ("+442071234567", "NOT_MOBILE"),  # London landline
    ],
)
def test_invalid_or_landline_numbers_are_refused_with_a_code(raw: str, code: str) -> None:
    with pytest.raises(InvalidNumber) as info:
        parse_mobile(raw)
    assert info.value.code == code


@given(st.text(max_size=40))
def test_parsing_never_fails_other_than_invalid_number(raw: str) -> None:
    try:
        parsed = parse_mobile(raw)
    except InvalidNumber:
        return
    assert parsed.e164.startswith("+") and parsed.e164[1:].isdigit()


def test_mask_keeps_prefix_and_last_two_digits_only() -> None:
    assert mask("+85251234567") == "+852******67"
    assert "5123" not in mask("+85251234567")
    assert mask("+1234") == "*****"


@pytest.mark.parametrize(
    "raw", ["+85251234567 ext 9", "+85251234567;ext=9", "+85251234567 x9", "+85251234567#9", "+85251234567 ext. 9"]
)
def test_a_number_with_an_extension_is_refused_not_sent_without_it(raw: str) -> None:
    # phonenumbers parses the extension apart, and the number alone used to be sent: to the switchboard's mobile, or
    # to nobody the client meant.
    with pytest.raises(InvalidNumber) as info:
        parse_mobile(raw)
    assert info.value.code == "INVALID_NUMBER" and "extension" in str(info.value)


@pytest.mark.parametrize("raw", ["+852\u200b51234567", "+85251234567\x00", "+852\u202e51234567", "+852\u206651234567"])
def test_a_number_with_control_or_invisible_characters_is_refused(raw: str) -> None:
    with pytest.raises(InvalidNumber) as info:
        parse_mobile(raw)
    assert info.value.code == "INVALID_NUMBER" and "invisible" in str(info.value)
