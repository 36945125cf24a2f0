"""The docs are a map: every link between them resolves, and every repository path they name exists.

Run over README.md, docs/*.md and the figure reports, so moving a module or a section cannot leave a
newcomer at a dead end.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("*.md")], key=str)
PAGES = list(dict.fromkeys(PAGES))
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
# A repository path in backticks: `streams/worker/app.py`, `deploy/kafka/topics.json`, `tests/unit/deploy`.
REPO_PATH = re.compile(r"`((?:streams|models|schemas|deploy|tests|docs)/[\w./-]*)`")
# Pasted command output (profiles, logs) names files as they were when measured; only prose is checked.
FENCE = re.compile(r"```.*?```", re.S)


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"(?m)^#{1,6} (.+)$", FENCE.sub("", page.read_text()))
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_named_in_prose_exists(page: Path) -> None:
    missing = sorted({p for p in REPO_PATH.findall(FENCE.sub("", page.read_text()))
                      if "*" not in p and "<" not in p and not (ROOT / p.rstrip("/")).exists()})
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_the_readme_points_to_each_room_of_the_docs() -> None:
    targets = set(links(ROOT / "README.md"))
    for doc in ("docs/architecture.md", "docs/operations.md", "docs/interfaces.md"):
        assert doc in targets, f"README.md does not link {doc}"
