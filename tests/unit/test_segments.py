import pytest

from globesms.domain.segments import count_segments, text_encoding


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extended GSM-7 characters take two septets
        ("€" * 81, 2),
        ("你" * 70, 1),
        ("你" * 71, 2),
        ("你" * 134, 2),
        ("你" * 135, 3),
        ("😀" * 35, 1),  # outside the BMP: two UTF-16 units each
        ("😀" * 36, 2),
        # A character is never split across two parts: an escape and its character, a surrogate pair.
        ("a" * 152 + "€" + "a" * 152, 3),  # 306 septets, but the € cannot start in part 1's last septet
        ("a" * 151 + "€" + "a" * 152, 2),  # 305: it fits at part 1's end
        ("你" * 66 + "😀" + "你" * 66, 3),  # 134 UTF-16 units, the emoji would straddle parts 1 and 2
        ("你" * 65 + "😀" + "你" * 67, 2),
    ],
)
def test_segments_follow_gsm7_and_ucs2_limits(text: str, segments: int) -> None:
    assert count_segments(text) == segments


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Your code is 123456", "GSM-7"),
        ("Prix: 10€ [promo] ~ {x}", "GSM-7"),  # the extended table is GSM-7 too (two septets each)
        ("Ñandù à Ø", "GSM-7"),
        ("你好", "UCS-2"),
        ("code 123456 😀", "UCS-2"),
        ("naïve", "UCS-2"),  # ï is not in the GSM 03.38 alphabet
    ],
)
def test_encoding_is_gsm7_only_when_every_character_is_in_its_alphabet(text: str, encoding: str) -> None:
    assert text_encoding(text) == encoding
