"""A delivery receipt as every provider's parser hands it to the logic: one normalised shape, raw values kept."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from globesms.domain.status import Status
from globesms.models.outbound import ProviderName


@dataclass(frozen=True, slots=True)
class EchoRange:
    """Where our echo field says the recipient is: message `first_seq` of `batch_id` when `last_seq` is the same
    (a per-recipient echo), else a later message of that batch sent to the report's number (Alibaba's batch TaskId,
    Huawei's per-call `extend` name a call's first message; the call's others have later, not always consecutive,
    ids)."""

    batch_id: str
    first_seq: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    provider: ProviderName
    provider_message_id: str  # Alibaba MessageId, Tencent sid (= SerialNo), Huawei smsMsgId
    status: Status | None  # DELIVERED / UNDELIVERED / EXPIRED / REJECTED; None for an intermediate report
    raw_status: str  # exactly as the provider sent it ("1", "SUCCESS", "DELIVRD", ...)
    error_code: str | None = None  # the carrier's code (Alibaba ErrorCode, Tencent errmsg, Huawei status/orgCode)
    description: str | None = None
    to: str | None = None  # E.164 when the provider's number could be normalised, else as sent
    echo: EchoRange | None = None
    provider_time: str | None = None  # the provider's own timestamp of the outcome, as sent
    part: int | None = None  # Huawei long messages: `sequence` of `total`
    parts: int | None = None
    # Tencent's finer error (from 2026-12-01: `sub_error`/`sub_error_desc` pushed, `SubError`/`SubErrorDesc` pulled)
    sub_error: str | None = None
    sub_error_desc: str | None = None
    kind: str = "receipt"  # "receipt" (pushed) or "pulled" (a status query's answer, reconcile/)

    @property
    def receipt_id(self) -> str:
        """Stable across repeated pushes of the same report, different for different reports."""
        key = "\x1f".join(
            str(v) for v in (self.provider, self.provider_message_id, self.raw_status, self.provider_time, self.part)
        )
        return hashlib.sha256(key.encode()).hexdigest()[:20]

    def event(self, received_at: str) -> dict[str, Any]:
        """The entry kept in the message's history."""
        entry: dict[str, Any] = {
            "id": self.receipt_id,
            "type": self.kind,
            "provider_message_id": self.provider_message_id,
            "status": self.status.value if self.status else None,
            "raw_status": self.raw_status,
            "error_code": self.error_code,
            "description": self.description,
            "provider_time": self.provider_time,
            "part": self.part,
            "parts": self.parts,
            "sub_error": self.sub_error,
            "sub_error_desc": self.sub_error_desc,
            "received_at": received_at,
        }
        return {k: v for k, v in entry.items() if v is not None}


@dataclass(frozen=True, slots=True)
class ParsedPush:
    """One push body: the reports that parsed, and a reason for each item that did not (the rest still count)."""

    reports: list[DeliveryReport]
    refused_items: list[str]


class ReceiptBodyInvalid(ValueError):
    """The push body as a whole cannot be read (not JSON / not the provider's shape): answered 400."""


class TooManyReports(ValueError):
    """The push carries more reports than its provider sends at once (receipts.push_limits): refused whole, 413,
    found before any report is validated."""

    def __init__(self, reports: int) -> None:
        super().__init__(f"{reports} reports in one push")
        self.reports = reports


@dataclass(frozen=True, slots=True)
class HeldReceipts:
    """Receipts held (`ReceiptStore.hold_receipt`) for a known message, by its id, and those held under a provider
    id, by that id. Two key spaces: a message whose send had an unknown outcome has no provider id to look its
    receipts up by, and no provider id (whatever a push spells) may name a message's held receipts."""

    for_messages: dict[str, list[dict[str, Any]]]
    by_provider_id: dict[str, list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class StatusAnswer:
    """A provider's answer to a status query about one message (reconcile/): the report it amounts to when the
    provider knows an outcome (`report.status` final), or `pending` when it says the message is still on its way
    or knows nothing yet. An unreadable answer or a failed call is not an answer: the client raises
    `StatusQueryFailed` and the message is asked about again later, never given a final status for it."""

    report: DeliveryReport | None = None
    pending: bool = False


class StatusQueryFailed(RuntimeError):
    """A status query that could not be made or read (transport, throttling, an answer that fails validation)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
