"""The guardrails' answers on the API: a dry run's quote (POST /v1/messages with dry_run) and GET /v1/usage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from globesms.models.base import Model
from globesms.models.errors import RecipientError
from globesms.models.outbound import ProviderName


class QuotedMessage(Model):
    to: str
    provider: ProviderName
    segments: int | None = Field(default=None, description="SMS parts; null for a provider's own template")
    encoding: Literal["GSM-7", "UCS-2"] | None = None
    price: str | None = Field(default=None, description="per SMS part, a decimal string in `currency`")
    cost: str | None = Field(default=None, description="estimated: segments x price")
    currency: str | None = None


class QuoteTotals(Model):
    recipients: int = Field(description="the recipients that would be accepted")
    segments: int = Field(description="their SMS parts (where known)")
    cost: dict[str, str] = Field(description="estimated cost per currency, decimal strings")


class QuoteResponse(Model):
    """Dry run: what a send of this body would do now. Nothing was written, reserved, queued or sent"""

    dry_run: Literal[True] = True
    accepted: int
    rejected: int
    messages: list[QuotedMessage]
    errors: list[RecipientError]
    totals: QuoteTotals


class SpendView(Model):
    spent: str = Field(description="reserved this month (decimal string): accepted recipients' estimated cost")
    limit: str | None = Field(default=None, description="the monthly limit; null when there is none")


class UsageView(Model):
    """This month's spend and limits: the deployment's, and the calling API key's"""

    month: str = Field(description="YYYY-MM, UTC")
    currency: str
    deployment: SpendView
    key: SpendView | None = Field(default=None, description="the calling API key's own spend and limit")
