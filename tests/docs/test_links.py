"""Every relative link in README.md and docs/ leads to a file, and its #anchor to a heading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)")


def _anchors(doc: Path) -> set[str]:
    """GitHub's ids of a document's headings: lower case, punctuation dropped, spaces as -."""
    starts = (line for line in doc.read_text().splitlines() if line.startswith("#"))
    return {
        re.sub(r"[^\w\- ]", "", h.lstrip("#").strip().lower()).replace(" ", "-") for h in starts
    }


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_relative_links_lead_somewhere(doc: Path) -> None:
    broken = []
    for target, anchor in LINK.findall(doc.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path = (doc.parent / target).resolve() if target else doc
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}#{anchor}")
    assert broken == []
