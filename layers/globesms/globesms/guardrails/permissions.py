"""Country permissions: per message type, an allow-list or a deny-list of countries, as data.

Shipped as `globesms/data/permissions.json` (denies nothing); the SSM parameter
`<GLOBESMS_GUARDRAILS_PARAMETERS>/permissions` replaces it (`documents.py`).

    {"version": 1,
     "types": {"OTP": {"allow": ["HK", "SG", "GB"]}, "MKT": {"deny": ["ID"]}},
     "default": {"deny": []}}

For a message of type T the rule used is `types.T`, else `default`, else none (everything allowed). A rule has
`allow` or `deny`, never both: an allow-list lets only its countries through; a deny-list stops only its own.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from globesms.config import GuardrailsSettings, settings
from globesms.guardrails.documents import OverridableDocument
from globesms.guardrails.prices import Country
from globesms.models.base import Model
from globesms.models.outbound import MessageType


class _Doc(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CountryRule(_Doc):
    allow: Annotated[frozenset[Country], Field(max_length=300)] | None = None
    deny: Annotated[frozenset[Country], Field(max_length=300)] | None = None

    @model_validator(mode="after")
    def _one_list(self) -> CountryRule:
        if (self.allow is None) == (self.deny is None):
            raise ValueError("give exactly one of 'allow' or 'deny'")
        return self

    def refusal(self, country: str | None) -> str | None:
        """Why `country` is refused, or None."""
        if self.allow is not None and (country is None or country not in self.allow):
            return "is not in the allow-list"
        if self.deny is not None and country in self.deny:
            return "is in the deny-list"
        return None


class PermissionsDoc(_Doc):
    version: Literal[1]
    types: dict[MessageType, CountryRule] = Field(default_factory=dict)
    default: CountryRule | None = None

    def refusal(self, country: str | None, message_type: MessageType) -> str | None:
        rule = self.types.get(message_type, self.default)
        if rule is None:
            return None
        reason = rule.refusal(country)
        if reason is None:
            return None
        return f"{country or 'this destination'} {reason} for {message_type} messages"


_permissions = OverridableDocument(PermissionsDoc, "permissions.json")


def current_permissions(*, fresh: bool = False) -> PermissionsDoc:
    """`fresh`: past every cache, or `DocumentUnavailable` (`OverridableDocument.current`)."""
    return _permissions.current(settings(GuardrailsSettings).parameter("permissions"), fresh=fresh)


def reset_cache() -> None:
    _permissions.reset()
