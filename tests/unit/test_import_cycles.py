"""The package has no import cycle: every `from globesms...` import points one way.

Twice over. At load time: imports inside functions (deferred on purpose, e.g. to keep boto3 out of a cold start)
and under `TYPE_CHECKING` (annotations only) do not run when a module loads, so they cannot make a cycle there.
And with the deferred imports counted too: a deferred import that closes a circle still ties two modules each to
the other (neither can be read, moved or tested without the other), so none may (the imports under
`TYPE_CHECKING` stay out: they name types for annotations and tie nothing at run time). Importing a module runs
its packages' __init__ first, so an import ties to those packages too (but a module to its own packages: it is
inside them).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "layers" / "globesms"


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _imports(tree: ast.Module, modules: set[str], *, deferred: bool) -> set[str]:
    """The package's modules `tree` imports: at load time, or (`deferred`) inside functions as well."""
    found: set[str] = set()
    for statement in tree.body:
        if not deferred and isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.unparse(statement.test):
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("globesms"):
                found.add(node.module)
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name.startswith("globesms")}
    # Importing a module runs each of its packages' __init__ first: a tie to every one of them too.
    return {parent for name in found for parent in _with_parents(name)} & modules


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts) + 1)]


def import_graph(*, deferred: bool = False) -> dict[str, set[str]]:
    paths = {_module_name(path): path for path in PACKAGE_ROOT.rglob("*.py")}
    modules = set(paths)
    # Less the module's own packages: it is inside them (their __init__ has run before it), and a package's
    # __init__ importing one of its own modules on first use is its facade, not a circle.
    return {
        name: _imports(ast.parse(path.read_text()), modules, deferred=deferred) - set(_with_parents(name))
        for name, path in paths.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "globesms.dispatch.service" in graph and "globesms.config" in graph
    assert cycles(graph) == []


def test_no_circle_closes_through_a_deferred_import() -> None:
    graph = import_graph(deferred=True)
    # Counted: config's rate check imports the rates table inside its validator (and so its package's __init__).
    assert {"globesms.dispatch", "globesms.dispatch.rate_table"} <= graph["globesms.config"]
    assert "globesms.dispatch.rate_table" not in import_graph()["globesms.config"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
