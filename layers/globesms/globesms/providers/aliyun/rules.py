"""Alibaba's documented field rules for SendMessageToGlobe / BatchSendMessageToGlobe, as pure checks.

Each check returns None when the value is fine, or the rule it breaks. The client turns a broken rule into
`InvalidProviderRequest` before anything is sent; the emulator answers the provider's own error code for it. One
definition for both sides keeps them from drifting apart (the signature check is the one part the emulator
implements on its own, so that a signing bug cannot hide behind shared code).
"""

from __future__ import annotations

API_VERSION = "2018-05-01"
SEND_ONE = "SendMessageToGlobe"
SEND_BATCH = "BatchSendMessageToGlobe"

MAX_BATCH_RECIPIENTS = 1000  # BatchSendMessageToGlobe: "up to 1,000 mobile phone numbers" per request
MAX_TASK_ID_LENGTH = 255
BATCH_TYPES = frozenset({"NOTIFY", "MKT"})  # the batch page lists only these two; OTP goes one number per call
SINGLE_TYPES = frozenset({"OTP", "NOTIFY", "MKT"})

MAINLAND_DIALING_CODE = "86"  # both global operations refuse the Chinese mainland

# These checks run for every recipient of every send, so they use str methods rather than regexes: `isascii()`
# first, as `isdigit`/`isalnum` alone also accept non-ASCII digits and letters (for ASCII text they are exactly
# [0-9] and [A-Za-z0-9]).


def sender_id_violation(sender_id: str) -> str | None:
    """`From`: letters and digits only; at most 11 characters when it has a letter, at most 15 digits when numeric.

    The pages word it differently ("contains letters and digits" on the older SendMessageToGlobe page, "contains
    letters" on the batch page, "alphanumeric" vs "numeric-only" on the newer one); all agree on this reading."""
    if not (sender_id.isascii() and sender_id.isalnum()):  # "".isalnum() is False
        return "must be 1-15 ASCII letters and digits only"
    if sender_id.isdigit():
        return None if len(sender_id) <= 15 else "a numeric sender id is at most 15 digits"
    return None if len(sender_id) <= 11 else "an alphanumeric sender id is at most 11 characters"


def task_id_violation(task_id: str) -> str | None:
    # The older pages say 1-255 characters, the newer "up to 255": an empty TaskId is no id, so 1-255.
    if not 1 <= len(task_id) <= MAX_TASK_ID_LENGTH:
        return f"TaskId must be 1-{MAX_TASK_ID_LENGTH} characters"
    return None


def wire_number_violation(number: str) -> str | None:
    """`To` as sent: the dialing code and number, digits only (our E.164 without its "+"): 6-15 digits, no
    leading zero (a dialing code never starts with 0)."""
    if not (5 < len(number) < 16 and number.isascii() and number.isdigit() and number[0] != "0"):
        return "must be the dialing code and number, 6-15 digits"
    if is_mainland(number):
        return "numbers in the Chinese mainland (+86) cannot be sent through Alibaba's global SMS API"
    return None


def is_mainland(wire_number: str) -> bool:
    # Country calling codes are prefix-free, so "86..." can only be China (852, 853, 855, 856 start with "85").
    return wire_number.startswith(MAINLAND_DIALING_CODE)


def to_wire_number(e164: str) -> str:
    return e164[1:] if e164.startswith("+") else e164
