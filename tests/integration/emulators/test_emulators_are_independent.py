"""The emulators state each provider's rules on their own, written from the provider's documents: none of them may
import the client package. An emulator that validated requests with the client's rules, wire models or signer
would agree with every mistake in them, and its tests could never catch one.

The check reads the source with `ast` (nothing is imported), so it also sees imports inside functions and
`importlib.import_module("globesms...")` calls.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

EMULATORS = Path(__file__).resolve().parents[3] / "local" / "emulators"
CLIENT_PACKAGE = "globesms"
#: Modules of the client package an emulator may import: neutral helpers that hold no provider rule. None today;
#: add one only with a reason, and never anything under globesms.providers or globesms.domain.provider_limits.
ALLOWED: frozenset[str] = frozenset()
NEVER_ALLOWED = ("globesms.providers", "globesms.domain.provider_limits")


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) for every module the source imports, `from a import b` giving both `a` and `a.b`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((node.lineno, first.value))
    return found


def _is_dynamic_import(func: ast.expr) -> bool:
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in ("import_module", "__import__")


def _is_client_module(module: str) -> bool:
    return module == CLIENT_PACKAGE or module.startswith(CLIENT_PACKAGE + ".")


def forbidden_imports(source: str) -> list[str]:
    problems = []
    for line, module in imported_modules(source):
        if not _is_client_module(module):
            continue
        never = any(module == banned or module.startswith(banned + ".") for banned in NEVER_ALLOWED)
        if never or not any(module == allowed or module.startswith(allowed + ".") for allowed in ALLOWED):
            problems.append(f"line {line}: {module}")
    return problems


EMULATOR_FILES = sorted(EMULATORS.glob("*.py"))


def test_the_emulators_are_found() -> None:
    assert {path.name for path in EMULATOR_FILES} >= {"aliyun.py", "tencent.py", "huawei.py", "common.py"}


@pytest.mark.parametrize("path", EMULATOR_FILES, ids=lambda path: path.name)
def test_an_emulator_imports_nothing_from_the_client_package(path: Path) -> None:
    problems = forbidden_imports(path.read_text(encoding="utf-8"))
    assert not problems, f"{path.name} imports the client package: " + "; ".join(problems)


@pytest.mark.parametrize(
    "source",
    [
        "from globesms.providers.aliyun import rules",
        "from globesms.providers import huawei",
        "import globesms.providers.tencent.wire as wire",
        "from globesms.domain import provider_limits",
        "from globesms.domain.provider_limits import RECIPIENTS_PER_CALL",
        "from globesms.domain.segments import count_segments",
        "from globesms import providers",
        "def late():\n    from globesms.providers.huawei.errors import RESULT_CODES\n",
        "import importlib\nimportlib.import_module('globesms.providers.aliyun.rules')",
        "__import__('globesms.domain.provider_limits')",
    ],
)
def test_the_check_catches_client_imports(source: str) -> None:
    assert forbidden_imports(source)


@pytest.mark.parametrize(
    "source",
    [
        "import hashlib, hmac",
        "from local.emulators import common",
        "import phonenumbers",
        "from globesms_tools import thing",  # a name that only starts like the package
    ],
)
def test_the_check_lets_other_imports_through(source: str) -> None:
    assert forbidden_imports(source) == []
