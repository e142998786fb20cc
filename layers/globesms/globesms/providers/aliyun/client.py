"""The Alibaba Cloud SMS client: SendMessageToGlobe and BatchSendMessageToGlobe (dysmsapi 2018-05-01) over httpx.

One `send` may become several provider calls. `plan_calls` (pure) decides which: OTP messages, and groups too
small to be worth a batch, go one number per SendMessageToGlobe call (2,000 calls/s); the rest are grouped into
BatchSendMessageToGlobe calls (1,000 numbers, 1 call/s) of messages that can share a call: same Type, sender id and
validity (the channel id is per client), never the same number twice in one call. A batch call's messages may
instead go one per SendMessageToGlobe call (`PlannedCall.singles`): a rate limiter short of batch permits sends
`plan` with such calls split (`send(messages, plan=...)`).

Our message id travels in `TaskId`, which Alibaba echoes in receipts. A batch call has one TaskId for all its
numbers, so a batch call's TaskId is `<first message id>+<count>` (`batch_task_id`), and each recipient is matched to
its result by position: `MessageIdList` lists the ids of the accepted numbers in the order of `To`, leaving out the
numbers in `FailedList`. The pages do not state that order; the client checks the counts (SuccessCount, the list
lengths) and, when they do not add up, reports the accepted numbers as unknown outcomes rather than guess.

Wire format: RPC style, `POST /` with the parameters in the query string and an empty body, as the official SDK
sends them, signed with ACS3-HMAC-SHA256. A query string longer than `max_query_length` goes in an
`application/x-www-form-urlencoded` body instead (the V3 signature covers it through x-acs-content-sha256): a full
batch is far longer than any URL a server accepts (httpx itself refuses URLs over 64 KB), which the SDK's choice
ignores.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Any, Final, cast
from urllib.parse import urlsplit

import httpx
from pydantic import ConfigDict, Field, SecretStr, ValidationError, field_validator

from globesms.cookieless import CookielessClient
from globesms.domain.clock import utc_now
from globesms.errors import InvalidProviderRequest, ProviderError
from globesms.models.base import Model
from globesms.models.outbound import MessageType, OutboundSms, ProviderName, SendOutcome, by_field
from globesms.models.receipts import StatusAnswer, StatusQueryFailed
from globesms.models.records import MessageRecord
from globesms.ports import PlannedCall as PlannedCall  # re-exported: the planning types are the ports'
from globesms.providers.aliyun import errors, queries, rules
from globesms.providers.aliyun.endpoint import Endpoint
from globesms.providers.aliyun.responses import (
    BatchSendMessageToGlobeResponse,
    GatewayError,
    SendMessageToGlobeResponse,
)
from globesms.providers.aliyun.signer import Acs3Signer, acs_date, join_encoded_query, payload_hash, percent_encode
from globesms.providers.bulk_numbers import all_plus_digits, joined_numbers, lengths_within
from globesms.providers.http_client import HttpClientOwner, call_timeout
from globesms.providers.settings import (
    CONNECT_TIMEOUT_MEANING,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    HTTP_TIMEOUT_VARIABLES,
    MAX_CONNECT_TIMEOUT,
    MAX_READ_TIMEOUT,
    READ_TIMEOUT_MEANING,
    load_settings,
)
from globesms.providers.transport import transport_error
from globesms.tls import verifying_context
from globesms.validation import describe

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT: Final = "https://dysmsapi.ap-southeast-1.aliyuncs.com"
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
# The longest message id whose batch TaskId ("<id>+1000") still fits Alibaba's 255 characters.
MAX_MESSAGE_ID_LENGTH: Final = rules.MAX_TASK_ID_LENGTH - len(f"+{rules.MAX_BATCH_RECIPIENTS}")


class AliyunSettings(Model):
    # hide_input_in_errors: a validation error would otherwise print the values it was given.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    endpoint: str = Field(DEFAULT_ENDPOINT, description="Alibaba Cloud SMS base URL (the local stack: its emulator)")
    access_key_id: str = Field(min_length=1, description="Alibaba Cloud AccessKey ID")
    access_key_secret: SecretStr = Field(description="Alibaba Cloud AccessKey secret")
    channel_id: str | None = Field(None, description="optional: the ChannelId Alibaba assigned for a dedicated channel")
    connect_timeout: float = Field(
        default=DEFAULT_CONNECT_TIMEOUT, gt=0, le=MAX_CONNECT_TIMEOUT, description=CONNECT_TIMEOUT_MEANING
    )
    read_timeout: float = Field(
        default=DEFAULT_READ_TIMEOUT, gt=0, le=MAX_READ_TIMEOUT, description=READ_TIMEOUT_MEANING
    )
    # Groups smaller than this go as single calls. 2 = batch whenever two messages can share a call; a rate
    # limiter short of batch capacity (1 call/s) can raise it per send.
    min_batch_size: int = Field(default=2, ge=1)
    # nginx's default limit on a request line is 8 KB; Alibaba documents none. Longer parameter sets go in the body.
    max_query_length: int = Field(default=8192, ge=0)

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("must be an http(s) base URL without query or fragment")
        return value.rstrip("/")


def from_environment(env: Mapping[str, str]) -> AliyunClient:
    """The client configured from GLOBESMS_* variables (docs/configuration.md)."""
    return AliyunClient(settings_from_environment(env))


#: Settings field -> the variable it is read from (docs/configuration.md).
ENVIRONMENT_VARIABLES: Final[Mapping[str, str]] = {
    "endpoint": "GLOBESMS_ALIYUN_ENDPOINT",
    "access_key_id": "GLOBESMS_ALIYUN_ACCESS_KEY_ID",
    "access_key_secret": "GLOBESMS_ALIYUN_ACCESS_KEY_SECRET",
    "channel_id": "GLOBESMS_ALIYUN_CHANNEL_ID",
    **HTTP_TIMEOUT_VARIABLES,
}


def settings_from_environment(env: Mapping[str, str]) -> AliyunSettings:
    """Raises ValueError naming each variable that is missing or invalid (never showing a value)."""
    return load_settings(AliyunSettings, env, ENVIRONMENT_VARIABLES)


# ---------------------------------------------------------------------------------------------------------------
# Planning: which messages share a provider call (pure)


def plan_calls(
    messages: Sequence[OutboundSms],
    *,
    min_batch_size: int = 2,
    max_batch_size: int = rules.MAX_BATCH_RECIPIENTS,
    fields: Fields | None = None,
) -> list[PlannedCall]:
    """Split messages into provider calls, ordered by their first message.

    A batch call shares Type, From and ValidityPeriod, so messages are grouped by those; OTP is not a batch Type.
    A number already in the open group starts a new group: a repeated number would make FailedList ambiguous.
    Groups smaller than `min_batch_size` become single calls. A batch call's `singles` is SEND_ONE: its messages
    may go one per call instead. `fields`: the messages' `Fields`, when the caller has read them already."""
    min_batch_size = max(1, min_batch_size)
    if len(messages) == 1 and (min_batch_size > 1 or messages[0].type is MessageType.OTP):
        return [PlannedCall(rules.SEND_ONE, (0,))]
    if min_batch_size <= len(messages) <= max_batch_size and _one_batch(fields or Fields.of(messages)):
        return [PlannedCall(rules.SEND_BATCH, positions(len(messages)), rules.SEND_ONE)]
    groups: list[list[int]] = []
    open_groups: dict[tuple[MessageType, str | None, int | None], tuple[list[int], set[str]]] = {}
    for index, message in enumerate(messages):
        if message.type is MessageType.OTP:
            groups.append([index])
            continue
        key = (message.type, message.sender_id, message.validity_seconds)
        group = open_groups.get(key)
        if group is None or len(group[0]) >= max_batch_size or message.to in group[1]:
            group = ([], set())
            open_groups[key] = group
            groups.append(group[0])
        group[0].append(index)
        group[1].add(message.to)

    calls: list[PlannedCall] = []
    for indexes in groups:
        batchable = messages[indexes[0]].type is not MessageType.OTP
        if batchable and len(indexes) >= min_batch_size:
            calls.append(PlannedCall(rules.SEND_BATCH, tuple(indexes), rules.SEND_ONE))
        else:
            calls.extend(PlannedCall(rules.SEND_ONE, (index,)) for index in indexes)
    calls.sort(key=lambda call: call.indexes[0])
    return calls


