"""The price table: what one SMS part costs, by provider x country x message type, as data.

Shipped as `globesms/data/prices.json`; the SSM parameter `<GLOBESMS_GUARDRAILS_PARAMETERS>/prices` replaces it
(`documents.py`: re-read every 5 minutes, bad data refused with the last good table kept).

    {"version": 1, "currency": "USD", "as_of": "2026-12-01",
     "prices": {"aliyun": {"HK": {"*": "0.0440", "MKT": "0.0500"}}}}

A country's `"*"` prices every type it does not name. Prices are decimal strings (exact: no binary fractions in
money), per SMS part, in the table's one currency. A recipient whose provider x country has no price is still sent;
it has no price or cost, and a spend limit refuses it (`PRICE_UNKNOWN`), since it cannot be counted.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from globesms.config import GuardrailsSettings, settings
from globesms.domain.money import money
from globesms.guardrails.documents import OverridableDocument
from globesms.models.base import Model
from globesms.models.outbound import MessageType, ProviderName

Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2")]
Price = Annotated[Decimal, Field(ge=0, le=100, decimal_places=6, allow_inf_nan=False)]
TypeKey = MessageType | Literal["*"]


class _Doc(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceTableDoc(_Doc):
    version: Literal[1]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = Field(description="ISO 4217")
    as_of: dt.date
    note: str = ""
    prices: dict[ProviderName, dict[Country, dict[TypeKey, Price]]]

    def price(self, provider: ProviderName, country: str | None, message_type: MessageType) -> Decimal | None:
        by_type = self.prices.get(provider, {}).get(country or "")
        if by_type is None:
            return None
        found = by_type.get(message_type)
        return found if found is not None else by_type.get("*")


__all__ = ["PriceTableDoc", "current_prices", "money", "reset_cache"]

_table = OverridableDocument(PriceTableDoc, "prices.json")


def current_prices() -> PriceTableDoc:
    return _table.current(settings(GuardrailsSettings).parameter("prices"))


def reset_cache() -> None:
    _table.reset()
