"""Wire format of the Vector Stores API, shaped like openai.types.vector_store* to the field."""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from orchestrator.api.schemas import StrictBody, TextContent
from orchestrator.services.vector_stores import Attachment
from orchestrator.tools.steps import score_parts
from retrieval.models import Batch, ChunkingStrategy, FileCounts, Hit, SearchMode, Store, StoreFile

Attributes = dict[str, str | float | bool]
# OpenAI's limits: 16 pairs, keys up to 64 characters, values up to 512.
Metadata = Annotated[dict[Annotated[str, StringConstraints(max_length=64)],
                          Annotated[str, StringConstraints(max_length=512)]], Field(max_length=16)]


# ---- requests ---------------------------------------------------------------------------------------------------

class StaticChunking(BaseModel):
    max_chunk_size_tokens: int = Field(ge=100, le=4096)
    chunk_overlap_tokens: int = Field(ge=0)


class ChunkingRequest(BaseModel):
    type: Literal["auto", "static"]
    static: StaticChunking | None = None

    @model_validator(mode="after")
    def _static_needs_sizes(self) -> ChunkingRequest:
        if self.type == "static" and self.static is None:
            raise ValueError("a static chunking_strategy needs 'static': {max_chunk_size_tokens, "
                             "chunk_overlap_tokens}")
        return self

    def strategy(self) -> ChunkingStrategy:
        if self.type == "auto" or self.static is None:
            return ChunkingStrategy()
        return ChunkingStrategy.static(self.static.max_chunk_size_tokens, self.static.chunk_overlap_tokens)


class ExpiresAfterDays(BaseModel):
    anchor: Literal["last_active_at"] = "last_active_at"
    days: int = Field(ge=1, le=365)


class VectorStoreCreate(StrictBody):
    name: str = Field("", max_length=256)
    file_ids: list[str] = Field(default_factory=list, max_length=500)
    expires_after: ExpiresAfterDays | None = None
    chunking_strategy: ChunkingRequest | None = None
    metadata: Metadata | None = None
    description: str | None = None


class VectorStoreUpdate(StrictBody):
    """An explicit null clears a field (the SDK types allow it): no name, no metadata, no expiry."""

    name: str | None = Field(None, max_length=256)
    expires_after: ExpiresAfterDays | None = None
    metadata: Metadata | None = None

    def changes(self) -> dict[str, Any]:
        """The catalog columns this update sets, nulls already turned into the values they stand for."""
        given = self.model_fields_set
        fields: dict[str, Any] = {}
        if "name" in given:
            fields["name"] = self.name or ""
        if "metadata" in given:
            fields["metadata"] = self.metadata or {}
        if "expires_after" in given:
            fields["expires_after_days"] = self.expires_after.days if self.expires_after else None
        return fields


class VectorStoreFileCreate(StrictBody):
    file_id: str
    attributes: Attributes | None = Field(None, max_length=16)
    chunking_strategy: ChunkingRequest | None = None


class VectorStoreFileUpdate(StrictBody):
    attributes: Attributes | None = Field(max_length=16)


class BatchFile(BaseModel):
    file_id: str
    attributes: Attributes | None = Field(None, max_length=16)
    chunking_strategy: ChunkingRequest | None = None

    def attachment(self) -> Attachment:
        chunking = self.chunking_strategy.strategy() if self.chunking_strategy else None
        return Attachment(self.file_id, dict(self.attributes or {}), chunking)


class FileBatchCreate(StrictBody):
    file_ids: list[str] | None = Field(None, max_length=2000)
    files: list[BatchFile] | None = Field(None, max_length=2000)
    attributes: Attributes | None = Field(None, max_length=16)
    chunking_strategy: ChunkingRequest | None = None

    @model_validator(mode="after")
    def _one_way_of_naming_files(self) -> FileBatchCreate:
        if self.file_ids is not None and self.files is not None:
            raise ValueError("give either file_ids or files, not both")
        if not (self.file_ids or self.files):
            raise ValueError("give file_ids or files")
        return self

    def entries(self) -> list[BatchFile]:
        if self.files is not None:
            return self.files
        return [BatchFile(file_id=f, attributes=self.attributes, chunking_strategy=self.chunking_strategy)
                for f in self.file_ids or []]


class RankingOptions(BaseModel):
    # "none" is plain vector similarity; "auto" is the best measured mode (hybrid). The three mode names are a
    # Toolshed extension for experiments.
    ranker: Literal["none", "auto", "default-2024-11-15", "dense", "keyword", "hybrid"] = "auto"
    score_threshold: float = Field(0.0, ge=0.0)


