"""Every document the code and the docs point a reader to exists: a docstring citing `docs/<name>.md`, and a
relative link between the docs. (api/templates.py cited a docs/templates.md that was never written.)"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = ("layers", "functions", "tools", "local", "bench")
_CITED = re.compile(r"\bdocs/([A-Za-z0-9_.\-]+\.md)\b")
_LINKED = re.compile(r"\]\(([A-Za-z0-9_./\-]+\.md)(?:#[^)]*)?\)")


def test_every_doc_the_code_cites_exists() -> None:
    missing = sorted(
        f"{path.relative_to(ROOT)}: docs/{name}"
        for folder in CODE
        for path in (ROOT / folder).rglob("*.py")
        for name in set(_CITED.findall(path.read_text(encoding="utf-8")))
        if not (ROOT / "docs" / name).is_file()
    )
    assert missing == []


def test_every_link_between_the_docs_leads_to_a_doc() -> None:
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    missing = sorted(
        f"{page.relative_to(ROOT)}: {target}"
        for page in pages
        for target in set(_LINKED.findall(page.read_text(encoding="utf-8")))
        if not (page.parent / target).is_file()
    )
    assert missing == []
