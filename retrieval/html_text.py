"""HTML to text as a reader sees it: inline elements (links, emphasis, spans) joined into their sentence, one line
per block (paragraph, heading, list item), a table row as `cell | cell | cell`, and the page's furniture dropped
(navigation, menus, footers, language links, edit links, scripts)."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

_HIDDEN = ["script", "style", "noscript", "template", "svg", "head", "nav", "footer", "aside", "form", "button",
           "iframe", "object", "select"]
_BLOCKS = frozenset({"p", "div", "section", "article", "main", "header", "h1", "h2", "h3", "h4", "h5", "h6", "li",
                     "ul", "ol", "dl", "dt", "dd", "blockquote", "pre", "figure", "figcaption", "table", "caption",
                     "hr", "br", "address", "details", "summary", "center", "body", "html"})
# Class or id words of page furniture, as the big sites and CMSs name it.
_FURNITURE = re.compile(r"(^|[-_\s])(nav|navbox|navbar|navigation|menu|sidebar|breadcrumbs?|footer|cookie|"
                        r"editsection|interlanguage|catlinks|jump-link|toc|skip|banner|printfooter|mw-indicators)"
                        r"($|[-_\s])", re.I)
_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "menu", "menubar"})
_SPACE = re.compile(r"\s+")


def html_text(markup: str) -> str:
    soup = BeautifulSoup(markup, "html.parser")
    for hidden in soup(_HIDDEN):
        hidden.decompose()
    for tag in soup.find_all(_is_furniture):
        tag.decompose()
    lines: list[str] = []
    current: list[str] = []
    _walk(soup, lines, current)
    _flush(lines, current)
    return "\n".join(lines)


def _is_furniture(tag: Tag) -> bool:
    if tag.attrs is None or tag.name in ("body", "html", "main", "article"):
        return False
    if tag.get("role") in _ROLES or tag.get("aria-hidden") == "true" or tag.has_attr("hidden"):
        return True
    names = " ".join([*(str(name) for name in tag.get_attribute_list("class") if name), str(tag.get("id") or "")])
    return bool(names.strip()) and _FURNITURE.search(names) is not None


def _walk(node: Tag, lines: list[str], current: list[str]) -> None:
    for child in node.children:
        if isinstance(child, Comment | Declaration | Doctype | ProcessingInstruction):
            continue
        if isinstance(child, NavigableString):
            current.append(str(child))
        elif isinstance(child, Tag):
            if child.name == "table":
                _flush(lines, current)
                _table(child, lines)
            elif child.name == "pre":
                _flush(lines, current)
                lines.append(child.get_text())
            elif child.name in _BLOCKS:
                _flush(lines, current)
                _walk(child, lines, current)
                _flush(lines, current)
            else:
                _walk(child, lines, current)


def _table(table: Tag, lines: list[str]) -> None:
    caption = table.find("caption")
    if caption is not None:
        lines.append(_SPACE.sub(" ", caption.get_text(" ")).strip())
    for row in table.find_all("tr"):
        if row.find_parent("table") is not table:
            continue  # a nested table's rows are read with it
        cells = [_SPACE.sub(" ", cell.get_text(" ")).strip() for cell in row.find_all(["td", "th"], recursive=False)]
        if any(cells):
            lines.append(" | ".join(cell for cell in cells if cell))


def _flush(lines: list[str], current: list[str]) -> None:
    line = _SPACE.sub(" ", "".join(current)).strip()
    if line:
        lines.append(line)
    current.clear()
