"""Which provider carries a recipient.

The rules, until route tables arrive as data: a `provider` pin wins if that provider can carry the message;
free text goes to Alibaba; templates to Tencent; the Chinese mainland (+86) only through Huawei, which carries
templates only. What no provider can carry is refused with a code that says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from globesms.models.outbound import ProviderName

MAINLAND_CHINA = 86


@dataclass(frozen=True, slots=True)
class Capability:
    free_text: bool
    templates: bool
    mainland_china: bool


CAPABILITIES: dict[ProviderName, Capability] = {
    ProviderName.ALIYUN: Capability(free_text=True, templates=False, mainland_china=False),
    ProviderName.TENCENT: Capability(free_text=False, templates=True, mainland_china=False),
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


def _why_not(provider: ProviderName, is_template: bool, country_code: int) -> str | None:
    capability = CAPABILITIES[provider]
    if is_template and not capability.templates:
        return f"{provider} does not carry template messages"
    if not is_template and not capability.free_text:
        return f"{provider} carries template messages only"
    if country_code == MAINLAND_CHINA and not capability.mainland_china:
        return f"{provider} does not deliver to the Chinese mainland (+86)"
    return None


def choose_provider(*, is_template: bool, country_code: int, pin: ProviderName | None) -> ProviderName | RouteRefusal:
    if pin is not None:
        reason = _why_not(pin, is_template, country_code)
        return RouteRefusal("PROVIDER_CANNOT_CARRY", reason) if reason else pin
    for provider in DEFAULT_ORDER[is_template]:
        if _why_not(provider, is_template, country_code) is None:
            return provider
    kind = "template" if is_template else "free-text"
    where = "the Chinese mainland (+86)" if country_code == MAINLAND_CHINA else f"+{country_code}"
    return RouteRefusal("NO_ROUTE", f"no provider carries {kind} messages to {where}")
