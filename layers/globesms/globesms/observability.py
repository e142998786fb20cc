"""Logger, Metrics and Tracer shared by every handler, and the guard that keeps phone numbers out of logs."""

from __future__ import annotations

import logging
import re
from collections import Counter

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from globesms.models.api import AcceptResponse

SERVICE = "globesms"
NAMESPACE = "globesms"

_NUMBER = re.compile(r"\+?\d[\d \-]{6,18}\d")


def _mask_match(match: re.Match[str]) -> str:
    digits = match.group(0)
    return digits[:4] + "*" * max(len(digits) - 6, 0) + digits[-2:]


class PhoneNumberMask(logging.Filter):
    """Defence in depth: the code never logs a full number on purpose (it logs `phone.mask(...)`), and this filter
    masks anything that looks like one in a log line's message before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _NUMBER.sub(_mask_match, record.msg)
        if record.args:
            record.args = tuple(_NUMBER.sub(_mask_match, a) if isinstance(a, str) else a for a in record.args)
        return True


logger = Logger(service=SERVICE)
logger.addFilter(PhoneNumberMask())
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)


def emit_accept_metrics(result: AcceptResponse) -> None:
    """RecipientsAccepted per provider (one EMF line each: a metric set shares its dimensions) and
    RecipientsRejected."""
    for provider, count in Counter(m.provider for m in result.messages).items():
        with single_metric(
            name="RecipientsAccepted",
            unit=MetricUnit.Count,
            value=count,
            namespace=NAMESPACE,
            default_dimensions={"service": SERVICE, "provider": provider.value},
        ):
            pass
    metrics.add_metric(name="RecipientsRejected", unit=MetricUnit.Count, value=result.rejected)
