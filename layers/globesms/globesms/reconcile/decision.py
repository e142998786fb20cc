"""What to do with one message past its receipt deadline (pure).

- The provider answered with a final outcome: apply it like a pushed receipt (it is one, pulled).
- It answered "still delivering" (or knows nothing yet): move the deadline, `max_pending_extensions` times (once by
  default); after that the message ends EXPIRED with NO_RECEIPT.
- The provider has no status query (Huawei): EXPIRED with NO_RECEIPT at once.
A query that failed or could not be read is no answer at all: the caller asks again later (`retry`), and never
turns it into a final status, until `max_query_failures` in a row: then it ends as one without a query would.
"""

from __future__ import annotations

from dataclasses import dataclass

from globesms.models.receipts import DeliveryReport, StatusAnswer
from globesms.models.records import MessageRecord
from globesms.reconcile.deadline import DeadlinePolicy


@dataclass(frozen=True, slots=True)
class ApplyReport:
    report: DeliveryReport


@dataclass(frozen=True, slots=True)
class Reschedule:
    due_at: int
    tries: int
    failures: int = 0  # status queries in a row that failed (an answer, even "still delivering", resets it)


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
    """After a failed query: ask again in `retry_seconds`, without using up a pending extension; after
    `max_query_failures` in a row, give up: Expire."""
    failures = (record.query_failures or 0) + 1
    if failures > policy.max_query_failures:
        return Expire()
    return Reschedule(now_epoch + policy.retry_seconds, record.reconcile_tries or 0, failures)
