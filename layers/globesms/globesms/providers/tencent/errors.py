"""Tencent Cloud error codes -> our ErrorCategory.

Sources: the SendMultiGlobalSms page (seed 003: every business code of the operation), API 3.0's common error
codes (which are also the family names every specific code starts with), the auth and rate codes named in
providers.md, and a few send-path codes from the SDK's `sms.v20210111.errorcodes`. A new code is one line.

Lookup order: the exact code, then its family (the part before the first "."), then a default by HTTP status
(Tencent answers errors with HTTP 200, so the status only decides for gateways and proxies in front of it).
"""

from __future__ import annotations

from globesms.errors import ErrorCategory
from globesms.providers.categories import CONFIG, RECIPIENT, REQUEST, RETRYABLE, THROTTLED, UNKNOWN_OUTCOME

#: The per-recipient success code in SendMultiStatusSet.
OK_CODE = "Ok"

CODE_CATEGORIES: dict[str, ErrorCategory] = {
    # --- API 3.0 common codes; each is also the fallback for its whole family ---
    "ActionOffline": CONFIG,
    "AuthFailure": CONFIG,
    "AuthFailure.InvalidAuthorization": CONFIG,
    "AuthFailure.InvalidSecretId": CONFIG,
    "AuthFailure.MFAFailure": CONFIG,
    "AuthFailure.SecretIdNotFound": CONFIG,
    # Our clock is off by more than 5 minutes: re-signing now would fail the same way until the clock is fixed.
    "AuthFailure.SignatureExpire": CONFIG,
    "AuthFailure.SignatureFailure": CONFIG,
    "AuthFailure.TokenFailure": CONFIG,
    "AuthFailure.UnauthorizedOperation": CONFIG,
    "DryRunOperation": REQUEST,
    "FailedOperation": REQUEST,
    # A whole call's "internal error" (and a member of the family not listed below): nothing says the service had
    # not run the call, so its messages may be on their way; sending them again could text twice.
    "InternalError": UNKNOWN_OUTCOME,
    "InvalidAction": CONFIG,
    "InvalidParameter": REQUEST,
    "InvalidParameterValue": REQUEST,
    "InvalidRequest": REQUEST,
    "IpInBlacklist": CONFIG,
    "IpNotInWhitelist": CONFIG,
    "LimitExceeded": THROTTLED,
    "MissingParameter": REQUEST,
    "NoSuchProduct": CONFIG,
    "NoSuchVersion": CONFIG,
    "RequestLimitExceeded": THROTTLED,
    "RequestLimitExceeded.GlobalRegionUinLimitExceeded": THROTTLED,
    "RequestLimitExceeded.IPLimitExceeded": THROTTLED,
    "RequestLimitExceeded.UinLimitExceeded": THROTTLED,
    "RequestSizeLimitExceeded": REQUEST,
    "ResourceInUse": RETRYABLE,
    "ResourceInsufficient": RETRYABLE,
    "ResourceNotFound": CONFIG,
    "ResourceUnavailable": RETRYABLE,
    # The action ran; only its answer was too big to return: whatever it did (a send) may have happened.
    "ResponseSizeLimitExceeded": UNKNOWN_OUTCOME,
    "ServiceUnavailable": RETRYABLE,
    "UnauthorizedOperation": CONFIG,
    "UnknownParameter": REQUEST,
    "UnsupportedOperation": REQUEST,
    "UnsupportedProtocol": CONFIG,
    "UnsupportedRegion": CONFIG,
    # --- SendMultiGlobalSms business codes (seed 003) ---
    "FailedOperation.ContainSensitiveWord": REQUEST,
    "FailedOperation.FailResolvePacket": REQUEST,
    "FailedOperation.InsufficientBalanceInSmsPackage": CONFIG,
    # A timing rule, not a fault of the message or the number: marketing SMS are refused outside 08:00-22:00, and
    # the very same request succeeds once the window opens. THROTTLED ("retry later") says exactly that; REQUEST
    # would drop a valid message for good and RETRYABLE would retry at once into the same refusal.
    "FailedOperation.MarketingSendTimeConstraint": THROTTLED,
    "FailedOperation.PhoneNumberInBlacklist": RECIPIENT,
    # The SMS signature (sign name) is ours to get approved, like the template; it is not the API signature.
    "FailedOperation.SignatureIncorrectOrUnapproved": REQUEST,
    "FailedOperation.TemplateIncorrectOrUnapproved": REQUEST,
    "FailedOperation.TemplateParamSetNotMatchApprovedTemplate": REQUEST,
    "FailedOperation.TemplateUnapprovedOrNotExist": REQUEST,
    "InternalError.JsonParseFail": REQUEST,
    "InternalError.OtherError": RETRYABLE,
    # "Your server time differs from Tencent's by more than 10 minutes": our clock, so configuration.
    "InternalError.RequestTimeException": CONFIG,
    "InternalError.RestApiInterfaceNotExist": CONFIG,
    # Both say the provider timed out *while delivering*: the message may be on its way, so never resend blindly.
    "InternalError.SendAndRecvFail": UNKNOWN_OUTCOME,
    "InternalError.Timeout": UNKNOWN_OUTCOME,
    "InternalError.SigFieldMissing": CONFIG,
    "InternalError.SigVerificationFail": CONFIG,
    "InternalError.UnknownError": UNKNOWN_OUTCOME,  # "Unknown error": whether it was sent is unknown too
    "InvalidParameterValue.ContentLengthLimit": REQUEST,
    "InvalidParameterValue.IncorrectPhoneNumber": RECIPIENT,
    "InvalidParameterValue.MultiSmsInfoSetEmpty": REQUEST,
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter": REQUEST,
    "InvalidParameterValue.SdkAppIdNotExist": CONFIG,
    "InvalidParameterValue.TemplateParameterFormatError": REQUEST,
    # Depends on the account type (individual: 12 characters), not on the message alone; still ours to fix.
    "InvalidParameterValue.TemplateParameterLengthLimit": REQUEST,
    # Daily and frequency quotas: the same send succeeds later, so they are throttling, not failures.
    "LimitExceeded.AppCountryOrRegionDailyLimit": THROTTLED,
    # "Country not in the application's allowed list": this number cannot be reached with this account.
    "LimitExceeded.AppCountryOrRegionInBlacklist": RECIPIENT,
    "LimitExceeded.AppDailyLimit": THROTTLED,
    "LimitExceeded.AppGlobalDailyLimit": THROTTLED,
    "LimitExceeded.AppMainlandChinaDailyLimit": THROTTLED,
    "LimitExceeded.DailyLimit": THROTTLED,
    "LimitExceeded.DeliveryFrequencyLimit": THROTTLED,
    # More than 200 numbers in one call: our batching is wrong, waiting will not help.
    "LimitExceeded.PhoneNumberCountLimit": REQUEST,
    # Tencent's limits per number (30 s, an hour, a day, the same text a day): the person has had what the limit
    # allows, so this recipient fails here; retried, a day's limit does not clear in a pack's minutes of backoff,
    # and failed over, another provider would text them past it (as RECEIPT_FAILOVER says for the receipts).
    "LimitExceeded.PhoneNumberDailyLimit": RECIPIENT,
    "LimitExceeded.PhoneNumberOneHourLimit": RECIPIENT,
    "LimitExceeded.PhoneNumberSameContentDailyLimit": RECIPIENT,
    "LimitExceeded.PhoneNumberThirtySecondLimit": RECIPIENT,
    "MissingParameter.EmptyPhoneNumberSet": REQUEST,
    "UnauthorizedOperation.IndividualUserMarketingSmsPermissionDeny": CONFIG,
    "UnauthorizedOperation.RequestIpNotInWhitelist": CONFIG,
    "UnauthorizedOperation.RequestPermissionDeny": CONFIG,
    "UnauthorizedOperation.SdkAppIdIsDisabled": CONFIG,
    "UnauthorizedOperation.ServiceSuspendDueToArrears": CONFIG,
    "UnauthorizedOperation.SmsSdkAppIdVerifyFail": CONFIG,
    "UnsupportedOperation.ChineseMainlandTemplateToGlobalPhone": REQUEST,
    # Checks on signature/template region as much as on the numbers (the docs' own hints): ours to fix.
    "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber": REQUEST,
    # A mainland number: this API will never serve it (the client refuses +86 before sending anyway).
    "UnsupportedOperation.ContainDomesticPhoneNumber": RECIPIENT,
    "UnsupportedOperation.GlobalTemplateToChineseMainlandPhone": RECIPIENT,
    "UnsupportedOperation.UnsupportedRegion": CONFIG,
    # --- send-path codes the SDK's errorcodes list adds to the seed ---
    "FailedOperation.JsonParseFail": REQUEST,
    "FailedOperation.OtherError": REQUEST,
    "FailedOperation.ParametersOtherError": REQUEST,
    "FailedOperation.PhoneNumberParseFail": RECIPIENT,
    "FailedOperation.ProhibitSubAccountUse": CONFIG,
    "FailedOperation.TemplateIdNotExist": REQUEST,
    # The backend answered but the gateway could not read it: the send may have happened.
    "InternalError.ParseBackendResponseFail": UNKNOWN_OUTCOME,
    "InvalidParameter.DirtyWordFound": REQUEST,
    "LimitExceeded.GlobalSmsSendingRateLimit": THROTTLED,
}


