"""The opt-out list: numbers that asked not to be texted, per owner, and the rule accept applies.

An entry keeps when and how it was added (through the API, by a reply keyword, or reported by a provider) and stays
until it is removed; a number already listed keeps its first entry (adding it again changes nothing). Until API keys
have owners (the guardrails work) there is one list, `DEFAULT_OWNER`; the owner is a key part everywhere so that a
list per key is a change of the value passed, not of the storage.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

import phonenumbers
from pydantic import Field

from globesms.consent.rules import DEFAULT_OWNER
from globesms.domain.phone import stray_character
from globesms.models.base import Model
from globesms.ports import OptOutStore

MAX_PAGE: Final = 500
E164_PATTERN: Final = r"^\+[1-9][0-9]{1,14}$"


class OptOutSource(StrEnum):
    API = "api"  # PUT /v1/opt-outs/{number}
    REPLY = "reply"  # a reply keyword (STOP, 退订, ...)
    PROVIDER = "provider"  # a provider reported the number as opted out


class OptOutEntry(Model):
    """One listed number."""

    number: str = Field(description="E.164")
    added_at: str = Field(description="when it was added (ISO 8601, UTC)")
    source: OptOutSource = Field(description="how it was added: api, reply (a keyword) or provider")
    reason: str | None = Field(default=None, description="the reason given when it was added through the API")
    provider: str | None = Field(default=None, description="the provider whose reply or report added it")
    keyword: str | None = Field(default=None, description="the reply keyword that added it")


class OptOutPage(Model):
    opt_outs: list[OptOutEntry]
    next: str | None = Field(description="pass as `after` for the next page; null at the end")


class NotANumber(ValueError):
    """A number the opt-out list cannot key: not a valid international number."""


def normalise(raw: str) -> str:
    """E.164 of a number written with `+` (spaces, dashes, dots, brackets allowed): `+65 9123-4567` and
    `+6591234567` are one entry. Any valid number (not only mobiles: a number is listed as the person gave it)."""
    text = raw.strip()
    if not text.startswith("+"):
        raise NotANumber("must be in international format starting with '+' (E.164)")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise NotANumber("not a phone number") from None
    if number.extension or not phonenumbers.is_valid_number(number):
        raise NotANumber("not a valid number for its country")
    stray = stray_character(text)
    if stray is not None:  # a number other than the one written: the person listed would be somebody else
        raise NotANumber(f"contains {stray}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def add(store: OptOutStore, entry: OptOutEntry, *, owner: str = DEFAULT_OWNER) -> tuple[OptOutEntry, bool]:
    """List the number; the entry now stored (the first one when it was listed already) and whether it is new."""
    if store.put_opt_out(owner, entry.number, entry.model_dump(mode="json", exclude_none=True)):
        return entry, True
    stored = store.get_opt_out(owner, entry.number)
    return (OptOutEntry.model_validate(stored) if stored is not None else entry), False


def get(store: OptOutStore, number: str, *, owner: str = DEFAULT_OWNER) -> OptOutEntry | None:
    stored = store.get_opt_out(owner, number)
    return None if stored is None else OptOutEntry.model_validate(stored)


def remove(store: OptOutStore, number: str, *, owner: str = DEFAULT_OWNER) -> OptOutEntry | None:
    removed = store.delete_opt_out(owner, number)
    return None if removed is None else OptOutEntry.model_validate(removed)


def page(store: OptOutStore, *, after: str | None, limit: int, owner: str = DEFAULT_OWNER) -> OptOutPage:
    items, last = store.page_opt_outs(owner, after=after, limit=limit)
    return OptOutPage(opt_outs=[OptOutEntry.model_validate(i) for i in items], next=last)


class OptOutRequest(Model):
    """The optional body of PUT /v1/opt-outs/{number}."""

    model_config = {"extra": "forbid"}

    reason: str | None = Field(default=None, min_length=1, max_length=256, description="why, for the record")
