"""Passages as the indexes see them and as a search returns them: a chunk under its document's heading, and the
hits of one search without repeats."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from retrieval.models import Chunk, Hit

_NAME_PARTS = re.compile(r"[-_.\s]+")


@dataclass(frozen=True)
class Indexed:
    """A chunk and the text its vector and keywords are made from (`searched`)."""

    chunk: Chunk
    searched: str


def with_heading(text: str, filename: str, chunks: int) -> str:
    """A chunk of a longer document, as it is embedded and keyword-indexed: under its file name, so a passage
    deep in a paper still answers to the paper's name ("Adam's default settings"). A document that is one chunk
    already holds its own title, and is indexed as it is. (The document's first line as well measured worse on
    bench/questions.py: a running header or a conference name says nothing of the passage.)"""
    if chunks < 2:
        return text
    name = _NAME_PARTS.sub(" ", Path(filename).stem).strip()
    return f"{name}\n{text}"


def distinct(hits: list[Hit]) -> list[Hit]:
    """Hits without repeats of a better hit's text (a PDF that repeats a page, a file uploaded twice): the same
    passage twice tells a reader nothing new and takes a slot from another."""
    seen: set[str] = set()
    kept = []
    for hit in hits:
        key = " ".join(hit.text.split()).casefold()
        if key not in seen:
            seen.add(key)
            kept.append(hit)
    return kept
