"""No function or method under layers/ or functions/ is longer than 60 lines.

A function's length: from its `def` line to its last line, decorators excluded. That counts the signature and the
docstring with the body, a little stricter than the body alone, so whatever passes here also has a body of at most
60 lines. A nested function counts on its own and inside its parent.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = (ROOT / "layers", ROOT / "functions")
MAX_LINES = 60


def function_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    assert function.end_lineno is not None
    return function.end_lineno - function.lineno + 1  # `lineno` is the `def` line, after any decorator


def long_functions(source: str, filename: str, limit: int = MAX_LINES) -> list[str]:
    tree = ast.parse(source, filename=filename)
    return [
        f"{filename}:{node.lineno} {node.name} ({function_lines(node)} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and function_lines(node) > limit
    ]


def _body(statements: int, indent: str) -> str:
    return "\n".join(f"{indent}x{i} = {i}" for i in range(statements))


def test_the_measure_counts_from_def_to_the_last_line_without_decorators() -> None:
    fits = f"@decorator\n@another\ndef fits(\n    a: int,\n) -> None:\n{_body(57, '    ')}\n"  # 3 + 57 lines
    assert long_functions(fits, "fits.py") == []
    too_long = f"@decorator\ndef too_long(\n    a: int,\n) -> None:\n{_body(58, '    ')}\n"  # 3 + 58 lines
    assert long_functions(too_long, "too_long.py") == ["too_long.py:2 too_long (61 lines)"]
    method = f"class C:\n    def method(self) -> None:\n        '''Doc.'''\n{_body(59, '        ')}\n"
    assert long_functions(method, "c.py") == ["c.py:2 method (61 lines)"]


def test_no_function_is_longer_than_the_limit() -> None:
    files = sorted(path for root in SOURCE_ROOTS for path in root.rglob("*.py") if ".aws-sam" not in path.parts)
    assert files, "no source found"
    offenders = [
        found
        for path in files
        for found in long_functions(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert offenders == [], f"functions over {MAX_LINES} lines:\n" + "\n".join(offenders)
