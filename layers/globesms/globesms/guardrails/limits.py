"""Spend limits as data: a monthly limit for the whole deployment and, optionally, per API key, in the price table's
currency. Shipped as `globesms/data/limits.json` (no limit); the SSM parameter `<GLOBESMS_GUARDRAILS_PARAMETERS>/limits`
replaces it (`documents.py`).

    {"version": 1, "monthly_spend": "500.00", "keys": {"<API key id>": {"monthly_spend": "50.00"}}}

It also holds the OTP velocity limits per number (`otp_velocity`, per key too) and the SMS-pumping rule (`pumping`);
both have defaults, so a document without them keeps them (docs/guardrails.md, "SMS-pumping protection").
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from globesms.config import GuardrailsSettings, settings
from globesms.guardrails.documents import OverridableDocument
from globesms.models.base import Model

Amount = Annotated[Decimal, Field(ge=0, le=10**12, decimal_places=6, allow_inf_nan=False)]
KeyId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


class _Doc(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OtpVelocity(_Doc):
    """At most `per_hour` OTP messages to one number in any 60 minutes, and `per_day` in any 24 hours."""

    per_hour: int = Field(default=5, ge=1, le=10_000)
    per_day: int = Field(default=10, ge=1, le=100_000)


Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
# A number prefix watched on its own, in E.164 ("+4470"): a premium or pumped range inside a country too busy (or
# too coarse) for its whole volume to show a burst.
Prefix = Annotated[str, Field(pattern=r"^\+[1-9][0-9]{1,14}$")]
PumpingUnit = Annotated[str, Field(pattern=r"^([A-Z]{2}|\+[1-9][0-9]{1,14})$")]


class Pumping(_Doc):
    """OTP to a country is held when its last `window_minutes` carry more than `max(floor, factor x baseline)`
    recipients; the baseline is the mean per window over the previous `baseline_hours` full hours
    (`guardrails/pumping.py`)."""

    window_minutes: int = Field(default=5, ge=1, le=30)
    factor: Decimal = Field(default=Decimal(10), ge=1, le=1000, allow_inf_nan=False)
    floor: int = Field(default=20, ge=0, le=10**7)
    baseline_hours: int = Field(default=24, ge=1, le=48)
    floors: dict[PumpingUnit, Annotated[int, Field(ge=0, le=10**7)]] = Field(
        default_factory=dict,
        description="a floor per country (or prefix), replacing `floor` (a country known to be busy)",
    )
    prefixes: list[Prefix] = Field(
        default_factory=list,
        max_length=1000,
        description="number prefixes counted, held and released as units of their own instead of their country",
    )

    def floor_of(self, country: str) -> int:
        return self.floors.get(country, self.floor)

    def prefix_of(self, number: str) -> str | None:
        """The longest listed prefix the number starts with: its pumping unit instead of its country."""
        matches = [prefix for prefix in self.prefixes if number.startswith(prefix)]
        return max(matches, key=len) if matches else None


class KeyLimits(_Doc):
    monthly_spend: Amount | None = None
    otp_velocity: OtpVelocity | None = None


class LimitsDoc(_Doc):
    version: Literal[1]
    monthly_spend: Amount | None = Field(default=None, description="the whole deployment's monthly limit")
    keys: dict[KeyId, KeyLimits] = Field(default_factory=dict)
    otp_velocity: OtpVelocity = Field(default_factory=OtpVelocity)
    pumping: Pumping = Field(default_factory=Pumping)

    def velocity_of(self, owner: str | None) -> OtpVelocity:
        """The OTP velocity limits for `owner`'s messages: its key's override, else the deployment's."""
        found = self.keys.get(owner) if owner else None
        return found.otp_velocity if found is not None and found.otp_velocity is not None else self.otp_velocity

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
