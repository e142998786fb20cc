"""SendMultiGlobalSms on the wire: the input rules, the request body, and the response models.

The body is serialised exactly as the official SDK does (`json.dumps` with its defaults: ASCII escapes, ", " and
": " separators, fields in the SDK models' order, absent fields omitted), so the differential test can compare
bytes and a captured request reads the same from either side.
"""

from __future__ import annotations

from collections.abc import Sequence
from json.encoder import encode_basestring_ascii as _json_string

from pydantic import ConfigDict, Field, model_validator
from pydantic.alias_generators import to_pascal

from globesms.errors import InvalidProviderRequest
from globesms.models.base import Model
from globesms.models.outbound import OutboundSms, by_field
from globesms.providers.bulk_numbers import all_plus_digits, joined_numbers, lengths_within

ACTION = "SendMultiGlobalSms"
API_VERSION = "2021-01-11"
SERVICE = "sms"
#: "This API only supports: ap-singapore, eu-frankfurt" (seed 003).
REGIONS = frozenset({"ap-singapore", "eu-frankfurt"})
MAX_RECIPIENTS_PER_CALL = 200
#: "SessionContext: ... length must be less than 512 bytes" (SDK model docs).
SESSION_CONTEXT_MAX_BYTES = 511

#: Sender ids: letters and digits; at most 11 if there is a letter, at most 15 if all digits (GSM address rules;
#: Tencent's API page states no format of its own, see providers.md "Sender IDs").
SENDER_ID_MAX_ALPHANUMERIC = 11
SENDER_ID_MAX_NUMERIC = 15
TEMPLATE_ID_MAX_DIGITS = 32  # ids are 6-7 digits today; this only bounds garbage

# The checks below run for every recipient on the hot path, so they use str methods rather than regexes; each
# `isdigit`/`isalnum` is paired with `isascii`, as those methods also accept non-ASCII digits and letters.


def check_batch(messages: Sequence[OutboundSms]) -> None:
    """Raise InvalidProviderRequest if the call or a message breaks a documented rule; nothing is sent then."""
    if len(messages) > MAX_RECIPIENTS_PER_CALL:
        raise InvalidProviderRequest(
            "messages", f"SendMultiGlobalSms takes at most {MAX_RECIPIENTS_PER_CALL} recipients per call"
        )
    if not all_valid(messages):
        for message in messages:
            problem = message_violation(message)
            if problem is not None:
                raise problem
    if len({m.message_id for m in messages}) != len(messages):
        raise InvalidProviderRequest(
            "message_id", "must be unique within one call: it is the SessionContext results are matched by"
        )


def all_valid(messages: Sequence[OutboundSms]) -> bool:
    """Whether `message_violation` is None for every message, checked field by field over the whole call: a call's
    200 messages checked one by one were half of building it. Template and sender ids are few, so each distinct one
    gets the per-message rule; numbers are joined and checked at once (`bulk_numbers`); message ids are bounded by
    length in characters, those past 127 characters by their UTF-8 bytes. `tests/unit/providers/
    test_tencent_client.py` holds it equal to the per-message rule."""
    if not messages:
        return True
    columns = by_field(messages)
    if columns["text"].count(None) != len(messages):
        return False
    for template_id in set(columns["template_id"]):
        if not (template_id and template_id.isdigit() and template_id.isascii()):
            return False
        if len(template_id) > TEMPLATE_ID_MAX_DIGITS:
            return False
    for sender_id in set(columns["sender_id"]):
        if sender_id is not None and _sender_violation(sender_id):
            return False
    numbers: Sequence[str] = columns["to"]
    joined = joined_numbers(numbers)
    if not (all_plus_digits(numbers, joined, 8, 16) and "\n+0" not in joined and "\n+86" not in joined):
        return False
    # Up to 127 characters is at most 508 UTF-8 bytes: within SessionContext's limit whatever the characters. Past
    # that (rare: our ids are ~32 characters), the bytes of each.
    ids: Sequence[str] = columns["message_id"]
    return lengths_within(ids, 1, SESSION_CONTEXT_MAX_BYTES // 4) or all(
        message_id and len(message_id.encode("utf-8")) <= SESSION_CONTEXT_MAX_BYTES for message_id in ids
    )


def _sender_violation(sender_id: str) -> bool:
    return not (
        sender_id.isalnum()
        and sender_id.isascii()
        and len(sender_id) <= (SENDER_ID_MAX_NUMERIC if sender_id.isdigit() else SENDER_ID_MAX_ALPHANUMERIC)
    )


