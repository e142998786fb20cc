"""What the three receipt parsers (`<provider>/receipts.py`) share: reading a JSON body, reading its reports one
by one (a broken report is refused on its own, with a reason that never quotes the input), the forgiving field
validators, our message id inside an echo field, and numbers in E.164.

Each provider's own rules stay in its module: the report model and its status mapping, which characters its echo
field allows around our message id, and how its number is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from pydantic import ValidationError

from globesms.models.receipts import DeliveryReport, ParsedPush, ReceiptBodyInvalid, TooManyReports
from globesms.models.records import MAX_SEQ_DIGITS
from globesms.validation import describe

if TYPE_CHECKING:
    import phonenumbers

MAX_DESCRIPTION_CHARS: Final = 512  # a description is free text kept in every event: bounded, never refused


class Receipt(Protocol):
    """A provider's validated report."""

    def report(self) -> DeliveryReport: ...


# ------------------------------------------------------------------------------------------------------- bodies


def read_json(body: bytes) -> Any:
    """The JSON value of `body` (NaN and Infinity are not JSON); raises ReceiptBodyInvalid when it is none."""
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ReceiptBodyInvalid("the body is not JSON") from None


def read_json_array(body: bytes) -> list[Any]:
    """The items of a body that must be a JSON array of reports; raises ReceiptBodyInvalid otherwise."""
    payload = read_json(body)
    if not isinstance(payload, list):
        raise ReceiptBodyInvalid("the body is not a JSON array of reports")
    return payload


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_reports(items: Sequence[Any], validate: Callable[[Any], Receipt], at_most: int | None = None) -> ParsedPush:
    """Each item validated on its own (`validate` is the provider's `model_validate`): the reports that pass, and a
    reason for each item that does not, naming its index. More than `at_most` items raise TooManyReports before
    any is validated: validating a forged push of millions took its function's whole timeout."""
    if at_most is not None and len(items) > at_most:
        raise TooManyReports(len(items))
    reports: list[DeliveryReport] = []
    refused: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            refused.append(f"item {index}: not a JSON object")
            continue
        try:
            receipt = validate(item)
        except ValidationError as exc:
            refused.append(refusal(index, exc))
            continue
        reports.append(receipt.report())
    return ParsedPush(reports=reports, refused_items=refused)


def refusal(index: int, error: ValidationError) -> str:
    """`item <i>: <field>: <rule>` for each broken rule; pydantic's messages never quote the input."""
    return f"item {index}: " + describe(error, default="(item)")


# ------------------------------------------------------------------------------------------------------- fields


def blank_is_absent(value: Any) -> Any:
    """A `mode="before"` validator for optional fields: a blank string is the field left out."""
    return None if isinstance(value, str) and not value.strip() else value


def echo_text(value: Any) -> Any:
    """A `mode="before"` validator for an echo field: only a string (or a number) can be our id; any other shape
    means "no echo", never a refused receipt."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return value


def bounded_description(text: str | None) -> str | None:
    return text[:MAX_DESCRIPTION_CHARS] if text else None


# message_id() pads to 5 digits; more than MAX_SEQ_DIGITS names no message (and int() of an echoed run of thousands
# of digits raised ValueError: the whole push answered 5xx, retried for good).
_SEQ = re.compile(rf"[0-9]{{5,{MAX_SEQ_DIGITS}}}")


def our_message_id(text: str | None, batch_id: re.Pattern[str]) -> tuple[str, int] | None:
    """(batch_id, seq) when `text` has the shape of our message id (`<batch_id>.<seq:05d>`) with a batch id that
    `batch_id` fully matches (what the provider's echo field allows), else None."""
    if not text:
        return None
    batch, dot, seq = text.rpartition(".")
    if not dot or not batch_id.fullmatch(batch) or not _SEQ.fullmatch(seq):
        return None
    return batch, int(seq)


# ------------------------------------------------------------------------------------------------------ numbers


_DIALLABLE = re.compile(r"\+?[0-9][0-9 \-]{3,30}")


def is_diallable(text: str) -> bool:
    """Digits (spaces and dashes allowed), with or without a leading "+": worth handing to phonenumbers."""
    return _DIALLABLE.fullmatch(text) is not None


# phonenumbers is imported by the functions that read numbers, on their first call: the provider clients import
# this module through their status queries, and a dispatcher, which reads no receipt, would pay its import
# (~100 million instructions, ~5% of its cold start) for nothing.


def parsed_number(text: str) -> phonenumbers.PhoneNumber | None:
    """`text` ("+<country code><number>") as phonenumbers reads it, or None."""
    import phonenumbers

    try:
        return phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None


def e164(number: phonenumbers.PhoneNumber) -> str:
    import phonenumbers

    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def normalised_number(raw: str | None) -> str | None:
    """A number written with its country code, with or without the "+", in E.164; kept as sent when phonenumbers
    cannot read it as a possible number."""
    if not raw:
        return None
    if not is_diallable(raw):
        return raw
    import phonenumbers

    number = parsed_number(raw if raw.startswith("+") else "+" + raw)
    if number is None or not phonenumbers.is_possible_number(number):
        return raw
    return e164(number)
