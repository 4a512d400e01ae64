"""The provider contracts: one adapter call each.

A provider serves one model. Chat providers complete and stream; embedding
providers embed. Both describe themselves with :class:`ModelInfo` so the
gateway can list, route and check context windows without loading anything,
and both release what they hold (connection pools, threads) in ``aclose``,
which the gateway calls once at shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)

ModelKind = Literal["chat", "embedding"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    kind: ModelKind
    owned_by: str
    context_window: int
    dimensions: int | None = None


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    detail: str


@runtime_checkable
class ChatProvider(Protocol):
    info: ModelInfo

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion: ...

    def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]: ...

    def readiness(self) -> Readiness: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class EmbeddingProvider(Protocol):
    info: ModelInfo

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse: ...

    def readiness(self) -> Readiness: ...

    async def aclose(self) -> None: ...
