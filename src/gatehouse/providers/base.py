"""The provider contracts: one adapter call each.

A provider serves one model. Chat providers complete and stream; embedding
providers embed; rerank providers rerank. A chat provider that counts a
request's tokens itself (with the model's tokenizer, or its upstream's count
endpoint) is also a :class:`TokenCounter`. All describe themselves with
:class:`ModelInfo` so the gateway can list, route and check context windows
without loading anything, and all release what they hold (connection pools, threads) in ``aclose``,
which the gateway calls once at shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)

if TYPE_CHECKING:
    from gatehouse.core.rerank import RerankRequest, RerankResponse

ModelKind = Literal["chat", "embedding", "rerank"]


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


@runtime_checkable
class RerankProvider(Protocol):
    info: ModelInfo

    async def rerank(self, request: RerankRequest) -> RerankResponse: ...

    def readiness(self) -> Readiness: ...

    async def aclose(self) -> None: ...


AnyProvider = ChatProvider | EmbeddingProvider | RerankProvider


@runtime_checkable
class TokenCounter(Protocol):
    """A chat provider that counts a request's input tokens exactly: ``count_method``
    is ``"tokenizer"`` (its own tokenizer, in process) or ``"provider"`` (its
    upstream's count endpoint)."""

    @property
    def count_method(self) -> Literal["tokenizer", "provider"]: ...

    async def count_tokens(self, request: ChatCompletionRequest) -> int: ...


@runtime_checkable
class ResponsesProvider(Protocol):
    """A chat provider whose upstream speaks the Responses API itself: ``respond``
    posts a Responses body (``model`` is replaced by the upstream's) and returns
    the upstream's Response; ``stream_respond`` yields its stream's events."""

    async def respond(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def stream_respond(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]: ...
