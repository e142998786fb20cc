"""`make bench` figure "layer": the Lambda layer built as `sam build` builds it, then read. A test of the measurement:
it builds the real layer and reads every distribution of the layer's lock in it, and it would find a runtime package
(boto3, botocore, ...) shipped by mistake, whether with its `.dist-info` or copied in as a bare tree."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench import layer
from bench._cold_env import layer_requirement_lines


def locked_names() -> set[str]:
    return {canonicalize_name(Requirement(line).name) for line in layer_requirement_lines()}


@pytest.mark.usefixtures("layer_built_once")
def test_quick_layer_figures_read_the_built_layer() -> None:
    figures = {f.id: f for f in layer.measure(quick=True)}

    assert set(figures) == {"layer.runtime_sdk_packages", "layer.unzipped_mb"}
    packages, size = figures["layer.runtime_sdk_packages"], figures["layer.unzipped_mb"]
    assert packages.value == len(packages.detail["found"])  # type: ignore[arg-type]
    assert set(packages.detail["distributions"]) == locked_names()  # type: ignore[arg-type]
    assert {"boto3", "botocore"} <= set(packages.detail["runtime_provided_left_out"])  # type: ignore[arg-type]
    assert math.isfinite(size.value) and size.value > 0
    assert size.value == size.detail["files_bytes"] / layer.MB  # type: ignore[operator]
    assert size.ratio == size.value / (layer.UNZIPPED_QUOTA_BYTES / layer.MB)
    assert 0 < size.detail["zipped_mb"] < size.value  # type: ignore[operator]
    assert "globesms" in size.detail["largest_top_level_mb"]  # type: ignore[operator]
    assert all(isinstance(f.goal_met, bool) for f in figures.values())


def test_a_runtime_package_in_the_layer_is_found_with_or_without_its_dist_info(tmp_path: Path) -> None:
    site = tmp_path / "python"
    (site / "globesms").mkdir(parents=True)
    (site / "globesms" / "__init__.py").write_text("")
    (site / "pydantic-2.0.dist-info").mkdir()
    assert layer.runtime_packages_in(site) == []

    (site / "botocore-1.40.0.dist-info").mkdir()
    (site / "jmespath").mkdir()
    (site / "jmespath" / "__init__.py").write_text("")
    (site / "six.py").write_text("")

    assert layer.runtime_packages_in(site) == ["botocore", "jmespath", "six"]