@lru_cache(maxsize=4)
def positions(count: int) -> tuple[int, ...]:
    """`tuple(range(count))`, one object per count: a call carrying a whole send has these indexes, and comparing
    a tuple with itself stops at once."""
    return tuple(range(count))


_GROUP_KEY = attrgetter("type", "sender_id", "validity_seconds")
_TO = attrgetter("to")
_TEXT = attrgetter("text")
_SENDER_ID = attrgetter("sender_id")
_VALIDITY = attrgetter("validity_seconds")
_TEMPLATE_ID = attrgetter("template_id")
_TEMPLATE_PARAMS = attrgetter("template_params")
Shared = tuple[MessageType, str | None, int | None, str | None, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Fields:
    """A send's messages read field by field, each field in one pass: validating, planning and building a batch
    call of 1,000 messages share these rather than each reading every message's attributes again.

    `shared`: the fields a batch call's messages must have alike (type, sender id, validity; and no template, which
    Alibaba's global API does not take), when every message has the first one's, else None. The messages are named
    tuples, so `zip(*messages)` reads every field of every message in one C-speed pass (a comprehension per field
    took 3x as long: 262 -> 80 us for 1,000 messages); the shared ones are compared with `tuple.count`, which
    compares the same objects by identity first (a set would hash every message's `MessageType`, an Enum's hash
    being a Python call)."""

    count: int
    to: Sequence[str]
    text: Sequence[str | None]
    ids: Sequence[str]
    shared: Shared | None

    @classmethod
    def of(cls, messages: Sequence[OutboundSms]) -> Fields:
        count = len(messages)
        if not count:
            return cls(0, (), (), (), None)
        columns = by_field(messages)
        first = messages[0]
        candidate = (first.type, first.sender_id, first.validity_seconds, first.template_id, first.template_params)
        alike = all(columns[name].count(value) == count for name, value in zip(_SHARED_FIELDS, candidate, strict=True))
        return cls(count, columns["to"], columns["text"], columns["message_id"], candidate if alike else None)


#: The fields of `Shared`, in its order.
_SHARED_FIELDS = ("type", "sender_id", "validity_seconds", "template_id", "template_params")


def _one_batch(fields: Fields) -> bool:
    """The common case, checked in bulk: all the messages can share one batch call."""
    return fields.shared is not None and fields.shared[0] is not MessageType.OTP and len(set(fields.to)) == fields.count


def plan_violation(plan: Sequence[PlannedCall], messages: Sequence[OutboundSms]) -> InvalidProviderRequest | None:
    """Why `plan` is not a set of calls Alibaba takes for `messages`, or None: each message in exactly one call, a
    single call of one message, a batch call of at most 1,000 messages that may share one (see `plan_calls`)."""
    covered = sorted(index for call in plan for index in call.indexes)
    if covered != list(range(len(messages))):
        return InvalidProviderRequest("plan", "must carry every message exactly once")
    for call in plan:
        if call.operation == rules.SEND_ONE:
            if len(call.indexes) != 1:
                return InvalidProviderRequest("plan", f"{rules.SEND_ONE} carries one message")
            continue
        if call.operation != rules.SEND_BATCH:
            return InvalidProviderRequest("plan", f"unknown operation {call.operation!r}")
        group = [messages[index] for index in call.indexes]
        if not (
            len(group) <= rules.MAX_BATCH_RECIPIENTS
            and group[0].type is not MessageType.OTP
            and len(set(map(_GROUP_KEY, group))) == 1
            and len(set(map(_TO, group))) == len(group)
        ):
            return InvalidProviderRequest(
                "plan",
                f"a {rules.SEND_BATCH} call carries up to {rules.MAX_BATCH_RECIPIENTS} non-OTP messages of one "
                "Type, sender id and validity, each number once",
            )
    return None


def batch_task_id(first_message_id: str, count: int) -> str:
    """The TaskId of a batch call: its first message id and its size (`b1.00001+250`). With the receipt's `To` it
    names one recipient, as a batch call never repeats a number."""
    return f"{first_message_id}+{count}"


# ---------------------------------------------------------------------------------------------------------------
# Validation (before anything is sent): one rule set, used by `AliyunClient.check` and by `send`


def message_violation(message: OutboundSms) -> InvalidProviderRequest | None:
    """The first rule Alibaba documents that the message breaks, or None. Built from the checks in `rules` (which
    the emulator shares); nothing here raises, so checking a whole batch costs no exception in the common case."""
    if message.template_id is not None or message.template_params:
        return InvalidProviderRequest(
            "template_id", "Alibaba's global SMS API carries free text only; send text, not a template"
        )
    text = message.text
    if not text:
        return InvalidProviderRequest("text", "required: Alibaba sends the free text of the message")
    if not text.isascii() and not _is_valid_unicode(text):
        return InvalidProviderRequest("text", "must be valid Unicode text (no lone surrogates)")
    to = message.to
    if to[:1] != "+":
        return InvalidProviderRequest("to", "must be E.164 with the leading '+'")
    rule = rules.wire_number_violation(to[1:])
    if rule is not None:
        return InvalidProviderRequest("to", rule)
    sender_id = message.sender_id
    if sender_id is not None:
        rule = rules.sender_id_violation(sender_id)
        if rule is not None:
            return InvalidProviderRequest("sender_id", rule)
    if not 0 < len(message.message_id) <= MAX_MESSAGE_ID_LENGTH:
        return InvalidProviderRequest(
            "message_id",
            f"must be 1-{MAX_MESSAGE_ID_LENGTH} characters: it is sent as TaskId (at most "
            f"{rules.MAX_TASK_ID_LENGTH}), with '+<count>' appended in a batch call",
        )
    validity = message.validity_seconds
    if validity is not None and validity < 1:
        return InvalidProviderRequest("validity_seconds", "must be a positive number of seconds")
    return None


def _is_valid_unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def validate_messages(messages: Sequence[OutboundSms], fields: Fields | None = None) -> None:
    """Raise InvalidProviderRequest for the first message that breaks a rule, with its place in the call (not its
    id, which may be the very thing that is wrong). `fields`: the messages' `Fields`, if read already."""
    if len(messages) > FEW and all_valid(messages, fields):
        return
    for position, message in enumerate(messages, start=1):
        problem = message_violation(message)
        if problem is not None:
            raise InvalidProviderRequest(problem.field, f"{problem.rule} (message {position} of {len(messages)})")


# Up to this many messages, checking each one costs less than `all_valid`'s passes over all of them.
FEW = 4


def all_valid(messages: Sequence[OutboundSms], fields: Fields | None = None) -> bool:
    """Whether no message breaks a rule, i.e. `message_violation` is None for every one; checked field by field over
    the whole call with C-speed builtins (a batch is 1,000 messages: the per-message checks were most of building
    it). Distinct sender ids and validities are few, so they get `rules`' own checks; numbers and texts are joined
    and checked at once, which `tests/unit/providers/test_aliyun_client.py` holds equal to the per-message rules."""
    if not messages:
        return True
    fields = fields or Fields.of(messages)
    senders: Iterable[str | None]
    validities: Iterable[int | None]
    if fields.shared is not None:
        _, sender, validity, template_id, template_params = fields.shared
        if template_id is not None or template_params:
            return False
        senders, validities = (sender,), (validity,)
    else:
        if any(map(_TEMPLATE_PARAMS, messages)) or set(map(_TEMPLATE_ID, messages)) != {None}:
            return False
        senders, validities = set(map(_SENDER_ID, messages)), set(map(_VALIDITY, messages))
    texts = fields.text
    if not all(texts):
        return False
    all_text = "".join(texts)  # type: ignore[arg-type]  # all(texts): no None
    if not all_text.isascii() and not _is_valid_unicode(all_text):  # a surrogate stays one when joined
        return False
    if not lengths_within(fields.ids, 1, MAX_MESSAGE_ID_LENGTH):
        return False
    if any(sender is not None and rules.sender_id_violation(sender) for sender in senders):
        return False
    if any(validity is not None and validity < 1 for validity in validities):
        return False
    return _all_wire_numbers_valid(fields.to)


def _all_wire_numbers_valid(e164s: Sequence[str]) -> bool:
    """Every number is "+" and digits, and `rules.wire_number_violation` is None for it without its "+": 7 to 16
    characters with the "+", no leading 0, not mainland China (checked on the joined numbers: "\n+0" and "\n+86"
    can only be a number's first digits once `all_plus_digits` holds)."""
    joined = joined_numbers(e164s)
    return (
        all_plus_digits(e164s, joined, 7, 16)
        and "\n+0" not in joined
        and "\n+" + rules.MAINLAND_DIALING_CODE not in joined
    )


def wire_numbers(e164s: Sequence[str]) -> tuple[str, ...]:
    """Validated E.164 numbers without their "+" (each has one, first), split apart at C speed."""
    return tuple("".join(e164s).split("+")[1:])


_SAMPLE = 64


def encoded_json_array(texts: Sequence[str]) -> str:
    """`percent_encode(json.dumps(texts, separators=(",", ":")))`, without encoding a repeated text twice.

    The JSON is ASCII (non-ASCII as \\uXXXX escapes, which Alibaba's JSON parser reads like any other): that keeps
    percent-encoding on its fast path, and the wire is no longer for it (`%5Cu4F60` is 8 bytes, the UTF-8
    `%E4%BD%A0` is 9). A batch often repeats one text (a pack stores shared contents once), so when texts repeat
    each distinct one is encoded once and the array is joined from the pieces; percent-encoding maps character
    by character, so the pieces join to exactly the encoding of the whole. For the same reason the array's brackets
    are put around the encoded elements rather than encoded: two fewer passes over ~100 KB of text."""
    sample = texts[:_SAMPLE]
    if len(set(sample)) * 4 > len(sample) or len(distinct := dict.fromkeys(texts)) * 4 > len(texts):
        # Mostly distinct texts (judged from the first few, before hashing them all): encode the whole array.
        return "%5B" + percent_encode(json.dumps(texts, separators=(",", ":"))[1:-1]) + "%5D"
    pieces = {text: percent_encode(json.dumps(text)) for text in distinct}
    return "%5B" + "%2C".join(map(pieces.__getitem__, texts)) + "%5D"


# ---------------------------------------------------------------------------------------------------------------
# The client


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """One signed provider call, ready to send."""

    operation: str
    indexes: tuple[int, ...]
    task_id: str
    numbers: tuple[str, ...]  # `To` as sent, in call order
    request: httpx.Request
    # The carried messages' ids, in call order: read when the call is built (a whole send's are in its `Fields`
    # already), so that sending does not read 1,000 messages again.
    message_ids: Sequence[str]


def _random_nonce() -> str:
    return os.urandom(16).hex()  # uuid4().hex's length and randomness, without building a UUID


class AliyunClient(HttpClientOwner[AliyunSettings]):
    """`Provider` for Alibaba Cloud. One httpx.Client per instance, reused; `close()` (or `with`) releases it."""

    name: ProviderName = ProviderName.ALIYUN
    max_recipients_per_call: int = rules.MAX_BATCH_RECIPIENTS

    def __init__(
        self,
        settings: AliyunSettings,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], datetime] = utc_now,
        nonce: Callable[[], str] = _random_nonce,
    ) -> None:
        self.settings = settings
        self._signer = Acs3Signer(settings.access_key_id, settings.access_key_secret.get_secret_value())
        self._clock = clock
        self._nonce = nonce
        self._timeout = call_timeout(settings.connect_timeout, settings.read_timeout)
        self._owns_http = http is None
        self._http = http if http is not None else CookielessClient(timeout=self._timeout, verify=verifying_context())
        endpoint = urlsplit(settings.endpoint)
        self._host = endpoint.netloc
        self._path = endpoint.path or "/"
        self._endpoint = Endpoint(self._http, f"{endpoint.scheme}://{endpoint.netloc}{self._path}", self._timeout)
        # Parameters every call carries, encoded once here rather than per call.
        self._fixed_params = {"ChannelId": percent_encode(settings.channel_id)} if settings.channel_id else {}

    def __repr__(self) -> str:
        return f"AliyunClient(endpoint={self.settings.endpoint!r}, access_key_id={self.settings.access_key_id!r})"

    # -- Provider ---------------------------------------------------------------------------------------------

    def check(self, message: OutboundSms) -> InvalidProviderRequest | None:
        """The rule this message breaks, if any: the same rules `send` refuses a call for."""
        return message_violation(message)

    def plan(self, messages: Sequence[OutboundSms]) -> list[PlannedCall]:
        """The calls `send(messages)` makes (no I/O); raises InvalidProviderRequest as `send` does."""
        fields = self._validate(messages)
        return plan_calls(messages, min_batch_size=self.settings.min_batch_size, fields=fields)

    def send(
        self,
        messages: Sequence[OutboundSms],
        *,
        min_batch_size: int | None = None,
        plan: Sequence[PlannedCall] | None = None,
    ) -> list[SendOutcome]:
        """One outcome per message, in input order. Raises InvalidProviderRequest before sending anything: for
        more than `max_recipients_per_call` messages, for the first message that `check` refuses, or for a `plan`
        Alibaba would not take (`plan_violation`). With `plan`, exactly those calls are made."""
        prepared = self.prepare(messages, min_batch_size=min_batch_size, plan=plan)
        by_index: dict[int, SendOutcome] = {}
        for call in prepared:
            by_index.update(zip(call.indexes, self._transmit(call), strict=True))
        return [by_index[index] for index in range(len(messages))]

    def prepare(
        self,
        messages: Sequence[OutboundSms],
        *,
        min_batch_size: int | None = None,
        plan: Sequence[PlannedCall] | None = None,
    ) -> list[PreparedCall]:
        """Validate every message, plan the calls (or check the `plan` given) and sign them (no I/O)."""
        fields = self._validate(messages)
        if plan is None:
            plan = plan_calls(messages, min_batch_size=min_batch_size or self.settings.min_batch_size, fields=fields)
        else:
            problem = plan_violation(plan, messages)
            if problem is not None:
                raise problem
        return [self._prepare_call(call, messages, fields) for call in plan]

    def _validate(self, messages: Sequence[OutboundSms]) -> Fields | None:
        """Raises for a send Alibaba would refuse; returns the messages' `Fields` when reading them was worth it."""
        if len(messages) > self.max_recipients_per_call:
            raise InvalidProviderRequest(
                "messages", f"at most {self.max_recipients_per_call} recipients per send, got {len(messages)}"
            )
        fields = Fields.of(messages) if len(messages) > FEW else None
        validate_messages(messages, fields)
        return fields

    # -- building and signing ---------------------------------------------------------------------------------

    def _prepare_call(
        self, call: PlannedCall, messages: Sequence[OutboundSms], fields: Fields | None = None
    ) -> PreparedCall:
        first = messages[call.indexes[0]]
        encoded: dict[str, str]
        ids: Sequence[str]
        if call.operation == rules.SEND_ONE:
            task_id, ids = first.message_id, (first.message_id,)
            numbers: tuple[str, ...] = (first.to[1:],)  # validated E.164: the wire number is it without its "+"
            encoded = {"To": numbers[0], "Message": percent_encode(first.text or "")}
        else:
            task_id = batch_task_id(first.message_id, len(call.indexes))
            if fields is not None and call.indexes == positions(fields.count):  # the whole send, in order
                tos, texts, ids = fields.to, fields.text, fields.ids
            else:
                carried = _carried(messages, call.indexes)
                tos, texts = list(map(_TO, carried)), list(map(_TEXT, carried))
                ids = [message.message_id for message in carried]
            numbers = wire_numbers(tos)
            encoded = {
                # Numbers are digits only, so their JSON array encodes without looking at each character.
                "To": "%5B%22" + "%22%2C%22".join(numbers) + "%22%5D",
                "Message": encoded_json_array(cast("list[str]", texts)),  # validated: none is None
            }
        encoded["Type"] = first.type.value
        encoded["TaskId"] = percent_encode(task_id)
        if first.sender_id:
            encoded["From"] = first.sender_id  # letters and digits: nothing to encode
        if first.validity_seconds is not None:
            encoded["ValidityPeriod"] = str(first.validity_seconds)
        encoded.update(self._fixed_params)
        request = self._signed_request(call.operation, join_encoded_query(encoded))
        return PreparedCall(call.operation, call.indexes, task_id, numbers, request, ids)

    def _signed_request(self, operation: str, query: str) -> httpx.Request:
        """`query` is the canonical query string of the call's parameters."""
        headers = {
            "host": self._host,
            "x-acs-action": operation,
            "x-acs-version": rules.API_VERSION,
            "x-acs-date": acs_date(self._clock()),
            "x-acs-signature-nonce": self._nonce(),
        }
        if len(query) <= self.settings.max_query_length:
            body, signed_query = b"", query
        else:
            body, signed_query = query.encode("ascii"), ""
            headers["content-type"] = FORM_CONTENT_TYPE
        body_sha256 = payload_hash(body)
        headers["x-acs-content-sha256"] = body_sha256
        headers["authorization"] = self._signer.authorization("POST", self._path, signed_query, headers, body_sha256)
        return self._endpoint.post(signed_query, headers.items(), body)

    # -- the status query (reconcile/) ------------------------------------------------------------------------

    status_query_operation = queries.QUERY_MESSAGE

    def query_message(self, provider_message_id: str) -> StatusAnswer:
        """QueryMessage for one MessageId, signed like the sends; raises StatusQueryFailed when the call fails or
        its answer cannot be read (`queries` says what an answer means)."""
        request = self._signed_request(queries.QUERY_MESSAGE, f"MessageId={percent_encode(provider_message_id)}")
        try:
            response = self._http.send(request)
        except httpx.HTTPError as exc:
            raise StatusQueryFailed(transport_error(exc).code) from None
        return queries.answer(response.status_code, response.content, provider_message_id)

    def query_status(self, record: MessageRecord, *, now: datetime) -> StatusAnswer:
        """`ports.StatusQuery`: the message's status by its MessageId."""
        if not record.provider_message_id:
            raise StatusQueryFailed("NO_PROVIDER_MESSAGE_ID")
        return self.query_message(record.provider_message_id)

    # -- sending and reading the answer -----------------------------------------------------------------------

    def _transmit(self, call: PreparedCall) -> list[SendOutcome]:
        ids = call.message_ids
        try:
            response = self._http.send(call.request)
        except httpx.HTTPError as exc:
            error = transport_error(exc)
            log.warning("aliyun %s (%d numbers) failed: %s", call.operation, len(ids), error.code)
            return _all_failed(ids, error, call.task_id)
        outcomes = self._read_answer(call, ids, response)
        log.debug("aliyun %s (%d numbers): HTTP %d", call.operation, len(ids), response.status_code)
        return outcomes

    def _read_answer(self, call: PreparedCall, ids: Sequence[str], response: httpx.Response) -> list[SendOutcome]:
        status = response.status_code
        try:
            payload: Any = json.loads(response.content)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            if status == 200:
                return _all_failed(ids, _malformed("the answer is not a JSON object", status), call.task_id)
            return _all_failed(ids, _http_error(response), call.task_id)
        if "ResponseCode" in payload:
            if call.operation == rules.SEND_ONE:
                return [self._read_single(call, ids[0], payload, status)]
            return self._read_batch(call, ids, payload, status)
        if "Code" in payload:
            try:
                gateway = GatewayError.model_validate(payload)
            except ValidationError as exc:
                return _all_failed(ids, _malformed(_describe(exc), status), call.task_id)
            extra = _extra(call.task_id, gateway.request_id)
            error = errors.provider_error(gateway.code, gateway.message, status)
            return [SendOutcome(message_id, error=error, extra=extra) for message_id in ids]
        if status == 200:
            return _all_failed(ids, _malformed("no ResponseCode in the answer", status), call.task_id)
        return _all_failed(ids, _http_error(response), call.task_id)

    def _read_single(self, call: PreparedCall, message_id: str, payload: dict[str, Any], status: int) -> SendOutcome:
        try:
            answer = SendMessageToGlobeResponse.model_validate(payload)
        except ValidationError as exc:
            return SendOutcome(message_id, error=_malformed(_describe(exc), status), extra=_extra(call.task_id, None))
        extra = _extra(call.task_id, answer.request_id)
        if answer.response_code != errors.OK:
            error = errors.provider_error(answer.response_code, answer.response_description, status)
            return SendOutcome(message_id, error=error, extra=extra)
        detail = answer.number_detail
        if detail is not None:
            for key, value in (("carrier", detail.carrier), ("country", detail.country), ("region", detail.region)):
                if value:
                    extra[key] = value
        return SendOutcome(message_id, provider_message_id=answer.message_id, segments=answer.segments, extra=extra)

    def _read_batch(
        self, call: PreparedCall, ids: Sequence[str], payload: dict[str, Any], status: int
    ) -> list[SendOutcome]:
        try:
            answer = BatchSendMessageToGlobeResponse.model_validate(payload)
        except ValidationError as exc:
            return _all_failed(ids, _malformed(_describe(exc), status), call.task_id)
        extra = _extra(call.task_id, answer.request_id)
        if answer.response_code != errors.OK:
            error = errors.provider_error(answer.response_code, answer.response_description, status)
            return _all_failed(ids, error, call.task_id, extra)

        failed = {rules.to_wire_number(number.strip()) for number in answer.failed_numbers}
        if not failed <= set(call.numbers):
            return _all_failed(ids, _malformed("FailedList names a number that was not sent", status), call.task_id)
        accepted = [position for position, number in enumerate(call.numbers) if number not in failed]
        failed_error = errors.provider_error(errors.FAILED_LIST, "listed in FailedList", status)
        unpaired = _unpaired_ids(answer, len(accepted))
        if unpaired is not None:
            # Ids that cannot be paired with numbers: the accepted ones may well be sent, and none has an id its
            # receipts or a status query could be matched by (a blank one was once recorded SUBMITTED without it).
            mismatch = errors.provider_error(errors.MESSAGE_ID_LIST_MISMATCH, unpaired, status)
            return [
                SendOutcome(message_id, error=failed_error if number in failed else mismatch, extra=extra)
                for message_id, number in zip(ids, call.numbers, strict=True)
            ]
        # MessageIdList lists the accepted numbers' ids in the order they were sent: pair them in one pass.
        provider_ids = iter(answer.message_ids)
        return [
            SendOutcome(message_id, error=failed_error, extra=extra)
            if number in failed
            else SendOutcome(message_id, provider_message_id=next(provider_ids), extra=extra)
            for message_id, number in zip(ids, call.numbers, strict=True)
        ]