class SearchRequest(StrictBody):
    query: str | list[str]
    filters: dict[str, Any] | None = None
    max_num_results: int = Field(10, ge=1, le=50)
    ranking_options: RankingOptions | None = None
    rewrite_query: bool = False

    @field_validator("query")
    @classmethod
    def _something_to_search(cls, query: str | list[str]) -> str | list[str]:
        if not (query.strip() if isinstance(query, str) else any(part.strip() for part in query)):
            raise ValueError("query must not be empty.")
        return query

    def text(self) -> str:
        return self.query if isinstance(self.query, str) else "\n".join(self.query)

    def mode(self) -> SearchMode:
        ranker = self.ranking_options.ranker if self.ranking_options else "auto"
        mode = {"none": "dense", "auto": "hybrid", "default-2024-11-15": "hybrid"}.get(ranker, ranker)
        return cast(SearchMode, mode)


# ---- responses --------------------------------------------------------------------------------------------------

class FileCountsWire(BaseModel):
    in_progress: int
    completed: int
    failed: int
    cancelled: int
    total: int

    @classmethod
    def of(cls, counts: FileCounts) -> FileCountsWire:
        return cls(in_progress=counts.in_progress, completed=counts.completed, failed=counts.failed,
                   cancelled=counts.cancelled, total=counts.total)


class VectorStoreObject(BaseModel):
    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str
    description: str | None
    usage_bytes: int
    file_counts: FileCountsWire
    status: str
    expires_after: ExpiresAfterDays | None
    expires_at: int | None
    last_active_at: int
    metadata: dict[str, str]

    @classmethod
    def of(cls, store: Store) -> VectorStoreObject:
        expires = ExpiresAfterDays(days=store.expires_after_days) if store.expires_after_days else None
        return cls(id=store.id, created_at=store.created_at, name=store.name, description=store.description,
                   usage_bytes=store.usage_bytes, file_counts=FileCountsWire.of(store.file_counts), status=store.status,
                   expires_after=expires, expires_at=store.expires_at, last_active_at=store.last_active_at,
                   metadata=store.metadata)


class LastError(BaseModel):
    code: str
    message: str


def chunking_wire(strategy: ChunkingStrategy) -> dict[str, Any]:
    if strategy.type == "static":
        return {"type": "static", "static": {"max_chunk_size_tokens": strategy.max_chunk_size_tokens,
                                             "chunk_overlap_tokens": strategy.chunk_overlap_tokens}}
    return {"type": "other"}  # auto: sized to the embedding model's window, see the README


class VectorStoreFileObject(BaseModel):
    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    created_at: int
    usage_bytes: int
    vector_store_id: str
    status: str
    last_error: LastError | None
    attributes: Attributes
    chunking_strategy: dict[str, Any]

    @classmethod
    def of(cls, record: StoreFile) -> VectorStoreFileObject:
        error = LastError(code=record.error.code, message=record.error.message) if record.error else None
        return cls(id=record.file_id, created_at=record.created_at, usage_bytes=record.usage_bytes,
                   vector_store_id=record.store_id, status=record.status, last_error=error,
                   attributes=record.attributes, chunking_strategy=chunking_wire(record.chunking))


class FileBatchObject(BaseModel):
    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: str
    file_counts: FileCountsWire

    @classmethod
    def of(cls, batch: Batch) -> FileBatchObject:
        return cls(id=batch.id, created_at=batch.created_at, vector_store_id=batch.store_id, status=batch.status,
                   file_counts=FileCountsWire.of(batch.file_counts))


class SearchResult(BaseModel):
    file_id: str
    filename: str
    score: float
    attributes: Attributes
    content: list[TextContent]
    # Toolshed extensions: where the passage is, and the two halves of a hybrid score.
    page: int | None
    chunk_id: int
    dense_score: float | None
    keyword_score: float | None

    @classmethod
    def of(cls, hit: Hit) -> SearchResult:
        return cls(file_id=hit.file_id, filename=hit.filename, score=round(hit.score, 6), attributes=hit.attributes,
                   content=[TextContent(text=hit.text)], page=hit.page, chunk_id=hit.chunk_id, **score_parts(hit))


class ChunkContent(TextContent):
    """A chunk of `files/{id}/content`, with where it is (Toolshed extensions)."""

    page: int | None
    chunk_id: int


class SearchResultsPage(BaseModel):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool = False
    next_page: str | None = None


class FileContentPage(BaseModel):
    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"
    data: list[ChunkContent]
    has_more: bool = False
    next_page: str | None = None
