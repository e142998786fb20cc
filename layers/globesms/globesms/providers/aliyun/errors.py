"""Alibaba's raw error codes and what each means for us.

Two families reach the client:
- business codes in `ResponseCode` of an HTTP 200 answer (the international SMS "common error codes" page; the
  seed pages point there and providers.md names MOBILE_NUMBER_ILLEGAL, INVALID_SENDERID, MOBILE_COUNT_OVER_LIMIT,
  OUT_OF_SERVICE, FORBIDDEN_ACTION, CONTENT_MISSING_PARAMETERS);
- gateway codes in `Code` of a 4xx/5xx answer (signature, keys, time stamps, nonces, flow control). Alibaba's
  gateway answers its flow control with HTTP 400, so the code decides, not the status.

A new code is one line in `CODE_CATEGORIES`. A code not listed falls back to its family (`_PREFIX_CATEGORIES`), then
to the HTTP status (`category_for_status`).
"""

from __future__ import annotations

from globesms.errors import ErrorCategory, ProviderCallCode, ProviderError
from globesms.providers.categories import CONFIG, RECIPIENT, REQUEST, RETRYABLE, THROTTLED, UNKNOWN_OUTCOME

OK = "OK"

#: Our own codes, for what the provider did not say in a code of its own (`globesms.errors.ProviderCallCode`, and
#: the name of the answer's field that listed the number).
FAILED_LIST = "FailedList"  # a batch call accepted the call but listed this number in FailedList
MALFORMED_RESPONSE = ProviderCallCode.MALFORMED_RESPONSE
MESSAGE_ID_LIST_MISMATCH = ProviderCallCode.MESSAGE_ID_LIST_MISMATCH

CODE_CATEGORIES: dict[str, ErrorCategory] = {
    # --- business codes (ResponseCode, HTTP 200) ---
    "INVALID_SENDERID": REQUEST,  # sender id invalid or not approved
    "FORBIDDEN_ACTION": CONFIG,  # the account's API access was downgraded
    "OUT_OF_SERVICE": CONFIG,  # international SMS suspended for the account
    "ACCOUNT_NOT_EXISTS": CONFIG,
    "SMS_CONTENT_CODE_ILLEGAL": REQUEST,
    "SMS_SIGN_NAME_ILLEGAL": REQUEST,
    "MOBILE_NUMBER_ILLEGAL": RECIPIENT,
    "MOBILE_COUNT_OVER_LIMIT": REQUEST,  # more than 1,000 numbers in one batch call
    "CONTENT_MISSING_PARAMETERS": REQUEST,
    "INVALID_PARAMETERS": REQUEST,
    "INVALID_JSON_PARAM": REQUEST,
    "PARAM_LENGTH_LIMIT": REQUEST,
    "AMOUNT_NOT_ENOUGH": CONFIG,  # balance or resource package used up
    "SYSTEM_ERROR": RETRYABLE,  # an explicit rejection: the message was not taken, so sending again is safe
    "DATA_NOT_EXIST": REQUEST,
    "QPS_LIMIT_CONTROL": THROTTLED,
    "ONLINE_BILLING_FAILED": RETRYABLE,  # "billing system busy, try again later"
    "QUERY_DATE_ILLEGAL": REQUEST,
    "RAM_PERMISSION_DENY": CONFIG,
    "PRODUCT_NOT_SUBSCRIBED": CONFIG,
    "SMS_SECURITY_INTERCEPTED": REQUEST,  # risk control stopped this message; sending it again changes nothing
    "SMS_CONTENT_ILLEGAL": REQUEST,
    "ACCOUNT_ILLEGAL": CONFIG,  # account blacklisted
    "BLACK_KEY_CONTROL_LIMIT": REQUEST,
    "NOT_SUPPORTED_COUNTRY": RECIPIENT,
    # --- gateway codes (Code, HTTP 4xx/5xx) ---
    "SignatureDoesNotMatch": CONFIG,
    "IncompleteSignature": CONFIG,
    "InvalidAccessKeyId.NotFound": CONFIG,
    "InvalidAccessKeyId.Inactive": CONFIG,
    "Forbidden.RAM": CONFIG,
    "Forbidden.AccessKeyDisabled": CONFIG,
    # More than 15 minutes between our clock and theirs: a host clock problem, not something a retry fixes.
    "InvalidTimeStamp.Expired": CONFIG,
    "InvalidTimeStamp.Format": CONFIG,
    # The gateway refused the request before doing anything with it; a new request carries a new nonce.
    "SignatureNonceUsed": RETRYABLE,
    "Throttling": THROTTLED,
    "Throttling.User": THROTTLED,
    "Throttling.Api": THROTTLED,
    "InvalidAction.NotFound": CONFIG,  # wrong endpoint or API version for this action
    "InvalidVersion": CONFIG,
    "MissingParameter": REQUEST,
    "InvalidParameter": REQUEST,
    # "The request processing has failed due to some unknown error": nothing says the backend had not taken the
    # call (as for a bare 500, `category_for_status`), so it may have been sent; sending it again could text twice.
    "InternalError": UNKNOWN_OUTCOME,
    "ServiceUnavailable": RETRYABLE,
    # --- ours ---
    FAILED_LIST: RECIPIENT,
    MALFORMED_RESPONSE: UNKNOWN_OUTCOME,
    MESSAGE_ID_LIST_MISMATCH: UNKNOWN_OUTCOME,
}

