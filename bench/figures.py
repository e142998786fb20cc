"""One measured figure beside its reference: the shape of every line of `bench/results/latest.json`.

A figure is a ratio of two things measured in the same run on the same machine (medians of repeated runs), never
a bare time compared with a constant: this machine has 2 noisy cores. `goal` reads as "ratio <op> goal_value".
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Figure:
    """`value` and `reference` in `unit`; `ratio` = value / reference unless the module says otherwise."""

    id: str  # e.g. "signing.tencent", "cold_start.send_api"
    title: str
    value: float
    unit: str
    reference: float | None
    reference_label: str  # what the reference is ("official SDK", "import boto3", ...)
    ratio: float | None
    goal: str  # human-readable, e.g. ">= 3x SDK"
    goal_op: Literal["<=", ">=", "=="]
    goal_value: float
    detail: dict[str, object] = field(default_factory=dict)

    @property
    def goal_met(self) -> bool:
        measured = self.ratio if self.ratio is not None else self.value
        if self.goal_op == "<=":
            return measured <= self.goal_value
        if self.goal_op == ">=":
            return measured >= self.goal_value
        return measured == self.goal_value

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "goal_met": self.goal_met}

    @classmethod
    def at_most(
        cls, *, id: str, title: str, value: float, unit: str, limit: float, goal: str, detail: dict[str, object]
    ) -> Figure:
        """A figure whose reference is its goal, a ceiling: the ratio to `limit` must stay <= 1. `goal` says it
        in words."""
        return cls(
            id=id,
            title=title,
            value=value,
            unit=unit,
            reference=limit,
            reference_label="goal",
            ratio=value / limit,
            goal=goal,
            goal_op="<=",
            goal_value=1.0,
            detail=detail,
        )


def none_allowed(id: str, title: str, count: int, unit: str, detail: dict[str, object]) -> Figure:
    """A figure whose goal is a count of 0 (throttled responses, packages that must not ship): no reference."""
    return Figure(
        id=id,
        title=title,
        value=float(count),
        unit=unit,
        reference=None,
        reference_label="",
        ratio=None,
        goal="0",
        goal_op="==",
        goal_value=0.0,
        detail=detail,
    )


def median_seconds(run: Callable[[], object], *, repeat: int, number: int = 1) -> float:
    """The median over `repeat` samples of the time one call takes (each sample times `number` calls)."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            run()
        samples.append((time.perf_counter() - started) / number)
    return statistics.median(samples)


def interleaved_medians(
    runs: Mapping[str, Callable[[], object]],
    *,
    repeat: int,
    sample_seconds: float = 0.05,
    clock: Callable[[], float] = time.process_time,
) -> dict[str, float]:
    """The median seconds one call of each run takes, its samples taken in turn (A, B, A, B, ...) so that the
    machine's noise falls on every run alike.

    Each run is called once first (warm-up, and to size its samples: a sample repeats the call for about
    `sample_seconds`, so that a fast call is not lost in the clock's resolution). `clock` is CPU time of this
    process by default: on a shared 2-core machine another process's burst then costs a run nothing, while it
    would stretch a wall-clock sample."""
    numbers: dict[str, int] = {}
    for name, run in runs.items():
        started = clock()
        run()
        once = max(clock() - started, 1e-6)
        numbers[name] = max(1, round(sample_seconds / once))
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            number = numbers[name]
            started = clock()
            for _ in range(number):
                run()
            samples[name].append((clock() - started) / number)
    return {name: statistics.median(values) for name, values in samples.items()}


def machine() -> dict[str, object]:
    import os

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def write_results(figures: Sequence[Figure], path: Path, *, extra: dict[str, object] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **(extra or {}),
        "figures": [f.as_json() for f in figures],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def table(figures: Sequence[Figure]) -> str:
    """A Markdown table (docs/performance.md pastes it)."""
    lines = [
        "| figure | ours | reference | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for f in figures:
        reference = "" if f.reference is None else f"{_num(f.reference)} {f.unit} ({f.reference_label})"
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}"
        met = "yes" if f.goal_met else "NO"
        lines.append(f"| {f.title} | {_num(f.value)} {f.unit} | {reference} | {ratio} | {f.goal} | {met} |")
    return "\n".join(lines)


def _num(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"
