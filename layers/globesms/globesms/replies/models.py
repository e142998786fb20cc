"""A reply as every provider's parser hands it on, and how it is shown (GET /v1/replies, `message.received`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, Field, ValidationError

from globesms.consent.optouts import NotANumber, normalise
from globesms.models.base import Model
from globesms.models.outbound import ProviderName
from globesms.validation import describe

MAX_REPLY_CHARS: Final = 1600  # a long reply is kept whole up to ten SMS parts; beyond, cut (never refused)
MAX_REPLIES_PER_PUSH: Final = 1000
#: A push's body is refused unread (413) beyond what its replies can be, so that a body of millions of tiny items is
#: not parsed into millions of objects in a 256 MB function first (as receipts/push_limits.py for receipts).
#: Tencent and Huawei push one reply a request: its text (cut to 1,600 characters when longer, each at most 6 bytes
#: as a JSON `\uXXXX` escape) and a few fields, 16 KB. Alibaba pushes an array of at most MAX_REPLIES_PER_PUSH,
#: 4 KB a reply on average: 4 MB (16 KB each would be 16 MB, past what API Gateway and Lambda pass on at all, so no
#: bound; 4 MB of `{}` items parses in about 100 MB).
MAX_BYTES_PER_REPLY: Final = 16_384
MAX_ALIYUN_PUSH_BYTES: Final = MAX_REPLIES_PER_PUSH * 4096
_PUSH_BYTES: Final = {
    ProviderName.ALIYUN: MAX_ALIYUN_PUSH_BYTES,
    ProviderName.TENCENT: MAX_BYTES_PER_REPLY,
    ProviderName.HUAWEI: MAX_BYTES_PER_REPLY,
}


def max_reply_push_bytes(provider: ProviderName) -> int:
    return _PUSH_BYTES[provider]


class ReplyBodyInvalid(ValueError):
    """The push is not in the provider's reply format at all: answered 400, nothing kept."""


class InboundReply(Model):
    """One reply. `provider_ref` is what the provider identifies it by (its own id, or its fields when it has
    none): a push sent again (Alibaba retries) gives the same `reply_id`, which is how duplicates are recognised."""

    provider: ProviderName
    from_number: str = Field(description="the person who replied, E.164")
    to: str | None = Field(default=None, description="what the reply was addressed to: our number, code or extension")
    text: str
    sent_at: str | None = Field(
        default=None,
        description="when the person sent it, as the provider says (ISO 8601, UTC); None when the provider gives no "
        "time (Huawei without createTime): its first arrival's is used, kept so that a repeat is keyed the same "
        "(replies.record)",
    )
    provider_ref: str

    @property
    def reply_id(self) -> str:
        digest = hashlib.sha256(f"{self.provider}\n{self.provider_ref}".encode()).hexdigest()
        return f"R{digest[:24]}"


class ParsedReplies(Model):
    replies: list[InboundReply]
    refused_items: list[str] = Field(default_factory=list)


class ReplyView(Model):
    """A stored reply (GET /v1/replies, the `message.received` event)."""

    id: str
    provider: ProviderName
    from_: str = Field(alias="from", description="the person who replied, E.164")
    # None: the provider named none (stored without the attribute: items leave None values out, so it must default)
    to: str | None = None
    text: str
    sent_at: str
    received_at: str
    keyword: str | None = Field(default=None, description="the keyword it matched, when it matched one")
    action: str | None = Field(default=None, description="opt_out or opt_in, when a keyword matched")

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class ReplyPage(Model):
    replies: list[ReplyView]
    next: str | None = Field(description="pass as `after` for the next page; null at the end")


def reply_number(raw: Any) -> str:
    """A replying number in E.164, written with or without its "+"; raises ValueError (pydantic reports it)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise ValueError("must be a phone number")
    text = str(raw).strip()
    try:
        return normalise(text if text.startswith("+") else "+" + text)
    except NotANumber as exc:
        raise ValueError(str(exc)) from None


def in_utc(moment: datetime) -> datetime:
    """`moment` in UTC, for a field validator: a time near year 1 or 9999 may not be one in UTC (`0001-01-01
    00:00:00` Beijing time is in year 0), and `iso` would raise OverflowError out of the parser, a 500 for the whole
    push. Raised as ValueError, pydantic refuses that item alone, naming the field."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("must be a time between the years 1 and 9999 in UTC") from None


def bounded_text(raw: Any) -> Any:
    return raw[:MAX_REPLY_CHARS] if isinstance(raw, str) else raw


def read_items(items: Sequence[Any], validate: Callable[[Any], InboundReply]) -> ParsedReplies:
    """Each item on its own: the replies that pass, and for each one that does not, a reason naming its index
    (never quoting the input: pydantic's messages do not)."""
    if len(items) > MAX_REPLIES_PER_PUSH:
        raise ReplyBodyInvalid(f"more than {MAX_REPLIES_PER_PUSH} replies in one push")
    replies: list[InboundReply] = []
    refused: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            refused.append(f"item {index}: not a JSON object")
            continue
        try:
            replies.append(validate(item))
        except ValidationError as exc:
            refused.append(f"item {index}: " + describe(exc, default="(item)"))
    return ParsedReplies(replies=replies, refused_items=refused)


def field_keys(model: type[BaseModel]) -> dict[str, str]:
    """Each key a reply's field may be given under (its name, its alias) -> the field."""
    return {key: name for name, f in model.model_fields.items() for key in {name, f.alias or name}}


def one_value_each(field_of: Mapping[str, str]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """An `object_pairs_hook` (and a form's pairs reader) refusing an object that gives one of the reply's fields
    twice (`field_of`: `field_keys`), under one key or under its name and its alias: json.loads and dict() keep the
    last, while a log, a proxy or a firewall in front may read the first, and a reply's number decides whose opt-out
    changes. Keys no reply is read from may repeat."""

    def pairs_as_dict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        given: dict[str, str] = {}  # field -> the key it was given under
        repeated: set[str] = set()
        for key, _value in pairs:
            field = field_of.get(key)
            if field is None:
                continue
            if field in given:
                repeated |= {key, given[field]}
            given[field] = key
        if repeated:
            raise ReplyBodyInvalid(f"{', '.join(sorted(repeated))}: field given more than once")
        return dict(pairs)

    return pairs_as_dict


def read_json(body: bytes, *, object_pairs_hook: Callable[[list[tuple[str, Any]]], Any]) -> Any:
    """The JSON value of `body` (NaN and Infinity are not JSON); raises ReplyBodyInvalid when it is none.
    `object_pairs_hook`: as json.loads's (each object's keys as given, repeats included): `one_value_each`."""
    try:
        return json.loads(body, parse_constant=_no_constant, object_pairs_hook=object_pairs_hook)
    except ReplyBodyInvalid:  # the hook's own refusal, naming what it refused
        raise
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ReplyBodyInvalid("the body is not JSON") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
