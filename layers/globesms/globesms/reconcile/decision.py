"""What to do with one message past its receipt deadline (pure).

- The provider answered with a final outcome: apply it like a pushed receipt (it is one, pulled).
- It answered "still delivering" (or knows nothing yet): move the deadline, `max_pending_extensions` times (once by
  default); after that the message ends EXPIRED with NO_RECEIPT.
- The provider has no status query (Huawei): EXPIRED with NO_RECEIPT at once.
A query that failed or could not be read is no answer at all: the caller asks again later (`retry`), and never
turns it into a final status, until `query_give_up_seconds` past the message's first deadline: then it ends as one
without a query would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from globesms.models.receipts import DeliveryReport, StatusAnswer
from globesms.models.records import MessageRecord
from globesms.reconcile.deadline import DeadlinePolicy, receipt_deadline


@dataclass(frozen=True, slots=True)
class ApplyReport:
    report: DeliveryReport


@dataclass(frozen=True, slots=True)
class Reschedule:
    due_at: int
    tries: int


@dataclass(frozen=True, slots=True)
class Expire:
    pass


Verdict = ApplyReport | Reschedule | Expire


def decide(record: MessageRecord, answer: StatusAnswer | None, now_epoch: int, policy: DeadlinePolicy) -> Verdict:
    """`answer` None: the provider has no status query."""
    if answer is None:
        return Expire()
    report = answer.report
    if report is not None and report.status is not None and report.status.is_final:
        return ApplyReport(report)
    tries = record.reconcile_tries or 0
    if tries < policy.max_pending_extensions:
        return Reschedule(now_epoch + policy.pending_extension_seconds, tries + 1)
    return Expire()


def retry(record: MessageRecord, now_epoch: int, policy: DeadlinePolicy) -> Reschedule | Expire:
    """After a failed query: ask again in `retry_seconds`, without using up a pending extension; past
    `query_give_up_seconds` after its first deadline (the one it got when submitted), give up: Expire."""
    if record.submitted_at is not None:
        submitted = int(datetime.fromisoformat(record.submitted_at).timestamp())
        first = receipt_deadline(submitted, record.validity_seconds, record.type, policy)
        if now_epoch >= first + policy.query_give_up_seconds:
            return Expire()
    return Reschedule(now_epoch + policy.retry_seconds, record.reconcile_tries or 0)