# Gateway codes come in families ("Throttling.*", "InvalidAccessKeyId.*", "Missing<Param>"): a member we have not
# listed still belongs with its family. Checked in order; the first prefix that matches wins.
_PREFIX_CATEGORIES: tuple[tuple[str, ErrorCategory], ...] = (
    ("Throttling", THROTTLED),
    ("InvalidAccessKeyId", CONFIG),
    ("Forbidden", CONFIG),
    ("InvalidTimeStamp", CONFIG),
    ("Signature", CONFIG),
    ("Missing", REQUEST),
    ("Invalid", REQUEST),
)


def category_for_status(http_status: int | None) -> ErrorCategory:
    if http_status == 429:
        return THROTTLED
    if http_status in (401, 403, 404):
        return CONFIG
    if http_status in (502, 503):
        # A gateway or load balancer found no backend to hand the call to: nothing reached the SMS service.
        return RETRYABLE
    if http_status is not None and http_status >= 500:
        # 500 (without a code we know, e.g. a bare error page), 504 and the rest: the backend may have taken the
        # call before failing or timing out, so it may have been sent. Sending it again could text twice.
        return UNKNOWN_OUTCOME
    # 200 with a ResponseCode we do not know, or any other 4xx: treated as a final problem with the request
    # rather than retried blindly; the raw code stays on the record.
    return REQUEST


def category_for(code: str, http_status: int | None = None) -> ErrorCategory:
    category = CODE_CATEGORIES.get(code)
    if category is not None:
        return category
    for prefix, family in _PREFIX_CATEGORIES:
        if code.startswith(prefix):
            return family
    return category_for_status(http_status)


def provider_error(code: str, message: str = "", http_status: int | None = None) -> ProviderError:
    return ProviderError(category_for(code, http_status), code, message, http_status)


#: Receipt-driven failover (`receipts.failover`): the `ErrorCode` of an UNDELIVERED receipt, and whether sending
#: once more through another provider can fix it (a route or operator failure) or not (the number, the person). A
#: code not listed never resends: an extra send costs money and may text somebody twice for nothing. Alibaba's pages
#: list no receipt-level carrier codes; `ROUTE_FAILURE` is the route failure the emulators report.
RECEIPT_FAILOVER: dict[str, bool] = {
    "ROUTE_FAILURE": True,
    "UNDELIV": False,  # the bare SMPP stat: no reason given, so no reason to pay twice
    "MOBILE_NUMBER_ILLEGAL": False,  # the number does not exist
}
