"""The documentation stays readable and true: a short README that links every page under docs/, relative links
that resolve, and a configuration page that names every setting the server reads."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt

from orchestrator.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def doc_pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def link_targets(page: Path) -> list[str]:
    """Every link and image target in a Markdown page, as a parser sees them (code spans and blocks are text)."""
    parser = MarkdownIt("commonmark").enable("table")
    targets = []
    for token in parser.parse(page.read_text(encoding="utf-8")):
        for child in token.children or []:
            attr = "href" if child.type == "link_open" else "src" if child.type == "image" else None
            if attr is not None:
                targets.append(str(child.attrs[attr]))
    return targets


def relative_path(target: str) -> str | None:
    """The file part of a relative link; None for absolute URLs, mailto: and in-page anchors."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    return unquote(parts.path)


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_starts_with_the_two_commands() -> None:
    head = README.read_text(encoding="utf-8").splitlines()[:6]
    assert head[0] == "# Toolshed"
    assert head[3].startswith("make serve") and head[4].startswith("make test")


def test_docs_has_pages() -> None:
    assert len(doc_pages()) >= 3


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(README.parent / path).resolve() for target in link_targets(README)
              if (path := relative_path(target)) is not None}
    unlinked = [page.name for page in doc_pages() if page.resolve() not in linked]
    assert unlinked == []


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in [README, *doc_pages()]:
        for target in link_targets(page):
            path = relative_path(target)
            if path is not None and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_configuration_page_names_every_setting() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [f"TOOLSHED_{name.upper()}" for name in Settings.model_fields
               if f"`TOOLSHED_{name.upper()}`" not in text]
    assert missing == []
