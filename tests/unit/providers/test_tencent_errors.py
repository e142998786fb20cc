"""Every Tencent code we were given, with the category we decided for it (copied from the seed, not the map)."""

from __future__ import annotations

import pytest

from globesms.errors import ErrorCategory
from globesms.providers.categories import CONFIG, RECIPIENT, REQUEST, RETRYABLE, THROTTLED, UNKNOWN_OUTCOME
from globesms.providers.tencent.errors import (
    CODE_CATEGORIES,
    category_for_status,
    category_for_unreadable_response,
    classify,
)

# The error-code table of seed 003 (SendMultiGlobalSms), in its order.
SEED_CODES: list[tuple[str, ErrorCategory]] = [
    ("FailedOperation.ContainSensitiveWord", REQUEST),
    ("FailedOperation.FailResolvePacket", REQUEST),
    ("FailedOperation.InsufficientBalanceInSmsPackage", CONFIG),
    ("FailedOperation.MarketingSendTimeConstraint", THROTTLED),
    ("FailedOperation.PhoneNumberInBlacklist", RECIPIENT),
    ("FailedOperation.SignatureIncorrectOrUnapproved", REQUEST),
    ("FailedOperation.TemplateIncorrectOrUnapproved", REQUEST),
    ("FailedOperation.TemplateParamSetNotMatchApprovedTemplate", REQUEST),
    ("FailedOperation.TemplateUnapprovedOrNotExist", REQUEST),
    ("InternalError.JsonParseFail", REQUEST),
    ("InternalError.OtherError", RETRYABLE),
    ("InternalError.RequestTimeException", CONFIG),
    ("InternalError.RestApiInterfaceNotExist", CONFIG),
    ("InternalError.SendAndRecvFail", UNKNOWN_OUTCOME),
    ("InternalError.SigFieldMissing", CONFIG),
    ("InternalError.SigVerificationFail", CONFIG),
    ("InternalError.Timeout", UNKNOWN_OUTCOME),
    ("InternalError.UnknownError", UNKNOWN_OUTCOME),
    ("InvalidParameterValue.ContentLengthLimit", REQUEST),
    ("InvalidParameterValue.IncorrectPhoneNumber", RECIPIENT),
    ("InvalidParameterValue.MultiSmsInfoSetEmpty", REQUEST),
    ("InvalidParameterValue.ProhibitedUseUrlInTemplateParameter", REQUEST),
    ("InvalidParameterValue.SdkAppIdNotExist", CONFIG),
    ("InvalidParameterValue.TemplateParameterFormatError", REQUEST),
    ("InvalidParameterValue.TemplateParameterLengthLimit", REQUEST),
    ("LimitExceeded.AppCountryOrRegionDailyLimit", THROTTLED),
    ("LimitExceeded.AppCountryOrRegionInBlacklist", RECIPIENT),
    ("LimitExceeded.AppDailyLimit", THROTTLED),
    ("LimitExceeded.AppGlobalDailyLimit", THROTTLED),
    ("LimitExceeded.AppMainlandChinaDailyLimit", THROTTLED),
    ("LimitExceeded.DailyLimit", THROTTLED),
    ("LimitExceeded.DeliveryFrequencyLimit", THROTTLED),
    ("LimitExceeded.PhoneNumberCountLimit", REQUEST),
    ("LimitExceeded.PhoneNumberDailyLimit", RECIPIENT),  # per number: neither retried nor failed over
    ("LimitExceeded.PhoneNumberOneHourLimit", RECIPIENT),  # per number: neither retried nor failed over
    ("LimitExceeded.PhoneNumberSameContentDailyLimit", RECIPIENT),  # per number: neither retried nor failed over
    ("LimitExceeded.PhoneNumberThirtySecondLimit", RECIPIENT),  # per number: neither retried nor failed over
    ("MissingParameter.EmptyPhoneNumberSet", REQUEST),
    ("UnauthorizedOperation.IndividualUserMarketingSmsPermissionDeny", CONFIG),
    ("UnauthorizedOperation.RequestIpNotInWhitelist", CONFIG),
    ("UnauthorizedOperation.RequestPermissionDeny", CONFIG),
    ("UnauthorizedOperation.SdkAppIdIsDisabled", CONFIG),
    ("UnauthorizedOperation.ServiceSuspendDueToArrears", CONFIG),
    ("UnauthorizedOperation.SmsSdkAppIdVerifyFail", CONFIG),
    ("UnsupportedOperation", REQUEST),
    ("UnsupportedOperation.ChineseMainlandTemplateToGlobalPhone", REQUEST),
    ("UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber", REQUEST),
    ("UnsupportedOperation.ContainDomesticPhoneNumber", RECIPIENT),
    ("UnsupportedOperation.GlobalTemplateToChineseMainlandPhone", RECIPIENT),
    ("UnsupportedOperation.UnsupportedRegion", CONFIG),
]

