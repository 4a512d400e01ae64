"""The gateway as a client for in-process callers that act for someone (RAG, prompts, evals).

Whatever a caller causes runs as that caller: a :class:`CallerClient` sends
every call through the whole pipeline as its principal (scopes, allowed
models, limits, budgets, metering), tagged with what caused it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from gatehouse.core.principal import Principal
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)
from gatehouse.gateway.pipeline import ChatStream

if TYPE_CHECKING:
    from gatehouse.gateway.service import Gateway


class ModelClient(Protocol):
    """Chat and embeddings, as some caller."""

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion: ...

    async def chat_stream(self, request: ChatCompletionRequest) -> ChatStream: ...

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse: ...


@dataclass(frozen=True, slots=True)
class CallerClient:
    """``gateway``'s calls made as ``principal``, each tagged ``tag`` in the ledger."""

    gateway: Gateway
    principal: Principal
    tag: str | None = None

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        return await self.gateway.chat(request, principal=self.principal, tag=self.tag)

    async def chat_stream(self, request: ChatCompletionRequest) -> ChatStream:
        return await self.gateway.chat_stream(request, principal=self.principal, tag=self.tag)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        return await self.gateway.embed(request, principal=self.principal, tag=self.tag)
