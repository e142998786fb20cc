"""Huawei Message & SMS result codes -> our error categories.

One table for every code of the seed page (POST /sms/batchSendDiffSms/v1, "Result Codes" and the per-number
`status` values) plus the API gateway's throttling code. A new code is one line. The emulator answers with the
same table (HTTP status and description), so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from globesms.errors import ErrorCategory, ProviderError

SUCCESS_CODE = "000000"

#: The envelope code of a call in which *every* number failed: the per-number `status` values in `result` say why.
ALL_NUMBERS_FAILED_CODE = "E000510"

#: Huawei Cloud's API gateway answers its rate limit with HTTP 429 and its own shape
#: (`{"error_code": "APIG.0308", "error_msg": "The throttling threshold has been reached: ...", "request_id": ...}`).
#: The SMS page names no rate-limit code of its own, so this is the throttling code we expect and emulate.
GATEWAY_THROTTLED_CODE = "APIG.0308"

_C = ErrorCategory


@dataclass(frozen=True, slots=True)
class ResultCode:
    http_status: int  # the status Huawei answers the code with (200 for per-number statuses inside `result`)
    category: ErrorCategory
    description: str  # Huawei's own text, as the emulator sends it


RESULT_CODES: dict[str, ResultCode] = {
    # 400: the docs' first advice for a "system error" is to fix templateParas, so it is treated as our request.
    "E000000": ResultCode(400, _C.REQUEST, "System error."),
    # 400, malformed authentication headers: our signer or configuration is wrong; resending as-is cannot help.
    "E000001": ResultCode(400, _C.CONFIG, "Authorization not contained in the HTTP header."),
    "E000002": ResultCode(400, _C.CONFIG, "realm not contained in Authorization."),
    "E000003": ResultCode(400, _C.CONFIG, "profile not contained in Authorization."),
    "E000004": ResultCode(400, _C.CONFIG, "The value of realm in Authorization must be SDP."),
    "E000005": ResultCode(400, _C.CONFIG, "The value of profile in Authorization must be UsernameToken."),
    "E000006": ResultCode(400, _C.CONFIG, "The value of type in Authorization must be app_key."),
    "E000007": ResultCode(400, _C.CONFIG, "type not contained in Authorization."),
    "E000008": ResultCode(400, _C.CONFIG, "WSSE not contained in Authorization."),
    "E000020": ResultCode(400, _C.CONFIG, "X-WSSE not contained in the HTTP header."),
    "E000021": ResultCode(400, _C.CONFIG, "UserName not contained in X-WSSE."),
    "E000022": ResultCode(400, _C.CONFIG, "Nonce not contained in X-WSSE."),
    "E000023": ResultCode(400, _C.CONFIG, "Created not contained in X-WSSE."),
    "E000024": ResultCode(400, _C.CONFIG, "PasswordDigest not contained in X-WSSE."),
    "E000025": ResultCode(400, _C.CONFIG, "The format of Created is incorrect."),
    "E000026": ResultCode(400, _C.CONFIG, "UsernameToken not contained in X-WSSE."),
    "E000027": ResultCode(400, _C.REQUEST, "Invalid request."),
    "E000041": ResultCode(400, _C.CONFIG, "X-Sdk-Date header is empty."),
    "E000042": ResultCode(400, _C.CONFIG, "The format of X-Sdk-Date header is invalid."),
    "E000043": ResultCode(400, _C.CONFIG, "The format of Authorization header is incorrect."),
    # Our clock is more than 15 minutes off: a machine setting, not something a retry fixes.
    "E000044": ResultCode(400, _C.CONFIG, "X-Sdk-Date is expired."),
    "E000045": ResultCode(400, _C.CONFIG, "Authorization verify failed."),
    "E000503": ResultCode(400, _C.REQUEST, "The parameter format is incorrect."),
    # Only reached when `result` is missing; with `result`, each number gets its own status instead.
    ALL_NUMBERS_FAILED_CODE: ResultCode(400, _C.REQUEST, "The SMS fails to be sent. For details, see Status."),
    # 401: credentials, account state and the WSSE time window.
    "E000101": ResultCode(401, _C.CONFIG, "Authentication failed."),
    "E000102": ResultCode(401, _C.CONFIG, "Invalid app_key."),
    "E000103": ResultCode(401, _C.CONFIG, "The status of the app_key is unavailable."),
    "E000104": ResultCode(401, _C.CONFIG, "Invalid app_secret."),
    "E000105": ResultCode(401, _C.CONFIG, "Invalid digest."),
    "E000106": ResultCode(401, _C.CONFIG, "The app_key is not allowed to invoke this API."),
    "E000109": ResultCode(401, _C.CONFIG, "The user status is deactivated."),
    "E000110": ResultCode(401, _C.CONFIG, "Time out limit."),
    "E000111": ResultCode(401, _C.CONFIG, "Incorrect username or password."),
    "E000112": ResultCode(401, _C.CONFIG, "The subscriber status is frozen."),
    # 403
    "E000620": ResultCode(403, _C.CONFIG, "The app client ip is not in ip white list."),
    # A sending-volume cap of the account: the same request succeeds once the window has passed.
    "E000623": ResultCode(403, _C.THROTTLED, "Number of SMSs sent by the SP reached the limit."),
    # A per-country cap the account owner set in the console: only a person changing it lets sends through.
    "E000630": ResultCode(403, _C.CONFIG, "Number of SMSs sent by the SP reached the country/region limit."),
    # Per-number `status` values inside `result` (HTTP 200, or 400 with E000510 when all numbers failed).
    "E200015": ResultCode(200, _C.THROTTLED, "Too many SMSs are waiting to be sent."),
    "E200028": ResultCode(200, _C.REQUEST, "Failed to verify the template."),
    "E200029": ResultCode(200, _C.REQUEST, "Failed to verify the template type."),
    "E200030": ResultCode(200, _C.REQUEST, "The template is not activated."),
    "E200031": ResultCode(200, _C.REQUEST, "Failed to verify the protocol."),
    "E200033": ResultCode(200, _C.REQUEST, "The template type is incorrect."),
    "E200041": ResultCode(200, _C.REQUEST, "The recipient numbers of the same SMS are duplicate."),
    # API gateway in front of the SMS service.
    GATEWAY_THROTTLED_CODE: ResultCode(
        429, _C.THROTTLED, "The throttling threshold has been reached: policy user over ratelimit"
    ),
}


def default_category(http_status: int | None) -> ErrorCategory:
    """The category of a code missing from the table, judged by the HTTP status it came with."""
    if http_status is None or http_status == 200:
        # A per-number status we do not know: the number was not sent, and the docs list such codes under
        # "fix the request" (template, content, number); the call is not resent as-is.
        return _C.REQUEST
    if http_status in (401, 403, 404):
        return _C.CONFIG
    if http_status == 429:
        return _C.THROTTLED
    if http_status in (408, 502, 503):
        return _C.RETRYABLE  # not processed: the request timed out on arrival, or no backend took it
    if http_status >= 500:
        return _C.UNKNOWN_OUTCOME  # 500/504 and friends: the backend may have acted before failing
    return _C.REQUEST


def category_for(code: str, http_status: int | None) -> ErrorCategory:
    known = RESULT_CODES.get(code)
    return known.category if known else default_category(http_status)


def provider_error(code: str, message: str, http_status: int | None) -> ProviderError:
    return ProviderError(category_for(code, http_status), code=code, message=message, http_status=http_status)


#: Receipt-driven failover (`receipts.failover`): the code of an UNDELIVERED receipt (`orgCode`, the supplier's own
#: code, else `status`), and whether sending once more through another provider can fix it (a route or operator
#: failure) or not. A code not listed never resends. E200xxx and MILIMIT/LIMIT are REJECTED, never UNDELIVERED, so
#: they never come here; `ROUTE_FAILURE` is the route failure the emulators report.
RECEIPT_FAILOVER: dict[str, bool] = {
    "DELETED": True,  # the supplier's SMSC deleted the message: this route dropped it
    "ROUTE_FAILURE": True,
    "UNDELIV": False,  # the bare SMPP stat: no reason given
}
