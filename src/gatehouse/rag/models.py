"""Typed values of the RAG engine: collection settings, documents, chunks, hits."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gatehouse.rag.access import Owner, OwnerKind
from gatehouse.rag.text import languages

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
MetadataType = Literal["str", "int", "float", "bool"]
Expansion = Literal["none", "multi_query", "hyde"]
Rerank = Literal["none", "llm", "cross_encoder"]
# The query and passage prefixes an embedding model was trained with, by model name.
EMBEDDING_PREFIXES: dict[str, tuple[str, str]] = {"local/e5-small": ("query: ", "passage: ")}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChunkingConfig(_Strict):
    """How a collection cuts documents into chunks.

    ``tokens``: fixed windows of ``size`` embedding-model tokens with ``overlap``.
    ``structure``: split on headings, sections, paragraphs, then sentences, packing
    pieces up to ``size`` tokens. ``semantic``: split between sentences where the
    similarity of adjacent sentences drops (needs embeddings at ingestion).
    """

    strategy: Literal["tokens", "structure", "semantic"] = "structure"
    size: int = Field(default=200, ge=16, le=256)
    overlap: int = Field(default=32, ge=0, le=128)
    semantic_threshold: float = Field(default=0.25, ge=0.0, le=1.0)

    @field_validator("overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info: Any) -> int:
        size = info.data.get("size")
        if size is not None and value >= size:
            raise ValueError("overlap must be smaller than size")
        return value


class CollectionSpec(_Strict):
    """What ``POST /v1/rag/collections`` takes; stored with the collection."""

    name: str = Field(pattern=NAME_PATTERN)
    embedding_model: str = "local/minilm"
    chunking: ChunkingConfig = ChunkingConfig()
    language: str = "auto"
    metadata_schema: dict[str, MetadataType] = Field(default_factory=dict)
    description: str = ""
    # A local sentence-transformers CrossEncoder folder for ``rerank: cross_encoder``.
    cross_encoder: str | None = Field(default=None, min_length=1)
    # Text put before each query and each passage sent to the embedding model
    # (e5 and bge want their own); ``None``: what EMBEDDING_PREFIXES says for
    # ``embedding_model``, else nothing.
    query_prefix: str | None = Field(default=None, max_length=64)
    passage_prefix: str | None = Field(default=None, max_length=64)

    def prefix(self, purpose: Literal["query", "passage"]) -> str:
        """What goes before a ``purpose`` text sent to the embedding model."""
        chosen = self.query_prefix if purpose == "query" else self.passage_prefix
        if chosen is not None:
            return chosen
        known = EMBEDDING_PREFIXES.get(self.embedding_model, ("", ""))
        return known[0] if purpose == "query" else known[1]

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        known = languages()
        if value not in known:
            raise ValueError(f"must be one of {', '.join(known)}")
        return value


class CollectionCreate(CollectionSpec):
    """What ``POST /v1/rag/collections`` takes: the settings, and who shares it.

    ``owner`` is ``team`` (the default when the key has a team), ``key`` or
    ``org``: the callers of that team, key or organisation see the collection.
    """

    owner: OwnerKind | None = None


class CollectionInfo(CollectionSpec):
    """A collection as listed: its settings plus counts."""

    owner: Owner | None = None
    documents: int = 0
    chunks: int = 0
    dimensions: int | None = None
    created_at: int = 0


class DocumentIn(_Strict):
    """One document to ingest; ``id`` is kept as the document id (generated when absent)."""

    id: str | None = Field(default=None, min_length=1, max_length=512)
    text: str
    title: str | None = None
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)
    source: str | None = None


class DocumentInfo(BaseModel):
    id: str
    title: str | None
    source: str | None
    content_hash: str
    metadata: dict[str, Any]
    chunks: int
    updated_at: int


class Chunk(BaseModel):
    """A stored piece of a document, with where it came from."""

    chunk_id: str
    document_id: str
    position: int
    text: str
    heading: str = ""
    start: int = 0
    end: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)


class IngestResult(BaseModel):
    added: int = 0
    unchanged: int = 0
    replaced: int = 0
    chunks: int = 0


class SearchHit(BaseModel):
    document_id: str
    chunk_id: str
    text: str
    score: float
    metadata: dict[str, Any]


class AddDocumentsRequest(_Strict):
    documents: list[DocumentIn] = Field(min_length=1, max_length=10_000)


class SearchRequest(_Strict):
    query: str = Field(min_length=1, max_length=10_000)
    top_k: int = Field(default=10, ge=1, le=200)
    mode: Literal["hybrid", "dense", "keyword", "rrf"] = "hybrid"
    filter: dict[str, Any] | None = None
    diversity: float | None = Field(default=None, ge=0.0, le=1.0)
    expansion: Expansion = "none"
    rerank: Rerank = "none"

    @property
    def calls_models(self) -> bool:
        """Whether the search makes a model call through the gateway: the query's
        embedding (HyDE's document with it), multi-query's rewrites, or an LLM
        rerank (a cross-encoder runs in process). A keyword search ignores HyDE."""
        return self.mode != "keyword" or self.expansion == "multi_query" or self.rerank == "llm"


class SearchResponse(BaseModel):
    results: list[SearchHit]


class HistoryMessage(_Strict):
    role: Literal["user", "assistant"]
    content: str


class AnswerRequest(_Strict):
    query: str = Field(min_length=1, max_length=10_000)
    top_k: int | None = Field(default=None, ge=1, le=50)
    history: list[HistoryMessage] = Field(default_factory=list)
    model: str | None = Field(default=None, min_length=1)
    stream: bool = False
    filter: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=2048)
    condense: bool = False
    expansion: Expansion = "none"


class CitationOut(BaseModel):
    index: int
    document_id: str
    chunk_id: str


class AnswerResponse(BaseModel):
    answer: str
    citations: list[CitationOut]
    results: list[SearchHit]


class AnswerEvent(BaseModel):
    """One SSE event of a streamed answer: ``results`` first, ``delta`` pieces, then ``done``."""

    type: Literal["results", "delta", "done"]
    results: list[SearchHit] | None = None
    content: str | None = None
    answer: str | None = None
    citations: list[CitationOut] | None = None