def _unpaired_ids(answer: BatchSendMessageToGlobeResponse, accepted: int) -> str | None:
    """Why MessageIdList cannot be paired with the `accepted` numbers, or None when it can: one distinct, non-blank
    id for each, and SuccessCount (when sent) saying as many."""
    ids = answer.message_ids
    if len(ids) != accepted or answer.success_count not in (None, accepted):
        return f"{len(ids)} ids (SuccessCount {answer.success_count}) for {accepted} numbers"
    if not all(i.strip() for i in ids) or len(set(ids)) != len(ids):
        return "MessageIdList holds a blank or repeated id"
    return None


def _carried(messages: Sequence[OutboundSms], indexes: tuple[int, ...]) -> Sequence[OutboundSms]:
    """The messages at `indexes`, in that order (picked at C speed: a batch call carries 1,000)."""
    if len(indexes) == 1:
        return (messages[indexes[0]],)
    carried: tuple[OutboundSms, ...] = itemgetter(*indexes)(messages)
    return carried


def _extra(task_id: str, request_id: str | None) -> dict[str, str]:
    return {"task_id": task_id, "request_id": request_id} if request_id else {"task_id": task_id}


def _all_failed(
    ids: Sequence[str], error: ProviderError, task_id: str, extra: dict[str, str] | None = None
) -> list[SendOutcome]:
    base = extra if extra is not None else {"task_id": task_id}
    return [SendOutcome(message_id, error=error, extra=base) for message_id in ids]


def _http_error(response: httpx.Response) -> ProviderError:
    # An error status without Alibaba's error body (a proxy or load balancer answered): the status decides.
    return errors.provider_error(f"HTTP_{response.status_code}", response.reason_phrase, response.status_code)


def _malformed(detail: str, status: int) -> ProviderError:
    # The call reached Alibaba and got an answer we cannot read: it may have been accepted.
    return errors.provider_error(errors.MALFORMED_RESPONSE, detail, status)


def _describe(exc: ValidationError) -> str:
    # Field locations and reasons only: pydantic's full text would echo the input (numbers, texts).
    return f"{exc.title}: {describe(exc, default='answer', most=1)}"
