"""Every Alibaba error code we know of, with the category we expect. The codes are copied from the sources (the
seed pages send readers to the international error-code page; providers.md names the gateway codes), not read
from the mapping, so a code missing from `CODE_CATEGORIES` fails here."""

from __future__ import annotations

import pytest

from globesms.errors import ErrorCategory
from globesms.providers.aliyun import errors

R = ErrorCategory.RETRYABLE
T = ErrorCategory.THROTTLED
P = ErrorCategory.RECIPIENT
Q = ErrorCategory.REQUEST
C = ErrorCategory.CONFIG
U = ErrorCategory.UNKNOWN_OUTCOME

# Business codes (ResponseCode, HTTP 200): Alibaba's "International error codes" page, common error codes.
BUSINESS_CODES = [
    ("INVALID_SENDERID", Q),
    ("FORBIDDEN_ACTION", C),
    ("OUT_OF_SERVICE", C),
    ("ACCOUNT_NOT_EXISTS", C),
    ("SMS_CONTENT_CODE_ILLEGAL", Q),
    ("SMS_SIGN_NAME_ILLEGAL", Q),
    ("MOBILE_NUMBER_ILLEGAL", P),
    ("MOBILE_COUNT_OVER_LIMIT", Q),
    ("CONTENT_MISSING_PARAMETERS", Q),
    ("INVALID_PARAMETERS", Q),
    ("INVALID_JSON_PARAM", Q),
    ("PARAM_LENGTH_LIMIT", Q),
    ("AMOUNT_NOT_ENOUGH", C),
    ("SYSTEM_ERROR", R),
    ("DATA_NOT_EXIST", Q),
    ("QPS_LIMIT_CONTROL", T),
    ("ONLINE_BILLING_FAILED", R),
    ("QUERY_DATE_ILLEGAL", Q),
    ("RAM_PERMISSION_DENY", C),
    ("PRODUCT_NOT_SUBSCRIBED", C),
    ("SMS_SECURITY_INTERCEPTED", Q),
    ("SMS_CONTENT_ILLEGAL", Q),
    ("ACCOUNT_ILLEGAL", C),
    ("BLACK_KEY_CONTROL_LIMIT", Q),
    ("NOT_SUPPORTED_COUNTRY", P),
]

# Gateway codes (Code, HTTP 4xx/5xx): providers.md names SignatureDoesNotMatch, InvalidAccessKeyId.NotFound,
# Throttling.User, InvalidTimeStamp.Expired, SignatureNonceUsed; the rest are the gateway's common codes.
GATEWAY_CODES = [
    ("SignatureDoesNotMatch", C),
    ("IncompleteSignature", C),
    ("InvalidAccessKeyId.NotFound", C),
    ("InvalidAccessKeyId.Inactive", C),
    ("Forbidden.RAM", C),
    ("Forbidden.AccessKeyDisabled", C),
    ("InvalidTimeStamp.Expired", C),
    ("InvalidTimeStamp.Format", C),
    ("SignatureNonceUsed", R),
    ("Throttling", T),
    ("Throttling.User", T),
    ("Throttling.Api", T),
    ("InvalidAction.NotFound", C),
    ("InvalidVersion", C),
    ("MissingParameter", Q),
    ("InvalidParameter", Q),
    ("InternalError", U),  # may have been taken: never resent blindly
    ("ServiceUnavailable", R),
]

# Our own codes for what Alibaba does not name.
OWN_CODES = [
    ("FailedList", P),
    ("MALFORMED_RESPONSE", U),
    ("MESSAGE_ID_LIST_MISMATCH", U),
]

ALL_CODES = BUSINESS_CODES + GATEWAY_CODES + OWN_CODES


@pytest.mark.parametrize(("code", "category"), ALL_CODES)
def test_every_known_code_is_mapped(code: str, category: ErrorCategory) -> None:
    assert errors.CODE_CATEGORIES.get(code) is category
    # The mapping decides, whatever the HTTP status (Alibaba answers flow control with HTTP 400).
    assert errors.category_for(code, 400) is category
    assert errors.category_for(code, 200) is category


def test_the_mapping_has_nothing_this_table_does_not_check() -> None:
    assert set(errors.CODE_CATEGORIES) == {code for code, _ in ALL_CODES}


@pytest.mark.parametrize(
    ("code", "status", "category"),
    [
        ("Throttling.Concurrent", 400, T),  # family prefixes
        ("InvalidAccessKeyId.Expired", 400, C),
        ("Forbidden.SomethingNew", 403, C),
        ("InvalidTimeStamp.Future", 400, C),
        ("MissingTo", 400, Q),
        ("InvalidSomething", 400, Q),
        ("NEW_BUSINESS_CODE", 200, Q),  # then the HTTP status
        ("WeirdGatewayCode", 429, T),
        ("WeirdGatewayCode", 401, C),
        ("WeirdGatewayCode", 403, C),
        ("WeirdGatewayCode", 404, C),
        ("WeirdGatewayCode", 400, Q),
        # 5xx: only 502/503 say nobody took the call; after a 500, 504 (or any other 5xx) the backend may have
        # acted, so the outcome is unknown (as for Tencent and Huawei).
        ("WeirdGatewayCode", 500, U),
        ("WeirdGatewayCode", 501, U),
        ("WeirdGatewayCode", 502, R),
        ("WeirdGatewayCode", 503, R),
        ("WeirdGatewayCode", 504, U),
        ("WeirdGatewayCode", 599, U),
        ("WeirdGatewayCode", None, Q),
    ],
)
def test_unknown_codes_fall_back_to_their_family_then_status(
    code: str, status: int | None, category: ErrorCategory
) -> None:
    assert code not in errors.CODE_CATEGORIES
    assert errors.category_for(code, status) is category


@pytest.mark.parametrize(("status", "category"), [(500, U), (502, R), (503, R), (504, U), (429, T), (403, C), (400, Q)])
def test_a_bare_http_status_decides_by_itself(status: int, category: ErrorCategory) -> None:
    # What the client records for an error status without Alibaba's body (a proxy's or load balancer's page).
    assert errors.provider_error(f"HTTP_{status}", "", status).category is category
    assert errors.category_for_status(status) is category


def test_provider_error_keeps_the_raw_code_message_and_status() -> None:
    error = errors.provider_error("MOBILE_NUMBER_ILLEGAL", "The mobile phone number format is invalid.", 200)
    assert error.category is P
    assert error.code == "MOBILE_NUMBER_ILLEGAL"
    assert error.message == "The mobile phone number format is invalid."
    assert error.http_status == 200
    assert error.is_final
    assert not errors.provider_error("Throttling.User", "", 400).is_final
