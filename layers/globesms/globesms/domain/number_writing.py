"""How a phone number may be written (pure, standard library only): accept refuses any other character
(`domain.phone.stray_character`), and the log filter masks every number written this way (`domain.masking`), which
must not import phonenumbers (~15 ms) to know it."""

from __future__ import annotations

#: Besides a leading `+`, digits (of any script: phonenumbers reads them as digits) and spaces, what a number may be
#: written with: the separators phonenumbers skips (its VALID_PUNCTUATION: dashes of every kind, as Word or a CJK
#: input method writes them, dots, slashes and brackets, fullwidth ones too), but its "x", a letter, its tildes, which
#: it reads as an extension's mark when they stand between digits, and the invisible ones, refused before as format
#: characters. They never change the number. phonenumbers reads more, and each is a number other than the one
#: written: letters as a keypad's ("+85251234OOO" is +85251234666), RFC 3966 parameters it drops (";isub=1"),
#: trailing text (" x").
NUMBER_SEPARATORS: frozenset[str] = frozenset(
    "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\uff0d"  # dashes, the minus sign, the Japanese long vowel mark
    ".\uff0e/\uff0f"  # dots, slashes
    "()[]\uff08\uff09\uff3b\uff3d"  # brackets
)
NUMBER_WRITING = "a number is written with '+', digits, spaces and separators (dashes, dots, slashes, brackets) only"