def category_for_status(http_status: int | None) -> ErrorCategory:
    """The default for an error code we do not know: a code means the provider refused rather than sent."""
    if http_status is None or 200 <= http_status < 300:
        return RETRYABLE  # a refusal we cannot read yet; bounded retries are safer than dropping the message
    if http_status == 429:
        return THROTTLED
    if http_status in (401, 403):
        return CONFIG
    if http_status >= 500:
        return RETRYABLE
    return REQUEST


def category_for_unreadable_response(http_status: int) -> ErrorCategory:
    """A response we could not parse: whether the provider sent anything depends on who answered."""
    if 200 <= http_status < 300:
        return UNKNOWN_OUTCOME  # Tencent itself answered; its per-number results are lost to us
    if http_status == 429:
        return THROTTLED
    if http_status in (502, 503):
        return RETRYABLE  # a gateway could not hand the call on: nothing reached the SMS service
    if http_status >= 500:
        return UNKNOWN_OUTCOME  # 500/504: the service may have run the call before failing or timing out
    if http_status in (401, 403, 404, 405):
        return CONFIG  # wrong credentials or wrong endpoint
    return REQUEST


def classify(code: str, http_status: int | None = 200) -> ErrorCategory:
    category = CODE_CATEGORIES.get(code)
    if category is None:
        category = CODE_CATEGORIES.get(code.partition(".")[0])
    return category if category is not None else category_for_status(http_status)


#: Receipt-driven failover (`receipts.failover`): the code of an UNDELIVERED receipt (`sub_error` when Tencent sends
#: one, else `errmsg`), and whether sending once more through another provider can fix it (a route or operator
#: failure) or not (the number, the person, the customer's own per-number limits). A code not listed never resends.
#: From the seed's error-code table, plus `ROUTE_FAILURE`, the route failure the emulators report.
RECEIPT_FAILOVER: dict[str, bool] = {
    "InternalError.Timeout": True,  # delivering the message timed out on this route
    "ROUTE_FAILURE": True,
    "UNDELIV": False,  # the bare SMPP stat: no reason given
    "InternalError.OtherError": False,  # no reason given
    "FailedOperation.PhoneNumberInBlacklist": False,  # the person opted out (or the carrier's opt-out list)
    "InvalidParameterValue.IncorrectPhoneNumber": False,  # the number does not exist
    "LimitExceeded.PhoneNumberDailyLimit": False,  # the per-number limits: another route would break them
    "LimitExceeded.PhoneNumberOneHourLimit": False,
    "LimitExceeded.PhoneNumberThirtySecondLimit": False,
    "LimitExceeded.PhoneNumberSameContentDailyLimit": False,
}
