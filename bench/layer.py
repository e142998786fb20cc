"""Figure "layer": the built Lambda layer, what it ships and how big it is unzipped.

The layer is built as `sam build` builds it: `layers/globesms/Makefile`'s target, with a scratch ARTIFACTS_DIR, this
virtualenv's Python running pip (Lambda's CPython 3.13 x86_64 wheels whatever the machine). Then the directory is
read, as Lambda would mount it at /opt:

- `layer.runtime_sdk_packages`: distributions in the layer that the Lambda runtime provides itself, boto3 and what
  it requires (botocore, s3transfer, jmespath, ... as named by the boto3 this virtualenv pins to the runtime's,
  docs/dependencies.md), found by their `.dist-info` or by their import name. A copy in the layer would come first
  on `sys.path` and shadow the runtime's (aws-xray-sdk once brought its own botocore: 30 of the layer's 70 MB).
  Goal 0.
- `layer.unzipped_mb`: the bytes of every file in it, which Lambda counts against its 250 MB quota for a function
  and all its layers unzipped; reference that quota, ratio = size / quota. The detail names the largest
  distributions and the zipped size (deflate, as `sam deploy` uploads it).

The quick form is the same measurement: one build is a few seconds once pip's cache holds the wheels.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench._cold_env import RUNTIME_PACKAGES, modules_of, required_distributions
from bench.figures import Figure, none_allowed
from globesms.tls_roots import SOURCE_DIGEST, hashed_roots, write_hashed_roots

ROOT = Path(__file__).resolve().parents[1]
LAYER_SOURCE = ROOT / "layers" / "globesms"
MB = 1024 * 1024
#: Lambda's quota: a function's deployment package and all its layers, unzipped (Lambda quotas, "250 MB").
UNZIPPED_QUOTA_BYTES = 250 * MB


def runtime_provided() -> set[str]:
    """boto3 and, recursively, what it requires here (the boto3 this virtualenv pins to the runtime's)."""
    return required_distributions([Requirement(p) for p in RUNTIME_PACKAGES])


def build_layer(artifacts: Path) -> None:
    """`sam build`'s step for the layer (template.yaml: BuildMethod makefile), into `artifacts`."""
    make = shutil.which("make")
    if make is None:
        raise RuntimeError("no make on PATH: the layer is built by its Makefile, as sam build does")
    target = ["-s", "-C", str(LAYER_SOURCE), "build-GlobesmsLayer", f"ARTIFACTS_DIR={artifacts}"]
    # S603: make, the layer's own Makefile, this interpreter.
    subprocess.run([make, *target, f"PYTHON={sys.executable}"], check=True, stdout=subprocess.DEVNULL)  # noqa: S603


def distributions(site: Path) -> set[str]:
    """The distributions installed in `site` (a layer's python/), by their `.dist-info` directories."""
    return {
        canonicalize_name(info.name.removesuffix(".dist-info").rsplit("-", 1)[0]) for info in site.glob("*.dist-info")
    }


def runtime_packages_in(site: Path) -> list[str]:
    """The runtime's packages (`runtime_provided`) found in `site`: by their distribution, or by an import name
    (`botocore/`, `six.py`) for a tree copied in without its `.dist-info`."""
    runtime = runtime_provided()
    return sorted({*(distributions(site) & runtime), *(modules_of(runtime) & set(sizes_by_top_level(site)))})


def sizes_by_top_level(site: Path) -> Counter[str]:
    """Bytes of the files under each top-level name of `site` (a module's `.py` left off: its import name)."""
    sizes: Counter[str] = Counter()
    for path in site.rglob("*"):
        if path.is_file() and not path.is_symlink():
            sizes[path.relative_to(site).parts[0].removesuffix(".py")] += path.stat().st_size
    return sizes


def tls_roots_in(site: Path, scratch: Path) -> int:
    """How many of the layer's certifi roots its build wrote as a hashed directory (`globesms.tls_roots`), checked
    against writing them again here: a build that left the directory out, or wrote it from another bundle, would
    leave every cold start parsing the whole bundle."""
    bundle = site / "certifi" / "cacert.pem"
    expected = write_hashed_roots(bundle, scratch / "tls-roots")
    found = hashed_roots(bundle, site / "globesms" / "roots")
    built = 0 if found is None else len([path for path in found.iterdir() if path.name != SOURCE_DIGEST])
    if built != expected:
        raise RuntimeError(f"the layer's hashed TLS roots: {built} written by its build, {expected} expected")
    return built


def zipped_bytes(layer: Path, scratch: Path) -> int:
    archive = scratch / "layer.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for path in sorted(layer.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(layer))
    return archive.stat().st_size


def measure(quick: bool) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-layer-") as scratch_dir:
        scratch = Path(scratch_dir)
        artifacts = scratch / "artifacts"
        build_layer(artifacts)
        site = artifacts / "python"
        if not (site / "globesms").is_dir():
            raise RuntimeError(f"the layer build left no python/globesms in {artifacts}: nothing to measure")
        shipped = distributions(site)
        sizes = sizes_by_top_level(site)
        total = sum(sizes.values())
        stray = runtime_packages_in(site)
        roots = tls_roots_in(site, scratch)
        zipped = zipped_bytes(artifacts, scratch)
    largest = {name: round(size / MB, 1) for name, size in sizes.most_common(6)}
    detail: dict[str, object] = {
        "built_by": "layers/globesms/Makefile build-GlobesmsLayer (sam build's BuildMethod: makefile)",
        "distributions": sorted(shipped),
        "runtime_provided_left_out": sorted(runtime_provided()),
        "largest_top_level_mb": largest,
        "files_bytes": total,
        "tls_roots_hashed": roots,
        "zipped_mb": round(zipped / MB, 1),
        "quick": quick,
    }
    return [
        none_allowed(
            "layer.runtime_sdk_packages",
            "Layer: packages the Lambda runtime provides (boto3, botocore, ...) shipped in it",
            len(stray),
            "packages",
            {**detail, "found": stray},
        ),
        Figure(
            id="layer.unzipped_mb",
            title="Layer: built size, unzipped",
            value=total / MB,
            unit="MB",
            reference=UNZIPPED_QUOTA_BYTES / MB,
            reference_label="Lambda's quota for a function and all its layers, unzipped",
            ratio=total / UNZIPPED_QUOTA_BYTES,
            goal="<= Lambda's 250 MB unzipped quota (ratio <= 1)",
            goal_op="<=",
            goal_value=1.0,
            detail=detail,
        ),
    ]
