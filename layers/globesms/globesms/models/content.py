"""What is sent, as opposed to whom to: shared by every recipient of a spec, a pack's `contents`, and each record."""

from __future__ import annotations

from operator import attrgetter
from typing import get_args, get_origin

from pydantic import Field

from globesms.models.base import Model
from globesms.models.outbound import MessageType, ProviderName


class MessageContent(Model):
    type: MessageType
    text: str | None = None  # for a registered template sent through Alibaba: its text, params filled in
    template_id: str | None = None  # the provider's own template id
    template_params: dict[str, str] | None = None  # in the provider's template order
    template_ref: str | None = Field(default=None, description="the logical template id, when the registry has it")
    route: tuple[ProviderName, ...] | None = Field(
        default=None, description="the providers that can carry it, the one it was routed to first (for failover)"
    )
    sender_id: str | None = None
    validity_seconds: int | None = None
    client_ref: str | None = None
    status_callback: str | None = None
    status_callback_on_submitted: bool | None = None
    send_at: str | None = Field(
        default=None, description="ISO-8601 UTC: when it is released to its provider (scheduled or quiet hours)"
    )
    failover_on_undelivered: bool | None = None  # a NOTIFY message may be resent after an UNDELIVERED receipt
    quiet_hours: str | None = Field(
        default=None,
        description="MKT: the recipient's quiet hours in force (START-END, local time), checked again at dispatch",
    )

    def content(self) -> MessageContent:
        """Just the content fields (of a record, say), as a content of its own."""
        return MessageContent.model_construct(**{name: getattr(self, name) for name in CONTENT_FIELDS})

    def content_key(self) -> tuple[object, ...]:
        """Equal for equal contents; hashable (template params as pairs). Once per recipient when packing: the
        fields are read in one C call and only the dict-valued ones converted."""
        values: tuple[object, ...] = _content_values(self)
        dicts = [(i, value) for i in _DICT_FIELDS if isinstance(value := values[i], dict)]
        if not dicts:
            return values
        pairs = list(values)
        for i, value in dicts:
            pairs[i] = tuple(value.items())
        return tuple(pairs)


CONTENT_FIELDS = tuple(MessageContent.model_fields)
_content_values = attrgetter(*CONTENT_FIELDS)
_DICT_FIELDS = tuple(
    index
    for index, info in enumerate(MessageContent.model_fields.values())
    if any(get_origin(arg) is dict for arg in (info.annotation, *get_args(info.annotation)))
)
