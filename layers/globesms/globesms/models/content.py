"""What is sent, as opposed to whom to: shared by every recipient of a spec, a pack's `contents`, and each record."""

from __future__ import annotations

from pydantic import BaseModel

from globesms.models.outbound import MessageType


class MessageContent(BaseModel):
    type: MessageType
    text: str | None = None
    template_id: str | None = None
    template_params: dict[str, str] | None = None
    sender_id: str | None = None
    validity_seconds: int | None = None
    client_ref: str | None = None
    status_callback: str | None = None
    status_callback_on_submitted: bool | None = None

    def content(self) -> MessageContent:
        """Just the content fields (of a record, say), as a content of its own."""
        return MessageContent.model_construct(**{name: getattr(self, name) for name in CONTENT_FIELDS})

    def content_key(self) -> tuple[object, ...]:
        """Equal for equal contents; hashable (template params as pairs)."""
        return tuple(
            tuple(value.items()) if isinstance(value, dict) else value
            for value in (getattr(self, name) for name in CONTENT_FIELDS)
        )


CONTENT_FIELDS = tuple(MessageContent.model_fields)
