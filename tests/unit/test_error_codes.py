"""One vocabulary of codes: globesms.errors defines each once, every module uses the members, the docs list them."""

import ast
import re
from pathlib import Path

import pytest

from globesms.accept.refusals import REFUSALS, refusal_of
from globesms.errors import ERROR_CODES, DispatchCode, ProviderCallCode, RecipientCode, RefusalCode

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "globesms" / "globesms"
# Where globesms's own codes are used. providers/ is left out: its UPPER_SNAKE strings are the providers' own codes
# (e.g. Alibaba's "MOBILE_NUMBER_ILLEGAL"), kept as sent.
SOURCES = sorted(
    [p for p in PACKAGE.rglob("*.py") if "providers" not in p.relative_to(PACKAGE).parts and p.name != "errors.py"]
    + list((ROOT / "functions").rglob("*.py"))
)
CODE_LIKE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
# UPPER_SNAKE strings that are not codes: names of environment variables, and AWS API values.
NOT_CODES = re.compile(
    r"^(?:GLOBESMS_|AWS_|POWERTOOLS_|SSL_CERT_)|^(?:ALL_NEW|ALL_OLD|UPDATED_NEW|UPDATED_OLD|PAY_PER_REQUEST)$"
)


def code_like_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    exported: set[int] = set()  # string constants inside __all__
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            exported |= {id(c) for c in ast.walk(node.value)}
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and CODE_LIKE.match(node.value)
        and not NOT_CODES.match(node.value)
        and id(node) not in exported
    ]


def test_no_module_spells_a_code_as_a_bare_string() -> None:
    # A code written as a literal is a second definition: it can drift from the vocabulary (and from the docs).
    found = [
        f"{path.relative_to(ROOT)}:{line}: {value!r}" for path in SOURCES for line, value in code_like_literals(path)
    ]
    assert not found, "use the members of globesms.errors instead:\n" + "\n".join(found)


