"""The body of a message on a provider queue: up to one provider call's worth of recipients.

Contents shared by many recipients are stored once (`contents[i]`), so 1,000 Alibaba recipients of one text fit
well within the SQS message size limit.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from globesms.models.base import Model
from globesms.models.content import MessageContent
from globesms.models.outbound import ProviderName


class PackContent(MessageContent):
    model_config = ConfigDict(extra="forbid")


class PackRecipient(Model):
    model_config = ConfigDict(extra="forbid")

    id: str
    to: str
    c: int = Field(ge=0, description="index into contents")
    # Kept in the record the dispatcher writes, which it builds from the pack: without it every dispatched record lost
    # the country accept resolved, and the route statistics parsed the number again for it (`stats.tally`).
    country: str | None = Field(
        default=None,
        description="the recipient's country (phonenumbers' region; ZZ for a non-geographic number), as accept set it",
    )
    segments: int | None = None
    # As country: the record the dispatcher writes shows the encoding the 202 answered with. A pack queued before
    # recipients carried it has none (None, as a provider's own template has).
    encoding: Literal["GSM-7", "UCS-2"] | None = None
    history: list[dict[str, Any]] | None = Field(
        default=None, description="our earlier steps for this recipient (a failover), kept in its record's events"
    )
    # Guardrails: kept in the dispatcher's record, and the cost given back if it fails before reaching a provider.
    price: str | None = None
    cost: str | None = Field(
        default=None,
        description="the estimated cost at this pack's provider (decimal string): what accept reserved, or, after "
        "a failover, what was charged for it there (guardrails/charges.py)",
    )


_content_index = attrgetter("c")


class DispatchPack(Model):
    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    pack_id: str
    batch_id: str
    provider: ProviderName
    created_at: str
    expires_at: int | None = None
    attempt: int = Field(default=0, ge=0, description="0 for a pack from accept; n for its n-th retry pack")
    purpose: Literal["send", "settle"] = Field(
        default="send", description="settle: decide recipients whose outcome is still unknown (`unknown_outcomes`)"
    )
    settle_after: int | None = Field(default=None, description="epoch seconds; a settle pack acts only after it")
    contents: list[PackContent]
    recipients: list[PackRecipient] = Field(min_length=1)
    owner: str | None = Field(default=None, description="the API key (or intake owner) its batch belongs to")
    currency: str | None = None  # of the recipients' price and cost
    redrive_of: str | None = Field(
        default=None,
        description=(
            "set by a redrive's dispatcher on the packs it queues (retries, deferrals, quiet hours, failovers): "
            "when the pack it redrove was dead-lettered. A record still FAILED from then is that dead-lettering's, "
            "which this pack sends (dispatch/recovery.py)"
        ),
    )

    @model_validator(mode="after")
    def _content_indexes_exist(self) -> DispatchPack:
        if max(map(_content_index, self.recipients), default=-1) >= len(self.contents):  # a C loop: 1,000 a pack
            raise ValueError("a recipient's content index is out of range")
        return self
