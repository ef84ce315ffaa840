"""The hits of one search without repeats."""

from __future__ import annotations

from retrieval.models import Hit


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
