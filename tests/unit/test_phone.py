import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from globesms.domain.masking import mask
from globesms.domain.phone import InvalidNumber, parse_mobile


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


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("+85251234OOO", "LATIN CAPITAL LETTER O"),  # phonenumbers read the letters as a keypad's: +85251234666
        ("+852 5123 4567 x", "LATIN SMALL LETTER X"),  # dropped
        ("+85251234567;isub=1", "SEMICOLON"),  # an RFC 3966 parameter, dropped
        ("+852*51234567", "ASTERISK"),
    ],
)
def test_a_number_written_with_anything_but_digits_and_separators_is_refused(raw: str, named: str) -> None:
    # Each was sent to a number other than the one written (a review): nobody's, or somebody else's.
    with pytest.raises(InvalidNumber) as info:
        parse_mobile(raw)
    assert info.value.code == "INVALID_NUMBER" and named in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        "+\uff18\uff15\uff12\u00a05123\u00a04567",  # fullwidth digits, no-break spaces
        "+852 5123\u20134567",  # an en dash, as a word processor writes it
        "+852\u22125123\u20114567",  # the minus sign, a non-breaking hyphen
        "+852\uff0d5123\uff0e4567",  # a CJK input method's fullwidth hyphen and full stop
        "+852\u30fc5123\u30fc4567",  # the Japanese long vowel mark as a dash
        "+\uff08852\uff09 [5123] 4567",  # fullwidth and square brackets
        "+49 171/1234567",  # a German slash
    ],
)
def test_digits_of_any_script_and_the_separators_phonenumbers_skips_are_a_numbers_writing(raw: str) -> None:
    # Refusing them refused numbers people write every day (a review of the change that refuses letters).
    assert parse_mobile(raw).e164 in ("+85251234567", "+491711234567")


@pytest.mark.parametrize("raw", ["+852\u200b51234567", "+85251234567\x00", "+852\u202e51234567", "+852\u206651234567"])
def test_a_number_with_control_or_invisible_characters_is_refused(raw: str) -> None:
    with pytest.raises(InvalidNumber) as info:
        parse_mobile(raw)
    assert info.value.code == "INVALID_NUMBER" and "invisible" in str(info.value)


Verdict = tuple[str, str | None, str | None, int | None]


def _public_verdict(raw: str) -> Verdict:
    """What `parse_mobile` decides, from phonenumbers' public calls alone (as it was written before it classified
    each number once)."""
    import phonenumbers

    text = raw.strip()
    if not text.startswith("+"):
        return ("INVALID_NUMBER", None, None, None)
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return ("INVALID_NUMBER", None, None, None)
    if not phonenumbers.is_valid_number(number):
        return ("INVALID_NUMBER", None, None, None)
    if phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        return ("NOT_MOBILE", None, None, None)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return ("OK", e164, phonenumbers.region_code_for_number(number), number.country_code)


def _our_verdict(raw: str) -> Verdict:
    try:
        parsed = parse_mobile(raw)
    except InvalidNumber as exc:
        return (exc.code, None, None, None)
    return ("OK", parsed.e164, parsed.region, parsed.country_code)


def _example_numbers() -> list[str]:
    """Every region's and non-geographic code's example numbers of every type, each also with its last digit
    changed or one more digit (often invalid), with the region's national prefix written after the country code
    (which parsing drops where what is left is possible), and spaced out (the general path)."""
    import phonenumbers

    examples = [
        (phonenumbers.example_number_for_type(region, kind), region)
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
        for kind in range(12)
    ] + [
        (phonenumbers.example_number_for_non_geo_entity(code), "001")
        for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)
    ]
    found = []
    for example, region in examples:
        if example is None:
            continue
        e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        code = f"+{example.country_code}"
        national = e164.removeprefix(code)
        prefix = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(example.country_code, region)
        trunk = (prefix.national_prefix if prefix is not None else None) or "0"
        found += [
            e164,
            e164[:-1] + str((int(e164[-1]) + 3) % 10),
            e164 + "1",
            code + trunk + national,
            f"{code} {national[:3]} {national[3:]}",
        ]
    return found


def test_parse_mobile_decides_as_phonenumbers_public_calls_do() -> None:
    numbers = _example_numbers()
    assert len(numbers) > 4000  # every region, landlines and mobiles
    assert [_our_verdict(raw) for raw in numbers] == [_public_verdict(raw) for raw in numbers]


@settings(max_examples=400)
@given(st.from_regex(r"\+[1-9][0-9]{0,18}", fullmatch=True))
def test_parse_mobile_decides_as_phonenumbers_on_any_digits(raw: str) -> None:
    assert _our_verdict(raw) == _public_verdict(raw)


@settings(max_examples=400)
@given(
    st.sampled_from(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)),
    st.from_regex(r"0{0,2}[0-9]{3,13}", fullmatch=True),
)
def test_parse_mobile_decides_as_phonenumbers_after_any_country_code(code: int, national: str) -> None:
    raw = f"+{code}{national}"
    assert _our_verdict(raw) == _public_verdict(raw)


def test_a_non_geographic_number_has_the_country_zz_wherever_it_is_worked_out() -> None:
    # phonenumbers' region for +881 is "001", which no list of countries (routes, prices, permissions, pumping
    # releases) can name; the route statistics' fallback for records without a country named it so too (a review).
    from globesms.stats.tally import country_of

    parsed = parse_mobile("+881612340001")
    assert (parsed.region, parsed.country) == ("001", "ZZ")
    assert country_of("+881612340001") == "ZZ" and country_of("+85251234567") == "HK"
