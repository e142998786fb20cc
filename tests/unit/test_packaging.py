"""The layer's shape: what it depends on and what its logic may import."""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "globesms" / "globesms"


def test_layer_requirements_are_the_projects_runtime_dependencies() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    layer = (ROOT / "layers" / "globesms" / "requirements.txt").read_text().split()
    assert sorted(layer) == sorted(pyproject["project"]["dependencies"])


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


# What logic modules load (boto3, botocore, httpx, the X-Ray SDK), directly or through other modules, is checked by
# importing each in a fresh interpreter: tests/unit/test_import_boundary.py.


def test_the_layer_never_imports_a_provider_sdk() -> None:
    sdks = {"alibabacloud_tea_openapi", "alibabacloud_dysmsapi20180501", "tencentcloud", "huaweicloudsdkcore", "Tea"}
    for path in PACKAGE.rglob("*.py"):
        assert not imported_modules(path) & sdks, path


def test_layer_code_is_not_nested_in_a_python_folder() -> None:
    # With BuildMethod, SAM puts the layer's code under /opt/python itself; a python/ folder here would end up at
    # /opt/python/python and fail to import.
    assert not (ROOT / "layers" / "globesms" / "python").exists()
