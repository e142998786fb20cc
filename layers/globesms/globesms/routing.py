"""Which provider carries a recipient.

The rules, until route tables arrive as data: a `provider` pin wins if that provider can carry the message;
free text goes to Alibaba; templates to Tencent; the Chinese mainland (+86) only through Huawei, which carries
templates only. What no provider can carry is refused with a code that says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from globesms.models.outbound import ProviderName

MAINLAND_CHINA = 86


@dataclass(frozen=True, slots=True)
class Capability:
    free_text: bool
    templates: bool
    mainland_china: bool
    template_ids: re.Pattern[str] | None = None  # the provider's own template id format, when it has one


CAPABILITIES: dict[ProviderName, Capability] = {
    ProviderName.ALIYUN: Capability(free_text=True, templates=False, mainland_china=False),
    # Tencent's TemplateId is the numeric id its console assigns (SendMultiGlobalSms refuses anything else).
    ProviderName.TENCENT: Capability(
        free_text=False, templates=True, mainland_china=False, template_ids=re.compile(r"\d{1,20}")
    ),
    ProviderName.HUAWEI: Capability(free_text=False, templates=True, mainland_china=True),
}

#: Preference order per content kind; the first provider able to carry the recipient wins.
DEFAULT_ORDER: dict[bool, tuple[ProviderName, ...]] = {
    True: (ProviderName.TENCENT, ProviderName.HUAWEI),  # templates
    False: (ProviderName.ALIYUN,),  # free text
}


@dataclass(frozen=True, slots=True)
class RouteRefusal:
    code: str
    message: str


def _why_not(provider: ProviderName, is_template: bool, country_code: int, template_id: str | None) -> str | None:
    capability = CAPABILITIES[provider]
    if is_template and not capability.templates:
        return f"{provider} does not carry template messages"
    if not is_template and not capability.free_text:
        return f"{provider} carries template messages only"
    if country_code == MAINLAND_CHINA and not capability.mainland_china:
        return f"{provider} does not deliver to the Chinese mainland (+86)"
    if template_id is not None and capability.template_ids and not capability.template_ids.fullmatch(template_id):
        return f"{provider} template ids look like {capability.template_ids.pattern!r}"
    return None


def choose_provider(
    *, template_id: str | None, country_code: int, pin: ProviderName | None
) -> ProviderName | RouteRefusal:
    is_template = template_id is not None
    if pin is not None:
        reason = _why_not(pin, is_template, country_code, template_id)
        return RouteRefusal("PROVIDER_CANNOT_CARRY", reason) if reason else pin
    for provider in DEFAULT_ORDER[is_template]:
        if _why_not(provider, is_template, country_code, template_id) is None:
            return provider
    kind = "template" if is_template else "free-text"
    where = "the Chinese mainland (+86)" if country_code == MAINLAND_CHINA else f"+{country_code}"
    return RouteRefusal("NO_ROUTE", f"no provider carries {kind} messages to {where}")
