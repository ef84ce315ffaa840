"""The file_search tool: search the thread's vector stores and give the model numbered, citable passages."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from orchestrator.metrics import SEARCH_SECONDS, SEARCHES
from orchestrator.tools.citations import CitationStore, Source
from retrieval.models import Hit
from retrieval.vector_store import VectorStoreEngine

MAX_RESULTS = 10
_QUOTE_CHARS = 2000


@dataclass(frozen=True)
class FileSearchResult:
    query: str
    hits: list[Hit]
    sources: list[Source]
    output: str  # what goes back to the model


async def run_search(engine: VectorStoreEngine, citations: CitationStore, thread_id: str, store_ids: list[str],
                     query: str, *, max_results: int = MAX_RESULTS) -> FileSearchResult:
    for store_id in store_ids:
        engine.catalog.store_key(store_id)  # StoreNotFound before searching anything
    with SEARCH_SECONDS.time():
        hits = await asyncio.to_thread(engine.search, store_ids, query, k=max_results)
    SEARCHES.labels("hybrid").inc()
    sources = citations.remember(thread_id, [(h.file_id, h.filename, h.page, h.text[:_QUOTE_CHARS]) for h in hits])
    return FileSearchResult(query, hits, sources, model_output(hits, sources))


def model_output(hits: list[Hit], sources: list[Source]) -> str:
    if not hits:
        return "No results found in the attached files."
    parts = ["Cite a passage by copying its marker, e.g. " + sources[0].label + ", right after the claim it "
             "supports."]
    for hit, source in zip(hits, sources, strict=True):
        where = f" (page {hit.page})" if hit.page is not None else ""
        parts.append(f"{source.label}{where}\n{hit.text.strip()}")
    return "\n\n".join(parts)