def test_the_check_finds_a_bare_code(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('__all__ = ["SOME_NAME"]\nX = "GLOBESMS_TABLE_NAME"\ncode = "NOT_FOUND"\n')
    assert code_like_literals(sample) == [(3, "NOT_FOUND")]


#: The calls that give a message its `error.code` in the provider clients, and which argument is the code. A
#: provider's own code arrives there as a variable; a literal is one of ours, and must be a member of the
#: vocabulary, which docs/errors.md lists. (`StatusQueryFailed`'s code is never recorded: a failed status query is
#: asked again, then settled with a DispatchCode.)
CODE_ARGUMENT = {"ProviderError": (1, "code"), "provider_error": (0, "code")}
#: Ours, written with the status it stands for: an error answer without a code of the provider's own.
HTTP_STATUS_CODE = "HTTP_"


def codes_spelled_in_provider_calls(path: Path) -> list[tuple[int, str]]:
    """(line, code) for each code a provider client writes as a literal (or an f-string not `HTTP_<status>`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name not in CODE_ARGUMENT:
            continue
        position, keyword = CODE_ARGUMENT[name]
        given = [k.value for k in node.keywords if k.arg == keyword]
        argument = node.args[position] if len(node.args) > position else (given[0] if given else None)
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            found.append((node.lineno, argument.value))
        elif isinstance(argument, ast.JoinedStr):
            head = argument.values[0] if argument.values else None
            if not (isinstance(head, ast.Constant) and head.value == HTTP_STATUS_CODE):
                found.append((node.lineno, ast.unparse(argument)))
    return found


def test_every_code_a_provider_client_writes_itself_is_a_member() -> None:
    # Transport failures and unreadable answers were recorded on messages under codes spelled in the clients
    # (READ_TIMEOUT, MALFORMED_RESPONSE...) that no table listed: a client met codes the docs never named.
    providers = sorted((PACKAGE / "providers").rglob("*.py"))
    found = [
        f"{p.relative_to(ROOT)}:{line}: {code}" for p in providers for line, code in codes_spelled_in_provider_calls(p)
    ]
    assert not found, "add the code to globesms.errors.ProviderCallCode and use the member:\n" + "\n".join(found)
    assert f"`{HTTP_STATUS_CODE}<status>`" in (ROOT / "docs" / "errors.md").read_text()


def test_the_provider_check_finds_a_code_spelled_in_a_call(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "ProviderError(U, raw, 'x')\n"
        "ProviderError(U, 'NEW_CODE', 'x')\n"
        "errors.provider_error(code='OTHER_CODE')\n"
        "provider_error(f'HTTP_{status}')\n"
        "provider_error(f'CODE_{n}')\n"
    )
    assert codes_spelled_in_provider_calls(sample) == [(2, "NEW_CODE"), (3, "OTHER_CODE"), (5, "f'CODE_{n}'")]


def test_every_code_is_unique_and_has_a_meaning() -> None:
    values = [str(code) for code in ERROR_CODES]
    assert len(values) == len(set(values))
    for code in ERROR_CODES:
        assert code.value == code.name and code.meaning.strip(), code
    # Refusals are the client's to fix (4xx), but for a deployment without a template or consent table (501), and
    # one whose guardrail settings cannot be read yet (503: retry as it is).
    not_managed = {RefusalCode.TEMPLATES_NOT_MANAGED, RefusalCode.CONSENT_NOT_MANAGED}
    assert all(
        400 <= code.status < 500
        for code in RefusalCode
        if code not in not_managed | {RefusalCode.GUARDRAILS_UNAVAILABLE}
    )
    assert RefusalCode.GUARDRAILS_UNAVAILABLE.status == 503


def test_the_values_clients_match_on_are_unchanged() -> None:
    assert {c.value for c in RefusalCode} >= {
        "MALFORMED_JSON",
        "VALIDATION_ERROR",
        "TOO_MANY_RECIPIENTS",
        "UNSUPPORTED_MEDIA_TYPE",
        "IDEMPOTENCY_KEY_REUSED",
        "IDEMPOTENCY_KEY_IN_PROGRESS",
        "BATCH_ID_CONFLICT",
        "NOT_FOUND",
        "FORBIDDEN",
        "UNAUTHORIZED",
        "UNREADABLE_RECEIPTS",
    }
    assert {c.value for c in RecipientCode} == {
        "INVALID_NUMBER",
        "NOT_MOBILE",
        "DUPLICATE_RECIPIENT",
        "NO_ROUTE",
        "PROVIDER_CANNOT_CARRY",
        "TEMPLATE_UNKNOWN_FOR_PROVIDER",
        "TEMPLATE_PARAMS",
        "OPTED_OUT",
        "QUIET_HOURS_VALIDITY",
        "COUNTRY_NOT_ALLOWED",
        "PRICE_UNKNOWN",
        "SPEND_LIMIT_REACHED",
        "VELOCITY_LIMIT",
        "FRAUD_SUSPECTED",
    }
    assert {c.value for c in ProviderCallCode} == {
        "CONNECT_TIMEOUT",
        "CONNECT_ERROR",
        "POOL_TIMEOUT",
        "UNSUPPORTED_PROTOCOL",
        "LOCAL_PROTOCOL_ERROR",
        "WRITE_TIMEOUT",
        "WRITE_ERROR",
        "READ_TIMEOUT",
        "READ_ERROR",
        "REMOTE_PROTOCOL_ERROR",
        "DECODING_ERROR",
        "PROXY_ERROR",
        "TRANSPORT_ERROR",
        "MALFORMED_RESPONSE",
        "MISSING_RESULT",
        "CONFLICTING_RESULTS",
        "ANOTHER_MESSAGE",
        "MISSING_SERIAL_NO",
        "MISSING_SMS_MSG_ID",
        "MESSAGE_ID_LIST_MISMATCH",
    }
    assert {c.value for c in DispatchCode} == {
        "INVALID_REQUEST",
        "CIRCUIT_OPEN",
        "DISPATCH_INTERRUPTED",
        "UNKNOWN_OUTCOME_EXPIRED",
        "NO_RECEIPT",
        "VALIDITY_LAPSED",
        "DISPATCH_FAILED",
        "CREDENTIALS_RENEWED",
    }


def test_docs_errors_lists_every_code_with_its_meaning_and_status() -> None:
    text = (ROOT / "docs" / "errors.md").read_text()
    rows = {m[0]: (m[1], m[2]) for m in re.findall(r"^\| `([A-Z_]+)` \| (\d{3}|) *\| (.+?) \|$", text, re.M)}
    expected = {
        str(code): (str(code.status) if isinstance(code, RefusalCode) else "", code.meaning) for code in ERROR_CODES
    }
    assert rows == expected
    assert "docs/errors.md" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("kind", list(REFUSALS))
def test_each_refusal_exception_maps_to_its_code(kind: type[Exception]) -> None:
    exc = kind.__new__(kind)
    Exception.__init__(exc, "because")
    refusal = refusal_of(exc)
    assert refusal.code is REFUSALS[kind] and refusal.message == "because"
