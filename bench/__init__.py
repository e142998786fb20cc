"""`make bench` and `make soak`: speed, cost and robustness measured side by side with their references.

Each figure module exposes `measure(quick: bool) -> list[Figure]`; `bench.__main__` runs them all, writes
`bench/results/latest.json` and prints the table. `quick` is the small smoke version `make test` runs.
"""