def message_violation(message: OutboundSms) -> InvalidProviderRequest | None:
    """The first documented rule the message breaks, or None: the one rule set behind both `check_batch` and the
    client's per-message `check`."""
    if message.text is not None:
        return InvalidProviderRequest("text", "Tencent sends approved templates only: free text is not supported")
    template_id = message.template_id
    if not (
        template_id and template_id.isdigit() and template_id.isascii() and len(template_id) <= TEMPLATE_ID_MAX_DIGITS
    ):
        return InvalidProviderRequest("template_id", "required: the numeric id of an approved Global SMS template")
    digits = message.to[1:]
    if not (
        message.to[:1] == "+" and digits.isdigit() and digits.isascii() and 7 <= len(digits) <= 15 and digits[0] != "0"
    ):
        return InvalidProviderRequest("to", "must be an E.164 number: '+', country code and subscriber number")
    if digits[:2] == "86":
        # Country codes are prefix-free, so "86" is the Chinese mainland and nothing else (+852/+853/+886 differ).
        return InvalidProviderRequest("to", "Chinese mainland numbers (+86) are not served by SendMultiGlobalSms")
    sender_id = message.sender_id
    if sender_id is not None and _sender_violation(sender_id):
        return InvalidProviderRequest(
            "sender_id", "letters and digits only: at most 11 with a letter, at most 15 if all digits"
        )
    message_id = message.message_id
    if not message_id:
        return InvalidProviderRequest("message_id", "required: it travels as SessionContext")
    # A character is at most 4 UTF-8 bytes, so short ids skip the encoding.
    if len(message_id) * 4 > SESSION_CONTEXT_MAX_BYTES and len(message_id.encode("utf-8")) > SESSION_CONTEXT_MAX_BYTES:
        return InvalidProviderRequest("message_id", "must be shorter than 512 bytes (SessionContext limit)")
    # validity_seconds has no SendMultiGlobalSms field: the provider's default validity applies.
    return None


def request_body(sdk_app_id: str, messages: Sequence[OutboundSms]) -> bytes:
    """The JSON body, byte for byte what the SDK's `json.dumps(request._serialize())` gives, built by hand because
    it is the hot path (about twice as fast as building dicts for json.dumps).

    Expects messages that passed `check_batch`: numbers, template ids and sender ids are then ASCII digits and
    letters that need no escaping; free text (parameters, our id) goes through json's own ASCII escaper.
    Key order is the SDK's MultiSmsInfo order; no TemplateParamSet for a template without variables (the seed's
    second example omits it), no SenderId unless we have our own (the shared one is the default).
    """
    items: list[str] = []
    append = items.append
    for m in messages:
        params = (
            f', "TemplateParamSet": [{", ".join(map(_json_string, m.template_params))}]' if m.template_params else ""
        )
        sender = f', "SenderId": "{m.sender_id}"' if m.sender_id else ""
        append(
            f'{{"PhoneNumber": "{m.to}", "TemplateId": "{m.template_id}"{params}{sender}, '
            f'"SessionContext": {_json_string(m.message_id)}}}'
        )
    return f'{{"SmsSdkAppId": {_json_string(sdk_app_id)}, "MultiSmsInfoSet": [{", ".join(items)}]}}'.encode("ascii")


class _TencentModel(Model):
    model_config = ConfigDict(alias_generator=to_pascal, frozen=True, extra="ignore")


class ApiError(_TencentModel):
    code: str = Field(min_length=1)
    message: str = ""


class SendMultiStatus(_TencentModel):
    code: str = Field(min_length=1)
    message: str = ""
    serial_no: str = ""
    phone_number: str = ""
    fee: int = Field(default=0, ge=0)
    session_context: str = ""
    iso_code: str = ""


class SendMultiGlobalSmsResult(_TencentModel):
    request_id: str = ""
    error: ApiError | None = None
    send_multi_status_set: list[SendMultiStatus] | None = None

    @model_validator(mode="after")
    def _error_or_statuses(self) -> SendMultiGlobalSmsResult:
        if self.error is None and self.send_multi_status_set is None:
            raise ValueError("neither Error nor SendMultiStatusSet")
        return self


class ResponseEnvelope(_TencentModel):
    response: SendMultiGlobalSmsResult
