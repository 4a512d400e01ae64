"""The rerank wire types: ``POST /v1/rerank`` in the shape Cohere and Jina share.

A query and documents in; each document's index and relevance score out,
best first. Documents are strings or ``{"text": ...}`` objects (Cohere v1,
Jina); the response gives a document back as ``{"text": ...}`` when
``return_documents`` is true. The request keeps unknown fields
(``extra="allow"``) and passes them to upstreams, like the chat types.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gatehouse.core.types import Usage


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class RerankDocument(_Wire):
    text: str


class RerankRequest(_Wire):
    model: str = Field(min_length=1)
    query: str = Field(min_length=1)
    documents: list[str | RerankDocument] = Field(min_length=1, max_length=10_000)
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = False

    @field_validator("documents", mode="before")
    @classmethod
    def _objects_with_text(cls, value: Any) -> Any:
        # A bare object without "text" (Cohere v1's {"title": ...}) has nothing to rank.
        if isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict) and not isinstance(item.get("text"), str):
                    raise ValueError(f"documents[{index}] needs a 'text' string")
        return value

    def texts(self) -> list[str]:
        """Each document's text, in request order."""
        return [d if isinstance(d, str) else d.text for d in self.documents]

    def limit(self) -> int:
        """How many results to return: ``top_n``, at most one per document."""
        count = len(self.documents)
        return count if self.top_n is None else min(self.top_n, count)


class RerankResult(_Wire):
    index: int
    relevance_score: float
    document: RerankDocument | None = None


class RerankUsage(_Wire):
    """Tokens read (query and documents), and Cohere's billed unit: one search a call."""

    prompt_tokens: int = 0
    total_tokens: int = 0
    search_units: int = 1

    def as_usage(self) -> Usage:
        """The chat-shaped usage the metering and the ledger read (no completion tokens)."""
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=0,
            total_tokens=self.total_tokens,
            search_units=self.search_units,
        )


class RerankResponse(_Wire):
    id: str
    object: str = "rerank"
    model: str
    results: list[RerankResult]
    usage: RerankUsage = Field(default_factory=RerankUsage)

    def ranked(self, request: RerankRequest) -> RerankResponse:
        """Best first, cut to the request's ``top_n``, each result's document
        taken from the request (when it asked for them) rather than trusted to
        the upstream's echo."""
        count = len(request.documents)
        kept = sorted(
            (r for r in self.results if 0 <= r.index < count),
            key=lambda r: (-r.relevance_score, r.index),
        )[: request.limit()]
        texts = request.texts() if request.return_documents else None
        results = [
            RerankResult(
                index=r.index,
                relevance_score=r.relevance_score,
                document=RerankDocument(text=texts[r.index]) if texts is not None else None,
            )
            for r in kept
        ]
        return self.model_copy(update={"results": results, "model": request.model})
