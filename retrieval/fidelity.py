"""How faithfully a parser kept a document's text, against its ground-truth Markdown: word-level F1 (what was kept)
and order (whether the kept words come in the document's reading order)."""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher

_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>])")
_WORD = re.compile(r"\w+", re.UNICODE)
# Markdown that is markup, not text: image placeholders, table rules, link targets; and list items that are
# only a link (tables of contents, language links, site navigation), which a search index should not hold.
_MARKUP = (re.compile(r"<!--.*?-->", re.S), re.compile(r"^\s*\|?[\s:|-]+\|[\s:|-]*$", re.M),
           re.compile(r"^\s*[-*+]\s*\[[^\]]*\]\([^)]*\)\s*$", re.M), re.compile(r"\]\([^)]*\)"))


def words(text: str) -> list[str]:
    return [word.casefold() for word in _WORD.findall(text)]


def markdown_words(markdown: str) -> list[str]:
    markdown = _ESCAPE.sub(r"\1", html.unescape(markdown))
    for pattern in _MARKUP:
        markdown = pattern.sub(" ", markdown)
    return words(markdown)


@dataclass(frozen=True)
class Fidelity:
    precision: float
    recall: float
    f1: float
    order: float  # of the words both share, the fraction that come in the same order (longest common runs)

    def as_dict(self) -> dict[str, float]:
        return {name: round(value, 4) for name, value in vars(self).items()}


def fidelity(extracted: str, truth_markdown: str) -> Fidelity:
    got, want = words(extracted), markdown_words(truth_markdown)
    common = sum((Counter(got) & Counter(want)).values())
    if not common:
        return Fidelity(0.0, 0.0, 0.0, 0.0)
    precision, recall = common / len(got), common / len(want)
    matcher = SequenceMatcher(None, got, want, autojunk=False)
    in_order = sum(block.size for block in matcher.get_matching_blocks())
    return Fidelity(precision, recall, 2 * precision * recall / (precision + recall), in_order / common)
