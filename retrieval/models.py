"""Value objects of the retrieval engine. Frozen dataclasses; the wire format lives in orchestrator.api."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from retrieval.errors import InvalidRequest

SearchMode = Literal["dense", "keyword", "hybrid"]
AttributeValue = str | float | bool


@dataclass(frozen=True)
class Page:
    """Text of one page (PDF page, slide); `number` is None for formats without pages."""

    number: int | None
    text: str


@dataclass(frozen=True)
class Chunk:
    """A span of one page: `text == page.text[start:end]`. `tokens` counts the embedding model's word pieces."""

    text: str
    page: int | None
    start: int
    end: int
    tokens: int


@dataclass(frozen=True)
class IndexedChunk:
    """A chunk as a store holds it: with its id there (a search hit's `chunk_id`)."""

    id: int
    chunk: Chunk


@dataclass(frozen=True)
class ChunkingStrategy:
    """OpenAI's chunking_strategy: `auto`, or `static` with a size and an overlap in tokens."""

    type: Literal["auto", "static"] = "auto"
    max_chunk_size_tokens: int = 800
    chunk_overlap_tokens: int = 400

    @classmethod
    def static(cls, max_chunk_size_tokens: int, chunk_overlap_tokens: int) -> ChunkingStrategy:
        if not 100 <= max_chunk_size_tokens <= 4096:
            raise InvalidRequest("max_chunk_size_tokens must be between 100 and 4096.",
                                 "chunking_strategy.static.max_chunk_size_tokens")
        if not 0 <= chunk_overlap_tokens <= max_chunk_size_tokens // 2:
            raise InvalidRequest("chunk_overlap_tokens must be between 0 and half of max_chunk_size_tokens.",
                                 "chunking_strategy.static.chunk_overlap_tokens")
        return cls("static", max_chunk_size_tokens, chunk_overlap_tokens)


@dataclass(frozen=True)
class Hit:
    """One search result: a chunk, the file it came from and where in it."""

    chunk_id: int
    file_id: str
    filename: str
    score: float
    text: str
    page: int | None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    dense_score: float | None = None  # the cosine similarity, when known
    keyword_score: float | None = None  # BM25 over the query's ceiling (0 to 1), when known


@dataclass(frozen=True)
class FileError:
    code: str
    message: str


@dataclass(frozen=True)
class StoreFile:
    """A file attached to a vector store, and how its indexing went."""

    store_id: str
    file_id: str
    filename: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    created_at: int
    usage_bytes: int
    attributes: dict[str, AttributeValue]
    chunking: ChunkingStrategy
    error: FileError | None = None
    batch_id: str | None = None


@dataclass(frozen=True)
class FileCounts:
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.in_progress + self.completed + self.failed + self.cancelled


@dataclass(frozen=True)
class Store:
    id: str
    name: str
    created_at: int
    last_active_at: int
    usage_bytes: int
    file_counts: FileCounts
    metadata: dict[str, str]
    expires_after_days: int | None = None
    description: str | None = None

    @property
    def status(self) -> str:
        if self.expires_at is not None and self.expires_at <= time.time():
            return "expired"
        return "in_progress" if self.file_counts.in_progress else "completed"

    @property
    def expires_at(self) -> int | None:
        if self.expires_after_days is None:
            return None
        return self.last_active_at + self.expires_after_days * 86400


@dataclass(frozen=True)
class Batch:
    id: str
    store_id: str
    created_at: int
    file_counts: FileCounts
    cancelled: bool = False

    @property
    def status(self) -> str:
        if self.file_counts.in_progress:
            return "in_progress"
        if self.cancelled:
            return "cancelled"
        return "failed" if self.file_counts.failed and not self.file_counts.completed else "completed"


@dataclass(frozen=True)
class Document:
    """A file's text, ready to index (parsed from a file, or given directly as by `toolshed eval`)."""

    file_id: str
    pages: list[Page]
