"""The layer's shape: what it depends on and what its logic may import.

The layer is installed from its lock, layers/globesms/requirements.txt, with --no-deps (layers/globesms/Makefile), so
that file alone decides what Lambda gets. These tests hold it to pyproject.toml's pins, to the dev lock the tests run
with (requirements/lock-dev.txt), and to what the Lambda runtime provides. `make lock` rewrites both locks.
"""

import ast
import importlib.metadata
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "globesms" / "globesms"
LAYER_LOCK = ROOT / "layers" / "globesms" / "requirements.txt"
DEV_LOCK = ROOT / "requirements" / "lock-dev.txt"
UV_LOCK = ROOT / "requirements" / "lock-uv.txt"  # what `make` installs first, with pip, to install the dev lock
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME = "python3.13"
#: Where the layer runs: markers of its requirements are evaluated for this (extra added per requirement).
LAMBDA_ENVIRONMENT = {
    "python_version": "3.13",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: frozenset[str]


def read_lock(path: Path) -> dict[NormalizedName, Pin]:
    """A lock file's pins: `name==version [; marker]` lines, each continued (`\\`) by its `--hash=sha256:` options."""
    pins: dict[NormalizedName, Pin] = {}
    for line in path.read_text().replace("\\\n", " ").splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        requirement = Requirement(" ".join(word for word in words if not word.startswith("--")))
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{path.name}: {requirement} is not pinned with =="
        hashes = frozenset(word.removeprefix("--hash=") for word in words if word.startswith("--hash="))
        pins[canonicalize_name(requirement.name)] = Pin(specifier.version, hashes)
    return pins


def applies(requirement: Requirement, extra: str = "") -> bool:
    return requirement.marker is None or requirement.marker.evaluate({**LAMBDA_ENVIRONMENT, "extra": extra})


def provided_by_the_runtime() -> set[NormalizedName]:
    """boto3 and everything it requires (botocore, s3transfer, jmespath, ...): the Lambda runtime has them."""
    found: set[NormalizedName] = set()
    wanted = ["boto3"]
    while wanted:
        name = canonicalize_name(wanted.pop())
        if name not in found:
            found.add(name)
            wanted += [r.name for r in map(Requirement, importlib.metadata.requires(name) or []) if applies(r)]
    return found


def test_every_locked_package_is_pinned_with_hashes() -> None:
    for lock in (LAYER_LOCK, DEV_LOCK):
        pins = read_lock(lock)
        assert pins, lock
        for name, pin in pins.items():
            assert pin.hashes and all(h.startswith("sha256:") for h in pin.hashes), f"{lock.name}: {name}"


def test_the_installer_lock_holds_the_dev_locks_uv_alone() -> None:
    """uv installs the dev lock (Makefile): its own lock pins the same uv, with the same hashes, and nothing else."""
    assert read_lock(UV_LOCK) == {canonicalize_name("uv"): read_lock(DEV_LOCK)[canonicalize_name("uv")]}


def test_layer_lock_pins_the_projects_runtime_dependencies() -> None:
    layer = read_lock(LAYER_LOCK)
    for line in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in layer, f"{name} is missing from the layer's lock: run make lock"
        assert requirement.specifier.contains(layer[name].version), f"{name}: pyproject {line}, lock {layer[name]}"


def test_layer_lock_holds_no_boto3_or_botocore() -> None:
    runtime = provided_by_the_runtime()
    assert {"boto3", "botocore", "s3transfer", "jmespath"} <= runtime
    shipped = set(read_lock(LAYER_LOCK))
    assert "boto3" not in shipped
    assert "botocore" not in shipped
    assert not shipped & runtime, "the Lambda runtime provides these; a copy in the layer would shadow it"


def test_make_lock_leaves_out_exactly_what_the_runtime_provides() -> None:
    makefile = (ROOT / "Makefile").read_text()
    listed = re.search(r"^RUNTIME_PROVIDED := (.+)$", makefile, re.MULTILINE)
    assert listed, "RUNTIME_PROVIDED is no longer in the Makefile"
    assert {canonicalize_name(n) for n in listed.group(1).split()} == provided_by_the_runtime()


def test_layer_lock_has_everything_its_packages_require_but_the_runtime_sdk() -> None:
    # The layer is installed with --no-deps: a requirement that is neither locked nor in the runtime would be missing
    # in Lambda. Metadata comes from the installed packages, which must be the locked versions.
    layer = read_lock(LAYER_LOCK)
    runtime = provided_by_the_runtime()
    direct = map(Requirement, PYPROJECT["project"]["dependencies"])
    wanted = [(requirement, extra) for requirement in direct for extra in ["", *sorted(requirement.extras)]]
    seen: set[tuple[str, str]] = set()
    while wanted:
        requirement, extra = wanted.pop()
        name = canonicalize_name(requirement.name)
        if (name, extra) in seen or name in runtime:
            continue
        seen.add((name, extra))
        assert name in layer, f"{name} (needed through {requirement}) is missing from the layer's lock: run make lock"
        assert requirement.specifier.contains(layer[name].version), f"{requirement} but the lock has {layer[name]}"
        assert importlib.metadata.version(name) == layer[name].version, f"{name}: installed is not locked: make test"
        for needed in map(Requirement, importlib.metadata.requires(name) or []):
            if applies(needed, extra):
                wanted += [(needed, needed_extra) for needed_extra in ["", *sorted(needed.extras)]]
    assert {name for name, _ in seen} == set(layer), "the layer's lock holds packages nothing requires"


def test_layer_lock_ships_the_versions_the_tests_run() -> None:
    dev = read_lock(DEV_LOCK)
    for name, pin in read_lock(LAYER_LOCK).items():
        assert name in dev and dev[name].version == pin.version, f"{name}: layer {pin.version}, dev {dev.get(name)}"
        assert pin.hashes <= dev[name].hashes, name


def test_dev_lock_pins_what_pyproject_and_the_sdk_requirements_ask_for() -> None:
    dev = read_lock(DEV_LOCK)
    lines = [*PYPROJECT["project"]["dependencies"], *PYPROJECT["project"]["optional-dependencies"]["dev"]]
    for path in sorted((ROOT / "requirements").glob("sdk-*.txt")):
        lines += [line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()]
    for line in lines:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in dev, f"{name} is missing from {DEV_LOCK.name}: run make lock"
        assert requirement.specifier.contains(dev[name].version), f"{line}, but the dev lock has {dev[name].version}"


def test_one_python_version_everywhere() -> None:
    # The tests run on the Lambda runtime's Python, and every tool targets it.
    template = (ROOT / "template.yaml").read_text()
    assert re.findall(r"^\s+Runtime: (\S+)", template, re.MULTILINE) == [RUNTIME]
    assert re.findall(r"^\s+CompatibleRuntimes: \[(.+)\]", template, re.MULTILINE) == [RUNTIME]
    version = RUNTIME.removeprefix("python")
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" == version
    assert PYPROJECT["project"]["requires-python"] == f">={version},<3.{int(version.split('.')[1]) + 1}"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + version.replace(".", "")
    assert PYPROJECT["tool"]["mypy"]["python_version"] == version
    assert (ROOT / ".python-version").read_text().strip() == version
    assert f"PYTHON_VERSION := {version}\n" in (ROOT / "Makefile").read_text()
    assert f"LAMBDA_PYTHON := {version}\n" in (ROOT / "layers" / "globesms" / "Makefile").read_text()


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
    # layers/globesms/Makefile copies globesms/ to the layer's python/ (/opt/python in Lambda), and the local stack
    # puts layers/globesms on sys.path: code in a python/ folder here would be in neither.
    assert not (ROOT / "layers" / "globesms" / "python").exists()
