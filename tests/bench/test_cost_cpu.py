"""The cost figure's split of an invocation's CPU: the function's own, moto's (standing in for AWS), the rest."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench._cost_cpu import CpuSplit, cpu_stretch


def spin(seconds: float) -> None:
    """Use `seconds` of this thread's CPU (CPU time, not wall time: the same on a busy machine)."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def test_stretch_is_lambdas_share_of_a_vcpu() -> None:
    assert cpu_stretch(1769) == 1.0
    assert cpu_stretch(256) == pytest.approx(6.91, abs=0.01)
    assert cpu_stretch(1024) == pytest.approx(1.73, abs=0.01)
    assert cpu_stretch(3008) == 1.0  # more than one vCPU: one thread still runs at one core's speed


def test_own_cpu_counts_pool_threads_and_leaves_out_what_stands_for_aws_and_endpoints() -> None:
    split = CpuSplit()
    aws, endpoint = split.outside("aws", spin), split.outside("endpoints", spin)
    nested = split.outside("aws", lambda: endpoint(0.02))  # counted once, as the outer kind
    with split.installed(), ThreadPoolExecutor(max_workers=2) as pool:
        with split.invocation() as found:
            spin(0.03)
            aws(0.04)
            pool.submit(spin, 0.03).result()
            pool.submit(aws, 0.02).result()
            endpoint(0.05)
            nested()
        outside_the_invocation = pool.submit(spin, 0.05)
        outside_the_invocation.result()
    [used] = found
    assert used.own_seconds == pytest.approx(0.06, abs=0.015)
    assert used.aws_seconds == pytest.approx(0.08, abs=0.01)
    assert used.other_seconds == pytest.approx(0.05, abs=0.01)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        CpuSplit().outside("network", spin)
