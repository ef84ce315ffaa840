"""Pages to chunks, counted in the embedding model's word pieces.

`auto` makes chunks that fit the model's window exactly (254 word pieces for all-MiniLM-L6-v2, a quarter of
them overlapping), so every chunk is embedded whole. `static` follows OpenAI's contract (100-4096 tokens,
overlap at most half); chunks longer than the window are embedded window by window (see embedding.py).
Chunks never cross a page, so every chunk has one page to cite, and never end inside a word.

A page is tokenised a bounded window of text at a time, cut at whitespace, and chunked as its word pieces
stream past: the cost is linear in the text, and memory holds one window and one chunk, however big the file
(a 12 MB line would otherwise become millions of Python tuples held at once, built while holding the GIL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from retrieval.models import Chunk, ChunkingStrategy, Page

AUTO_OVERLAP_FRACTION = 4
Spans = Callable[[str], list[tuple[int, int]]]
# Text tokenised per call. Cutting at whitespace leaves word pieces as they are over the whole text.
WINDOW_CHARS = 16_384
# WordPiece makes one [UNK] of a word longer than this; a longer span (hex, base64) is counted in pieces of it,
# so a chunk's text stays bounded however long its words are.
MAX_SPAN_CHARS = 100
# A chunk ends at most this many word pieces back from its limit to end on a word boundary.
_WORD_REACH = 32


def chunk_pages(pages: list[Page], strategy: ChunkingStrategy, *, window: int, token_spans: Spans) -> list[Chunk]:
    if strategy.type == "auto":
        size, overlap = window, window // AUTO_OVERLAP_FRACTION
    else:
        size, overlap = strategy.max_chunk_size_tokens, strategy.chunk_overlap_tokens
    chunks: list[Chunk] = []
    for page in pages:
        chunks.extend(_chunk_text(page, _SpanStream(page.text, token_spans), size, overlap))
    return chunks


def stream_spans(text: str, token_spans: Spans, window: int = WINDOW_CHARS) -> Iterator[list[tuple[int, int]]]:
    """The text's word-piece spans in order, a list per `window` characters of text (cut at whitespace)."""
    position = 0
    while position < len(text):
        cut = _cut(text, position, window)
        spans = [(start + position, end + position) for start, end in token_spans(text[position:cut])]
        if any(end - start > MAX_SPAN_CHARS for start, end in spans):
            spans = [piece for span in spans for piece in _pieces(span)]
        yield spans
        position = cut


def _pieces(span: tuple[int, int]) -> list[tuple[int, int]]:
    start, end = span
    return [(at, min(at + MAX_SPAN_CHARS, end)) for at in range(start, end, MAX_SPAN_CHARS)] or [span]


def _cut(text: str, position: int, window: int) -> int:
    """Where the window from `position` ends: at its last whitespace in its second half, else at its full size
    (a run without spaces is cut anywhere)."""
    end = position + window
    if end >= len(text):
        return len(text)
    at = max(text.rfind(space, position + window // 2, end + 1) for space in " \n\t\r")
    return at if at > 0 else end


class _SpanStream:
    """Spans by index, read from the stream as far as asked; those well behind the chunker are let go."""

    def __init__(self, text: str, token_spans: Spans) -> None:
        self._source = stream_spans(text, token_spans)
        self._spans: list[tuple[int, int]] = []
        self._base = 0  # the index of self._spans[0]
        self.count: int | None = None  # known once the stream is exhausted

    def has(self, index: int) -> bool:
        while self._base + len(self._spans) <= index:
            if self.count is not None:
                return False
            more = next(self._source, None)
            if more is None:
                self.count = self._base + len(self._spans)
                return False
            self._spans.extend(more)
        return True

    def __getitem__(self, index: int) -> tuple[int, int]:
        return self._spans[index - self._base]

    def forget_before(self, index: int) -> None:
        drop = index - self._base
        if drop > 4096:  # in large steps, so dropping stays linear
            del self._spans[:drop]
            self._base = index


def _chunk_text(page: Page, spans: _SpanStream, size: int, overlap: int) -> Iterator[Chunk]:
    text = page.text
    start = 0
    while spans.has(start):
        end = start + size
        # More text after this chunk: end it on a word boundary; none: end with the text.
        end = _word_boundary(spans, start, end) if spans.has(end) else spans.count or 0
        first, last = spans[start][0], spans[end - 1][1]
        if text[first:last].strip():
            yield Chunk(text[first:last], page.number, first, last, end - start)
        if not spans.has(end):
            return
        start = max(end - overlap, start + 1)
        start = _word_boundary(spans, 0, start)
        spans.forget_before(start - 2 * _WORD_REACH)


def _word_boundary(spans: _SpanStream, floor: int, end: int) -> int:
    """Move `end` back so that spans[end] starts a word (not a '##' continuation), unless the word is huge."""
    candidate = end
    while candidate > max(floor + 1, end - _WORD_REACH) and spans[candidate][0] == spans[candidate - 1][1]:
        candidate -= 1
    return candidate if end - candidate < _WORD_REACH else end
