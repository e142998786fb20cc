"""What each provider can carry, and the shape of a route: the leaf every routing module reads.

Kept apart so that the route table, the template registry and the router depend on it and not on each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from globesms.errors import RecipientCode
from globesms.models.outbound import ProviderName

MAINLAND_CHINA = 86
MAINLAND_REGION = "CN"

Kind = Literal["text", "template"]
KINDS: tuple[Kind, ...] = ("text", "template")

NO_ROUTE = RecipientCode.NO_ROUTE
PROVIDER_CANNOT_CARRY = RecipientCode.PROVIDER_CANNOT_CARRY
TEMPLATE_UNKNOWN_FOR_PROVIDER = RecipientCode.TEMPLATE_UNKNOWN_FOR_PROVIDER


@dataclass(frozen=True, slots=True)
class TemplateIds:
    """The form of a provider's own template ids: what its client sends, so nothing else is accepted for it."""

    pattern: re.Pattern[str]
    described: str  # for refusals: "<Provider> template ids are <described>"

    def allow(self, template_id: str) -> bool:
        return self.pattern.fullmatch(template_id) is not None


@dataclass(frozen=True, slots=True)
class Capability:
    free_text: bool
    templates: bool  # the provider's own template ids
    mainland_china: bool
    template_ids: TemplateIds | None = None  # the provider's own template id format, when it has one


CAPABILITIES: dict[ProviderName, Capability] = {
    ProviderName.ALIYUN: Capability(free_text=True, templates=False, mainland_china=False),
    # Tencent's TemplateId is the numeric id its console assigns (SendMultiGlobalSms refuses anything else).
    ProviderName.TENCENT: Capability(
        free_text=False,
        templates=True,
        mainland_china=False,
        template_ids=TemplateIds(re.compile(r"\d{1,20}"), "numeric (1-20 digits)"),
    ),
    # Huawei's templateId is "String (1 to 32 characters)" and nothing more (batchSendDiffSms); its client refuses
    # any other length (providers/huawei/client.py, MAX_TEMPLATE_ID_LENGTH: a test keeps the two equal).
    ProviderName.HUAWEI: Capability(
        free_text=False,
        templates=True,
        mainland_china=True,
        template_ids=TemplateIds(re.compile(r".{1,32}", re.DOTALL), "1-32 characters"),
    ),
}


def kind_refusal(provider: ProviderName, kind: Kind) -> str | None:
    """Why `provider` can never appear in a route list of `kind` (checked when a route table loads)."""
    if kind == "text" and not CAPABILITIES[provider].free_text:
        return f"{provider} carries template messages only"
    # Any provider can carry a *registered* template: Alibaba as the registry's text, the others by their id.
    return None


def mainland_refusal(provider: ProviderName) -> str | None:
    if not CAPABILITIES[provider].mainland_china:
        return f"{provider} does not deliver to the Chinese mainland (+86)"
    return None


@dataclass(frozen=True, slots=True)
class Route:
    """One list of the route table: providers in preference order, with weights when the list has any."""

    providers: tuple[ProviderName, ...]
    weights: tuple[int, ...] | None = None  # aligned with `providers`; 0 = failover only
    scored: bool = False  # mode "score": chosen from delivery statistics (routing/scoring.py), weights unused
