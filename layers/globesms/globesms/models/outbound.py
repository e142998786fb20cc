"""What dispatch hands a provider client, and what it gets back, per recipient.

Plain frozen dataclasses: these are built thousands of times per batch on the hot path and never parsed from
outside (the queue body they come from is validated by `models.packs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from globesms.errors import ProviderError


class ProviderName(StrEnum):
    ALIYUN = "aliyun"
    TENCENT = "tencent"
    HUAWEI = "huawei"


class MessageType(StrEnum):
    OTP = "OTP"
    NOTIFY = "NOTIFY"
    MKT = "MKT"


@dataclass(frozen=True, slots=True)
class OutboundSms:
    """One recipient of one provider call."""

    message_id: str  # our id; clients echo it through TaskId / SessionContext / extend
    to: str  # E.164 with the leading "+", already validated
    type: MessageType = MessageType.NOTIFY
    text: str | None = None  # free text (Alibaba)
    template_id: str | None = None  # template messages (Tencent, Huawei)
    template_params: tuple[str, ...] = ()  # in the template's parameter order
    sender_id: str | None = None
    validity_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """The provider's answer for one recipient: a provider message id, or an error (never both)."""

    message_id: str
    provider_message_id: str | None = None
    error: ProviderError | None = None
    segments: int | None = None  # as billed by the provider, when it says
    extra: dict[str, str] = field(default_factory=dict)  # e.g. Tencent Fee/IsoCode, Huawei countryId

    @property
    def ok(self) -> bool:
        return self.error is None
