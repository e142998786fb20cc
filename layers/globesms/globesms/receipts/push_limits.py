"""How many reports one receipt push may carry, and the refusal a provider understands when it carries more.

Every report costs DynamoDB reads and writes before the push is acknowledged (within the function's timeout), so a
push is bounded by what each provider documents it sends at most:
- Tencent: "up to 100" status reports per push (SMS Sending Status Notification).
- Huawei: one report per form-encoded push, at most 50 per Batch Status Reports push.
- Alibaba: its SmsReport batch push merges reports and documents no number; a push has never been seen to carry
  more than one batch call's recipients, so it is capped at that call's size, 1,000.
A push with more is refused whole with HTTP 413 in the provider's own acknowledgement shape, so its logs say why;
nothing of it is stored (the provider retries it, and it is refused again: only a misbehaving pusher sends one).
The count is checked before any report is validated, and the body's size before it is parsed: at most
MAX_BYTES_PER_REPORT a report (a report's fields are a few hundred bytes, its description at most 512 characters:
4 KB leaves room for whatever else a provider adds), so a body of millions of tiny items is refused unread, rather
than parsed into millions of objects in a 256 MB function.
"""

from __future__ import annotations

from typing import Any, Final

from globesms.models.outbound import ProviderName

MAX_REPORTS_PER_PUSH: Final[dict[ProviderName, int]] = {
    ProviderName.ALIYUN: 1_000,
    ProviderName.TENCENT: 100,
    ProviderName.HUAWEI: 50,
}
MAX_BYTES_PER_REPORT: Final = 4096
TOO_LARGE_STATUS: Final = 413


def max_push_bytes(provider: ProviderName) -> int:
    return MAX_REPORTS_PER_PUSH[provider] * MAX_BYTES_PER_REPORT


def too_large_acknowledgement(provider: ProviderName) -> dict[str, Any]:
    """The refusal body, in the shape of the provider's acknowledgement with a non-zero result."""
    reason = f"too many reports in one push: at most {MAX_REPORTS_PER_PUSH[provider]}"
    if provider is ProviderName.ALIYUN:
        return {"code": TOO_LARGE_STATUS, "msg": reason}  # Alibaba reads `code` (0 = received)
    if provider is ProviderName.TENCENT:
        return {"result": TOO_LARGE_STATUS, "errmsg": reason}  # Tencent reads `result` (0 = received)
    return {"result": "refused", "description": reason}  # Huawei reads only the HTTP status
