"""The rates each provider operation may be called at: the defaults, and the `GLOBESMS_RATE_LIMITS` overrides.

Pure data and parsing, a leaf module: the settings model validates the variable with it at cold start
(`config.RateLimitSettings`), and the permits (`dispatch.rate_limits`) enforce the rates it yields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final, Literal

from pydantic import Field, StrictInt, TypeAdapter, ValidationError

RATE_LIMITS_VARIABLE: Final = "GLOBESMS_RATE_LIMITS"

#: Calls per second per provider operation (the names the providers and our emulators count calls under).
#: - Alibaba SendMessageToGlobe: 2,000/s and BatchSendMessageToGlobe: 1/s (Alibaba's API rate limits);
#: - Tencent SendMultiGlobalSms: 10/s (Tencent's documented limit for the API);
#: - Huawei batchSendDiffSms: Huawei documents no per-API rate, only the advice to send "no more than 500 SMS per
#:   second" (more depends on the carriers' channels). One call carries up to 500 numbers, so 1 call/s is the
#:   only call rate that keeps every mix of call sizes within that advice. Raise it for traffic of small calls
#:   (one-number OTP calls, say) once a rate is agreed with Huawei.
DEFAULT_RATE_LIMITS: Final[Mapping[str, int]] = {
    "SendMessageToGlobe": 2000,
    "BatchSendMessageToGlobe": 1,
    "SendMultiGlobalSms": 10,
    "batchSendDiffSms": 1,
    # Status queries of the reconcile run (reconcile/): Alibaba QueryMessage 300/s (its API page); Tencent's pages
    # we read state no rate for PullSmsSendStatusByPhoneNumber: 10/s, as its send, until one is agreed.
    "QueryMessage": 300,
    "PullSmsSendStatusByPhoneNumber": 10,
}


#: `GLOBESMS_RATE_LIMITS`: every key a known operation, every value a whole number of calls per second (>= 1).
_RateLimitOverrides: TypeAdapter[dict[str, int]] = TypeAdapter(
    dict[
        Literal[
            "SendMessageToGlobe",
            "BatchSendMessageToGlobe",
            "SendMultiGlobalSms",
            "batchSendDiffSms",
            "QueryMessage",
            "PullSmsSendStatusByPhoneNumber",
        ],
        Annotated[StrictInt, Field(ge=1)],
    ]
)


def parse_rate_limits(text: str | None) -> dict[str, int]:
    """The defaults with the overrides of `text` (JSON object operation -> calls per second) applied. Raises
    ValueError naming each operation that is unknown or whose value is not a whole number of at least 1."""
    limits = dict(DEFAULT_RATE_LIMITS)
    if text is None or not text.strip():
        return limits
    try:
        overrides = _RateLimitOverrides.validate_json(text)
    except ValidationError as exc:
        raise ValueError(f"{RATE_LIMITS_VARIABLE}: {_describe(exc)}") from None
    limits.update(overrides)
    return limits


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        location = error["loc"]
        if not location:
            problems.append("must be a JSON object of operation -> calls per second")
        elif location[-1] == "[key]":
            known = ", ".join(DEFAULT_RATE_LIMITS)
            problems.append(f"{location[0]}: not a rate-limited provider operation (known: {known})")
        else:
            problems.append(f"{location[0]}: must be a whole number of calls per second, at least 1")
    return "; ".join(problems)
