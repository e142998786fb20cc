"""What the benchmark smoke tests share: the Lambda layer, built once per `make test` run.

Two figures read the layer as `sam build` builds it (`bench.layer`: its size and packages; `bench.cold_start`: the
handlers loaded from it), and each built it again: ~10 s of pip and compileall each, on different workers at the
same time as often as not. `layer_built_once` builds it with the layer's own Makefile (`bench.layer.build_layer`,
unchanged) the first time any worker asks, under a lock in the run's shared temporary directory, and hands every
figure a copy of that build.
"""

from __future__ import annotations

import fcntl
import shutil
from pathlib import Path

import pytest

from bench import cold_start, layer

BUILT_MARK = ".built"


def _run_directory(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This run's temporary directory: each pytest-xdist worker's base directory is below it (a worker's config has
    `workerinput`); a run without workers has only its own."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if hasattr(config, "workerinput") else base


@pytest.fixture(scope="session")
def built_layer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layer's artifacts directory (`python/` inside), built by the first worker to ask."""
    shared = _run_directory(request.config, tmp_path_factory)
    artifacts = shared / "layer-artifacts"
    with (shared / "layer-artifacts.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the others wait here while the first builds
        if not (artifacts / BUILT_MARK).exists():
            shutil.rmtree(artifacts, ignore_errors=True)  # a build that failed half way
            layer.build_layer(artifacts)
            (artifacts / BUILT_MARK).touch()
    return artifacts


@pytest.fixture
def layer_built_once(built_layer: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`build_layer` in the figures copies the one build instead of building again."""

    def copy_of_the_build(artifacts: Path) -> None:
        shutil.copytree(built_layer, artifacts, symlinks=True, ignore=shutil.ignore_patterns(BUILT_MARK))

    monkeypatch.setattr(layer, "build_layer", copy_of_the_build)
    monkeypatch.setattr(cold_start, "build_layer", copy_of_the_build)
