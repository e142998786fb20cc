"""Spend limits as data: a monthly limit for the whole deployment and, optionally, per API key, in the price table's
currency. Shipped as `globesms/data/limits.json` (no limit); the SSM parameter `<GLOBESMS_GUARDRAILS_PARAMETERS>/limits`
replaces it (`documents.py`).

    {"version": 1, "monthly_spend": "500.00", "keys": {"<API key id>": {"monthly_spend": "50.00"}}}
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from globesms.config import GuardrailsSettings, settings
from globesms.guardrails.documents import OverridableDocument

Amount = Annotated[Decimal, Field(ge=0, le=10**12, decimal_places=6, allow_inf_nan=False)]
KeyId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyLimits(_Doc):
    monthly_spend: Amount | None = None


class LimitsDoc(_Doc):
    version: Literal[1]
    monthly_spend: Amount | None = Field(default=None, description="the whole deployment's monthly limit")
    keys: dict[KeyId, KeyLimits] = Field(default_factory=dict)

    def key_limit(self, owner: str | None) -> Decimal | None:
        found = self.keys.get(owner) if owner else None
        return None if found is None else found.monthly_spend

    @property
    def any_spend_limit(self) -> bool:
        return self.monthly_spend is not None or any(k.monthly_spend is not None for k in self.keys.values())


_limits = OverridableDocument(LimitsDoc, "limits.json")


def current_limits() -> LimitsDoc:
    return _limits.current(settings(GuardrailsSettings).parameter("limits"))


def reset_cache() -> None:
    _limits.reset()
