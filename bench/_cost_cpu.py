"""Whose CPU an invocation of `bench._cost_pipeline` used: the function's own, or what stands in for AWS.

A handler runs in the pipeline's process, and in its threads moto answers its AWS calls, the meter counts them and
the emulators and the customer endpoint answer its HTTP calls. Lambda bills wall time, in which the function's own
CPU work runs at its memory size's share of a vCPU: "At 1,769 MB, a function has the equivalent of one vCPU (one
vCPU-second of credits per second)" (AWS Lambda Developer Guide, "Configure Lambda function memory",
<https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html>); at 256 MB a function that needs 10 ms
of one core takes about 69 ms. Time spent waiting on AWS does not stretch so. `CpuSplit` measures each part:

- the function's own: the CPU of the thread that called the handler, plus that of every thread-pool work item run
  meanwhile (the adapters write from pools; the webhook sender delivers from one), less what follows;
- `aws`: moto answering a request (its botocore stubber), the stand-in for the AWS round trip;
- `meter`: the meter's botocore hooks (counting, item sizes), which nothing deployed pays for;
- `endpoints`: the emulators and the customer endpoint answering HTTP calls (their latency is modelled apart).

Only the outermost measured call of a thread counts, so nothing is subtracted twice. Background threads (the
emulators' receipt pushers, the push collector's server) are in none of these: they are not the function's.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import thread as futures_thread
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

#: The memory size at which a Lambda function has one vCPU's worth of CPU (AWS Lambda Developer Guide).
VCPU_MEMORY_MB = 1769
OUTSIDE = ("aws", "meter", "endpoints")

F = TypeVar("F", bound=Callable[..., Any])


def cpu_stretch(memory_mb: int) -> float:
    """How many times longer CPU-bound work takes in a function of `memory_mb` than on one full core (at least 1:
    above 1,769 MB a function gets more than one vCPU, which one thread cannot use)."""
    return max(1.0, VCPU_MEMORY_MB / memory_mb)


@dataclass(frozen=True)
class InvocationCpu:
    own_seconds: float  # the function's own work, at one full core
    aws_seconds: float  # moto answering, standing in for the AWS round trips
    other_seconds: float  # the meter and the HTTP endpoints: not billed to the function


class CpuSplit:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self._outside: Counter[str] = Counter()
        self._pool_seconds = 0.0

    def outside(self, kind: str, fn: F) -> F:
        """`fn`, its CPU (in the outermost measured call of its thread) counted under `kind`."""
        if kind not in OUTSIDE:
            raise ValueError(f"unknown kind {kind!r}")

        @functools.wraps(fn)
        def measured(*args: Any, **kwargs: Any) -> Any:
            if getattr(self._local, "inside", False):
                return fn(*args, **kwargs)
            self._local.inside = True
            started = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                used = time.thread_time() - started
                self._local.inside = False
                with self._lock:
                    self._outside[kind] += used

        return measured  # type: ignore[return-value]

    @contextmanager
    def installed(self) -> Iterator[CpuSplit]:
        """Moto's answers measured as `aws`, and every thread-pool work item's CPU counted (restored after)."""
        from moto.core.botocore_stubber import BotocoreStubber

        stubber_call = BotocoreStubber.__call__
        work_item_run = futures_thread._WorkItem.run

        def run(item: Any) -> None:
            started = time.thread_time()
            try:
                work_item_run(item)
            finally:
                used = time.thread_time() - started
                with self._lock:
                    self._pool_seconds += used

        BotocoreStubber.__call__ = self.outside("aws", stubber_call)  # type: ignore[method-assign]
        futures_thread._WorkItem.run = run  # type: ignore[method-assign]
        try:
            yield self
        finally:
            BotocoreStubber.__call__ = stubber_call  # type: ignore[method-assign]
            futures_thread._WorkItem.run = work_item_run  # type: ignore[method-assign]

    @contextmanager
    def invocation(self) -> Iterator[list[InvocationCpu]]:
        """Measure one handler call made in this thread: the list yielded holds its split once the block ends."""
        found: list[InvocationCpu] = []
        with self._lock:
            pool, outside = self._pool_seconds, Counter(self._outside)
        started = time.thread_time()
        try:
            yield found
        finally:
            thread_seconds = time.thread_time() - started
            with self._lock:
                pool_seconds = self._pool_seconds - pool
                spent = {kind: self._outside[kind] - outside[kind] for kind in OUTSIDE}
            other = spent["meter"] + spent["endpoints"]
            own = max(0.0, thread_seconds + pool_seconds - spent["aws"] - other)
            found.append(InvocationCpu(own_seconds=own, aws_seconds=spent["aws"], other_seconds=other))
