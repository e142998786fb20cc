"""local/moto_server.py keeps the objects moto holds out of the collector's full passes (see its docstring)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# In a child: freezing changes the collector of the whole process it runs in.
CHILD = """
import gc, time
from local.moto_server import freeze_long_lived_objects
kept = [[n] for n in range(10_000)]  # long-lived container objects, as moto's items are
before = gc.get_freeze_count()
freeze_long_lived_objects(0.05)
deadline = time.monotonic() + 30
while gc.get_freeze_count() < len(kept) and time.monotonic() < deadline:
    time.sleep(0.05)
print(before, gc.get_freeze_count())
"""


def test_long_lived_objects_are_frozen_soon_after_they_are_made() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, check=True
    )
    before, after = map(int, done.stdout.split())
    assert before == 0
    assert after >= 10_000
