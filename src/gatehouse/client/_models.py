"""Typed answers of the RAG routes, as the client sees them.

The chat and embedding types are gatehouse's own wire models
(:mod:`gatehouse.core.types`). The RAG answers are modelled here rather than
imported from :mod:`gatehouse.rag`, which would load the whole engine into a
client that only speaks HTTP; unknown fields are kept (``extra="allow"``) so
a newer server's additions do not break an older client.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Collection(_Answer):
    name: str
    embedding_model: str
    description: str = ""
    language: str = "auto"
    documents: int = 0
    chunks: int = 0
    dimensions: int | None = None
    created_at: int = 0


class Document(BaseModel):
    """A document to ingest; ``id`` is generated from the text when absent."""

    model_config = ConfigDict(extra="forbid")

    text: str
    id: str | None = None
    title: str | None = None
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)
    source: str | None = None


class IngestResult(_Answer):
    added: int = 0
    unchanged: int = 0
    replaced: int = 0
    chunks: int = 0


class SearchHit(_Answer):
    document_id: str
    chunk_id: str
    text: str
    score: float
    metadata: dict[str, Any] = Field(default_factory=dict)


class Citation(_Answer):
    index: int
    document_id: str
    chunk_id: str


class Answer(_Answer):
    answer: str
    citations: list[Citation]
    results: list[SearchHit]


SearchMode = Literal["hybrid", "dense", "keyword", "rrf"]
