"""Full phone numbers and texts never in traces: the API's answers carry both, and Powertools' Tracer records a
traced function's return value as trace metadata unless told not to (capture_response defaults to True)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The API function's handler and every module of its routes.
SEND_API = [ROOT / "functions" / "send_api" / "app.py", *sorted((ROOT / "layers/globesms/globesms/api").glob("*.py"))]


def tracer_decorators(tree: ast.AST) -> list[tuple[str, ast.expr]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Attribute) and getattr(target.value, "id", None) == "tracer":
                    found.append((node.name, decorator))
    return found


def test_no_traced_function_of_the_api_records_its_answer() -> None:
    decorators = [found for path in SEND_API for found in tracer_decorators(ast.parse(path.read_text()))]
    assert {name for name, _ in decorators} >= {"lambda_handler", "send_messages", "get_message", "get_batch"}
    for name, decorator in decorators:
        keywords = {k.arg: k.value for k in decorator.keywords} if isinstance(decorator, ast.Call) else {}
        value = keywords.get("capture_response")
        assert isinstance(value, ast.Constant) and value.value is False, f"{name} records its answer in traces"
