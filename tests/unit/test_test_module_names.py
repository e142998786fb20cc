"""The test folders are not packages, so pytest imports each test module by its file name: two modules with one name
in different folders fail the whole run ("import file mismatch"). Several people add tests at once; this names the
clash before a full run does."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_modules_share_a_file_name() -> None:
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
