"""Reply keywords: which replies put a number on the opt-out list and which take it off.

The sets are data: `globesms/data/keywords.json` (the markets served: English STOP words, 退订 and TD/T for the
Chinese mainland, R as Huawei documents for marketing opt-outs), replaced whole by GLOBESMS_REPLY_KEYWORDS (the same
JSON shape). A reply matches when its whole text, trimmed (of punctuation around it too: "Stop."), in any case (and
in full-width letters, which Chinese phones type), is one keyword: "please stop" or "STOP IT" is only stored, since
a word inside a sentence is not a request to be removed (and "T" alone as a substring would match almost anything).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from enum import StrEnum
from functools import cache
from importlib import resources

from pydantic import Field, ValidationError

from globesms.models.base import Model
from globesms.validation import describe


class KeywordAction(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"


class KeywordSets(Model):
    model_config = {"extra": "forbid", "frozen": True}

    opt_out: frozenset[str] = Field(min_length=1)
    opt_in: frozenset[str] = Field(default_factory=frozenset)

    def match(self, text: str) -> tuple[str, KeywordAction] | None:
        """The keyword `text` is (as written in the sets) and what it does, or None. First as written, trimmed of
        whitespace and punctuation (`folded`); then, for a reply of two letters or more once trimmed of the
        symbols and emoji around it too (`stripped`): "STOP 🛑" is STOP, but "R$" or "T👍" is no single-letter
        opt-out, and a keyword written with a symbol ("STOP+", an emoji) still matches as written first."""
        return self._find(folded(text), folded) or self._find(stripped(text), stripped, at_least=2)

    def _find(self, said: str, fold: Callable[[str], str], *, at_least: int = 1) -> tuple[str, KeywordAction] | None:
        if len(said) < at_least:
            return None
        for action, keywords in ((KeywordAction.OPT_OUT, self.opt_out), (KeywordAction.OPT_IN, self.opt_in)):
            for keyword in sorted(keywords):
                if fold(keyword) == said:
                    return keyword, action
        return None


def folded(text: str) -> str:
    """NFKC (full-width letters are plain ones), case folded, whitespace collapsed, trimmed: of whitespace, of the
    punctuation people end a word with ("Stop.", "STOP!", "退订。": a person who wrote that asked to be removed as
    much as one who wrote "STOP") and of invisible format characters (a BOM or a zero-width space a keyboard put
    in front). Punctuation inside ("S.T.O.P") stays: such a reply is only stored."""
    visible = "".join(c for c in unicodedata.normalize("NFKC", text) if unicodedata.category(c) != "Cf")
    return _trimmed(" ".join(visible.casefold().split()), _punctuation)


def stripped(text: str) -> str:
    """`folded`, and trimmed of the symbols and emoji around it as well ("STOP 🛑", "<STOP>", with their
    variation selectors and skin tones; until 2026-12-07 such a reply was only stored, and the person still
    texted). A symbol inside ("STOP😡NOW") stays."""
    return _trimmed(folded(text), _punctuation_or_symbol)


def _trimmed(text: str, edge: Callable[[str], bool]) -> str:
    start, end = 0, len(text)
    while start < end and edge(text[start]):
        start += 1
    while end > start and edge(text[end - 1]):
        end -= 1
    return text[start:end]


def _punctuation(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("P")


def _punctuation_or_symbol(char: str) -> bool:
    return _punctuation(char) or unicodedata.category(char).startswith("S") or _variation_selector(char)


def _variation_selector(char: str) -> bool:
    """U+FE00-FE0F and U+E0100-E01EF: they only choose how the emoji before them is drawn ("❤️" is ❤ and U+FE0F)."""
    return "\ufe00" <= char <= "\ufe0f" or "\U000e0100" <= char <= "\U000e01ef"


def parse_keywords(document: str) -> KeywordSets:
    """Keyword sets from JSON; raises ValueError naming the field and the rule."""
    try:
        sets = KeywordSets.model_validate_json(document)
    except ValidationError as exc:
        raise ValueError(describe(exc, default="keywords")) from None
    both = {folded(k) for k in sets.opt_out} & {folded(k) for k in sets.opt_in}
    if both:
        raise ValueError(f"opt_out and opt_in share keywords: {sorted(both)}")
    return sets


@cache
def shipped() -> KeywordSets:
    return parse_keywords(resources.files("globesms").joinpath("data", "keywords.json").read_text(encoding="utf-8"))


def keyword_sets(override: str) -> KeywordSets:
    """The override (GLOBESMS_REPLY_KEYWORDS) when one is set, else the shipped sets."""
    return _parsed(override) if override else shipped()


@cache
def _parsed(document: str) -> KeywordSets:
    return parse_keywords(document)
