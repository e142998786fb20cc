"""Links between the docs that name a section (`[x](pipeline.md#redrive)`) reach a heading of that file: a section
named in prose that is no heading cannot be linked to or found by a reader's table of contents."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)#\s]+\.md)#([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but hyphens and underscores dropped, spaces hyphens."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_anchor_is_github_s() -> None:
    assert anchor("Per-number velocity_limit") == "per-number-velocity_limit"
    assert anchor("Replies: inbound SMS and keywords") == "replies-inbound-sms-and-keywords"
    assert anchor("`make redrive`") == "make-redrive"


def test_every_link_to_a_section_reaches_a_heading() -> None:
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for document in documents:
        for target, section in LINK.findall(document.read_text(encoding="utf-8")):
            path = (document.parent / target).resolve()
            headings = (
                {anchor(h) for h in HEADING.findall(path.read_text(encoding="utf-8"))} if path.exists() else set()
            )
            if section not in headings:
                broken.append(f"{document.relative_to(ROOT)}: {target}#{section}")
    assert broken == []


def test_the_redrive_the_cli_and_deploy_guides_point_to_is_a_section() -> None:
    """docs/cli.md and docs/deploy.md sent readers to docs/pipeline.md, "Redrive", a bold paragraph at the end of
    the failure cases (a reviewer's finding)."""
    for guide in ("cli.md", "deploy.md"):
        assert "](pipeline.md#redrive)" in (ROOT / "docs" / guide).read_text(encoding="utf-8"), guide
