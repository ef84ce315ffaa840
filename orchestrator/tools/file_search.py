"""The file_search tool: search the thread's vector stores and give the model numbered, citable passages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

from orchestrator.tools.citations import CitationStore, Source
from orchestrator.tools.definitions import FILE_SEARCH, FILE_SEARCH_TOOL
from orchestrator.tools.registry import Outcome, ToolCall, ToolContext, string_argument
from retrieval.models import Hit

MAX_RESULTS = 10
# Hybrid scores are absolute (retrieval/fusion.py): on the shared documents, passages that answer a question score
# 0.26 and up, and the best match of a question the files cannot answer ("what is the capital of Peru", a string
# of nonsense) 0.12 at most. Below this, a passage is noise the model should not be handed.
SCORE_THRESHOLD = 0.2
_QUOTE_CHARS = 400
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class FileSearchResult:
    query: str
    hits: list[Hit]
    sources: list[Source]
    output: str  # what goes back to the model
    score_threshold: float = 0.0


class PassageSearch(Protocol):
    async def search(self, store_ids: list[str], query: str, *, k: int, filters: dict[str, Any] | None = None,
                     score_threshold: float = 0.0) -> list[Hit]:
        """The best `k` passages across the stores, each store checked to exist first."""
        ...


class FileSearchTool:
    """Searches the vector stores the call's resources name, numbering passages for citation per conversation."""

    name = FILE_SEARCH
    definition: dict[str, Any] = FILE_SEARCH_TOOL

    def __init__(self, stores: PassageSearch, citations: CitationStore, *, max_results: int = MAX_RESULTS,
                 score_threshold: float = SCORE_THRESHOLD) -> None:
        self._stores = stores
        self._citations = citations
        self._max_results = max_results
        self._score_threshold = score_threshold

    async def run(self, call: ToolCall, context: ToolContext) -> Outcome:
        query = string_argument(call, "query")
        if not isinstance(query, str):
            return query
        store_ids = context.resources.vector_store_ids
        if not store_ids:
            # Not the model's mistake: nobody attached files. The model reads that and answers without them.
            return FileSearchResult(query, [], [], "There are no files to search: no vector store is attached "
                                                   "to this conversation.")
        settings = context.search
        threshold = self._score_threshold if settings.score_threshold is None else settings.score_threshold
        hits = await self._stores.search(store_ids, query, k=settings.max_results or self._max_results,
                                         filters=settings.filters, score_threshold=threshold)
        sources = self._citations.remember(context.scope, context.key, [
            (h.file_id, h.filename, h.page, best_quote(h.text, query)) for h in hits])
        return FileSearchResult(query, hits, sources, model_output(hits, sources), threshold)


def best_quote(text: str, query: str) -> str:
    """The sentence of a passage that shares the most words with the query, with the next one if both fit in
    `_QUOTE_CHARS`, verbatim: what a citation quotes, instead of the whole passage."""
    cuts = [0, *(m.end() for m in _SENTENCE_END.finditer(text)), len(text)]
    spans = [(start, end) for start, end in pairwise(cuts) if text[start:end].strip()]
    if not spans:
        return text[:_QUOTE_CHARS]
    wanted = {word.casefold() for word in _WORD.findall(query) if len(word) > 2}
    scores = [len(wanted & {w.casefold() for w in _WORD.findall(text[start:end])}) for start, end in spans]
    best = scores.index(max(scores))
    start, end = spans[best]
    if best + 1 < len(spans) and spans[best + 1][1] - start <= _QUOTE_CHARS:
        end = spans[best + 1][1]
    quote = text[start:end].strip()
    return quote if len(quote) <= _QUOTE_CHARS else quote[:_QUOTE_CHARS - 1] + "…"


def model_output(hits: list[Hit], sources: list[Source]) -> str:
    if not hits:
        return "No relevant passages found in the attached files."
    parts = ["Cite a passage by copying its marker, e.g. " + sources[0].label + ", right after the claim it "
             "supports."]
    for hit, source in zip(hits, sources, strict=True):
        where = f" (page {hit.page})" if hit.page is not None else ""
        parts.append(f"{source.label}{where}\n{hit.text.strip()}")
    return "\n\n".join(parts)