# The auth and rate codes providers.md names, and the API 3.0 common codes they belong to.
REFERENCE_CODES: list[tuple[str, ErrorCategory]] = [
    ("AuthFailure.SignatureFailure", CONFIG),
    ("AuthFailure.SignatureExpire", CONFIG),
    ("AuthFailure.SecretIdNotFound", CONFIG),
    ("AuthFailure.InvalidAuthorization", CONFIG),
    ("AuthFailure.InvalidSecretId", CONFIG),
    ("AuthFailure.UnauthorizedOperation", CONFIG),
    ("RequestLimitExceeded", THROTTLED),
    ("RequestLimitExceeded.UinLimitExceeded", THROTTLED),
    ("RequestLimitExceeded.IPLimitExceeded", THROTTLED),
    ("RequestLimitExceeded.GlobalRegionUinLimitExceeded", THROTTLED),
    ("LimitExceeded", THROTTLED),
    ("InternalError", UNKNOWN_OUTCOME),
    ("ServiceUnavailable", RETRYABLE),
    ("ResponseSizeLimitExceeded", UNKNOWN_OUTCOME),
    ("InvalidAction", CONFIG),
    ("NoSuchVersion", CONFIG),
    ("UnsupportedRegion", CONFIG),
    ("MissingParameter", REQUEST),
    ("UnknownParameter", REQUEST),
    ("InvalidParameter", REQUEST),
    ("InvalidParameterValue", REQUEST),
]


@pytest.mark.parametrize(("code", "category"), SEED_CODES + REFERENCE_CODES)
def test_every_listed_code_is_mapped_to_its_category(code: str, category: ErrorCategory) -> None:
    assert CODE_CATEGORIES.get(code) == category, f"{code} missing from or wrongly mapped in CODE_CATEGORIES"
    assert classify(code) == category


def test_seed_table_is_complete() -> None:
    # 50 rows in the seed's table; a dropped row in SEED_CODES would silently shrink what the test covers.
    assert len(SEED_CODES) == 50
    assert len({code for code, _ in SEED_CODES}) == 50


@pytest.mark.parametrize(
    ("code", "category"),
    [
        ("LimitExceeded.SomethingNew", THROTTLED),
        ("AuthFailure.SomethingNew", CONFIG),
        ("InternalError.SomethingNew", UNKNOWN_OUTCOME),
        ("UnauthorizedOperation.SomethingNew", CONFIG),
        ("InvalidParameterValue.SomethingNew", REQUEST),
        ("FailedOperation.SomethingNew", REQUEST),
    ],
)
def test_an_unknown_code_falls_back_to_its_family(code: str, category: ErrorCategory) -> None:
    assert code not in CODE_CATEGORIES
    assert classify(code) == category


@pytest.mark.parametrize(
    ("http_status", "category"),
    [
        (200, RETRYABLE),
        (None, RETRYABLE),
        (429, THROTTLED),
        (401, CONFIG),
        (403, CONFIG),
        (400, REQUEST),
        (503, RETRYABLE),
    ],
)
def test_an_unknown_family_falls_back_to_the_http_status(http_status: int | None, category: ErrorCategory) -> None:
    assert category_for_status(http_status) == category
    assert classify("NeverHeardOf.This", http_status) == category


@pytest.mark.parametrize(
    ("http_status", "category"),
    [
        (200, UNKNOWN_OUTCOME),  # Tencent answered: the send may have happened
        (429, THROTTLED),
        (502, RETRYABLE),
        (503, RETRYABLE),
        (500, UNKNOWN_OUTCOME),
        (504, UNKNOWN_OUTCOME),
        (401, CONFIG),
        (404, CONFIG),
        (400, REQUEST),
    ],
)
def test_an_unreadable_response_is_judged_by_who_answered(http_status: int, category: ErrorCategory) -> None:
    assert category_for_unreadable_response(http_status) == category
