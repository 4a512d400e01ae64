"""Typed answers of the RAG, Responses and prompt-template routes, as the client sees them.

The chat and embedding types are gatehouse's own wire models
(:mod:`gatehouse.core.types`). The RAG and Responses answers are modelled
here rather than imported from :mod:`gatehouse.rag` or
:mod:`gatehouse.faces`, which would load the engine or the translation layer
into a client that only speaks HTTP; unknown fields are kept (``extra="allow"``) so
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


class ResponseUsage(_Answer):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class Response(_Answer):
    """A ``response`` object of ``POST /v1/responses`` (output items kept as sent)."""

    id: str
    object: Literal["response"] = "response"
    status: str
    model: str
    output: list[dict[str, Any]] = Field(default_factory=list)
    usage: ResponseUsage | None = None

    @property
    def output_text(self) -> str:
        """The text of every ``output_text`` part of the message items, joined."""
        return "".join(
            part.get("text", "")
            for item in self.output
            if item.get("type") == "message"
            for part in item.get("content") or []
            if isinstance(part, dict) and part.get("type") == "output_text"
        )


class StoredPrompt(_Answer):
    """One version of a prompt template stored in the gateway (``/v1/prompts``)."""

    id: str
    version: int
    template: str
    system: str | None = None
    # name -> {"type", "required", "default", "description"}
    variables: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    owner: dict[str, str] | None = None
    created_at: int = 0
    created_by: str = ""
    # Every version of the template that is not deleted, oldest first.
    versions: list[int] = Field(default_factory=list)


SearchMode = Literal["hybrid", "dense", "keyword", "rrf"]
