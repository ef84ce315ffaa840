"""Pages to chunks, counted in the embedding model's word pieces.

`auto` makes chunks that fit the model's window exactly (254 word pieces for all-MiniLM-L6-v2, a quarter of
them overlapping), so every chunk is embedded whole. `static` follows OpenAI's contract (100-4096 tokens,
overlap at most half); chunks longer than the window are embedded window by window (see embedding.py).
Chunks never cross a page, so every chunk has one page to cite, and never end inside a word.
"""

from __future__ import annotations

from collections.abc import Callable

from retrieval.models import Chunk, ChunkingStrategy, Page

AUTO_OVERLAP_FRACTION = 4


def chunk_pages(pages: list[Page], strategy: ChunkingStrategy, *, window: int,
                token_spans: Callable[[str], list[tuple[int, int]]]) -> list[Chunk]:
    if strategy.type == "auto":
        size, overlap = window, window // AUTO_OVERLAP_FRACTION
    else:
        size, overlap = strategy.max_chunk_size_tokens, strategy.chunk_overlap_tokens
    chunks: list[Chunk] = []
    for page in pages:
        chunks.extend(_chunk_text(page, token_spans(page.text), size, overlap))
    return chunks


def _chunk_text(page: Page, spans: list[tuple[int, int]], size: int, overlap: int) -> list[Chunk]:
    text = page.text
    chunks = []
    start = 0
    while start < len(spans):
        end = min(start + size, len(spans))
        if end < len(spans):
            end = _word_boundary(spans, start, end)
        first, last = spans[start][0], spans[end - 1][1]
        if text[first:last].strip():
            chunks.append(Chunk(text[first:last], page.number, first, last, end - start))
        if end == len(spans):
            break
        start = max(end - overlap, start + 1)
        start = _word_boundary(spans, 0, start) if start > 0 else start
    return chunks


def _word_boundary(spans: list[tuple[int, int]], floor: int, end: int) -> int:
    """Move `end` back so that spans[end] starts a word (not a '##' continuation), unless the word is huge."""
    candidate = end
    while candidate > floor + 1 and spans[candidate][0] == spans[candidate - 1][1]:
        candidate -= 1
    return candidate if end - candidate < 32 else end
