"""Every document stands inside the repository: README and docs/ link only to files that exist here, and never to a
path outside it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_links_between_documents_resolve_inside_the_repository() -> None:
    broken = []
    for document in documents():
        for target in LINK.findall(document.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = (document.parent / target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{document.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_no_document_names_a_path_outside_the_repository() -> None:
    outside = [
        f"{document.relative_to(ROOT)}: {line.strip()}"
        for document in documents()
        for line in document.read_text(encoding="utf-8").splitlines()
        if "../shared/" in line or "/work/" in line
    ]
    assert outside == []


def test_the_readme_walks_from_quick_start_to_the_architecture() -> None:
    headings = [
        line[3:] for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if line.startswith("## ")
    ]
    assert headings[:2] == ["Quick start", "Architecture"]
