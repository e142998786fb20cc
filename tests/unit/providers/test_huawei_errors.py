"""Every result code of the seed page (004, batchSendDiffSms "Result Codes" and the per-number `status` list) and the
gateway throttling code, with the HTTP status the seed gives it and the category we expect. Copied from the seed,
not from the mapping: a seed code missing from `RESULT_CODES` fails here."""

from __future__ import annotations

import pytest

from globesms.errors import ErrorCategory
from globesms.providers.huawei.errors import (
    RESULT_CODES,
    SUCCESS_CODE,
    category_for,
    default_category,
    provider_error,
)

C = ErrorCategory

SEED_CODES: list[tuple[str, int, ErrorCategory]] = [
    # 400
    ("E000000", 400, C.REQUEST),
    ("E000001", 400, C.CONFIG),
    ("E000002", 400, C.CONFIG),
    ("E000003", 400, C.CONFIG),
    ("E000004", 400, C.CONFIG),
    ("E000005", 400, C.CONFIG),
    ("E000006", 400, C.CONFIG),
    ("E000007", 400, C.CONFIG),
    ("E000008", 400, C.CONFIG),
    ("E000020", 400, C.CONFIG),
    ("E000021", 400, C.CONFIG),
    ("E000022", 400, C.CONFIG),
    ("E000023", 400, C.CONFIG),
    ("E000024", 400, C.CONFIG),
    ("E000025", 400, C.CONFIG),
    ("E000026", 400, C.CONFIG),
    ("E000027", 400, C.REQUEST),
    ("E000041", 400, C.CONFIG),
    ("E000042", 400, C.CONFIG),
    ("E000043", 400, C.CONFIG),
    ("E000044", 400, C.CONFIG),
    ("E000045", 400, C.CONFIG),
    ("E000503", 400, C.REQUEST),
    ("E000510", 400, C.REQUEST),
    # 401
    ("E000101", 401, C.CONFIG),
    ("E000102", 401, C.CONFIG),
    ("E000103", 401, C.CONFIG),
    ("E000104", 401, C.CONFIG),
    ("E000105", 401, C.CONFIG),
    ("E000106", 401, C.CONFIG),
    ("E000109", 401, C.CONFIG),
    ("E000110", 401, C.CONFIG),
    ("E000111", 401, C.CONFIG),
    ("E000112", 401, C.CONFIG),
    # 403
    ("E000620", 403, C.CONFIG),
    ("E000623", 403, C.THROTTLED),
    ("E000630", 403, C.CONFIG),
    # per-number `status` values (inside `result`)
    ("E200015", 200, C.THROTTLED),
    ("E200028", 200, C.REQUEST),
    ("E200029", 200, C.REQUEST),
    ("E200030", 200, C.REQUEST),
    ("E200031", 200, C.REQUEST),
    ("E200033", 200, C.REQUEST),
    ("E200041", 200, C.REQUEST),
    # Huawei Cloud API gateway (providers.md: rate limit; not on the SMS page)
    ("APIG.0308", 429, C.THROTTLED),
]


@pytest.mark.parametrize(("code", "http_status", "category"), SEED_CODES)
def test_seed_code_is_mapped(code: str, http_status: int, category: ErrorCategory) -> None:
    assert code in RESULT_CODES, f"{code} from the seed is missing from the table"
    assert RESULT_CODES[code].http_status == http_status
    assert RESULT_CODES[code].category is category
    assert category_for(code, http_status) is category
    assert RESULT_CODES[code].description


def test_success_code_is_not_an_error() -> None:
    assert SUCCESS_CODE == "000000"
    assert SUCCESS_CODE not in RESULT_CODES


def test_table_has_nothing_the_seed_list_does_not_name() -> None:
    assert set(RESULT_CODES) == {code for code, _, _ in SEED_CODES}


@pytest.mark.parametrize(
    ("http_status", "category"),
    [
        (None, C.REQUEST),
        (200, C.REQUEST),
        (400, C.REQUEST),
        (401, C.CONFIG),
        (403, C.CONFIG),
        (404, C.CONFIG),
        (408, C.RETRYABLE),
        (409, C.REQUEST),
        (429, C.THROTTLED),
        (500, C.UNKNOWN_OUTCOME),
        (502, C.RETRYABLE),
        (503, C.RETRYABLE),
        (504, C.UNKNOWN_OUTCOME),
    ],
)
def test_unknown_codes_fall_back_by_http_status(http_status: int | None, category: ErrorCategory) -> None:
    assert default_category(http_status) is category
    assert category_for("E999999", http_status) is category


def test_provider_error_keeps_the_raw_code_and_message() -> None:
    error = provider_error("E000102", "Invalid app_key.", 401)
    assert (error.category, error.code, error.message, error.http_status) == (
        C.CONFIG,
        "E000102",
        "Invalid app_key.",
        401,
    )
    assert not error.is_final
    assert provider_error("E200028", "", 200).is_final
