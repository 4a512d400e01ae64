"""The gateway: what the server, the CLI and the RAG engine call to reach models."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from gatehouse.core.config import Settings
from gatehouse.core.ids import request_id as new_request_id
from gatehouse.core.principal import LOCAL
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelCard,
    StreamOptions,
)
from gatehouse.gateway.pipeline import CallContext, ChatStream, Result, Stage, chain
from gatehouse.gateway.registry import ModelRegistry
from gatehouse.providers.base import ChatProvider, EmbeddingProvider, Readiness


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


class Gateway:
    """Runs each call through the pipeline stages to a provider."""

    def __init__(
        self, registry: ModelRegistry, *, started_at: int, stages: Sequence[Stage] = ()
    ) -> None:
        self.registry = registry
        self._started_at = started_at
        self._handle = chain(stages, self._dispatch)

    async def handle(self, ctx: CallContext) -> Result:
        """Run one call; a streamed chat returns an async iterator of chunks."""
        return await self._handle(ctx)

    # -- conveniences for in-process callers (CLI, RAG), as the local principal --

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        result = await self.handle(
            _local_context("chat", request.model_copy(update={"stream": False}))
        )
        assert isinstance(result, ChatCompletion)
        return result

    async def chat_stream(self, request: ChatCompletionRequest) -> ChatStream:
        result = await self.handle(
            _local_context("chat", request.model_copy(update={"stream": True}))
        )
        assert not isinstance(result, ChatCompletion | EmbeddingResponse)
        return result

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        result = await self.handle(_local_context("embeddings", request))
        assert isinstance(result, EmbeddingResponse)
        return result

    # -- models and health --

    def models(self) -> list[ModelCard]:
        return [self._card(entry.name, entry.info.owned_by) for entry in self.registry.entries()]

    def model(self, name: str) -> ModelCard:
        entry = self.registry.get(name)
        return self._card(entry.name, entry.info.owned_by)

    def model_checks(self) -> list[Check]:
        seen: set[int] = set()
        checks = []
        for entry in self.registry.entries():
            if id(entry.provider) in seen:
                continue
            seen.add(id(entry.provider))
            state: Readiness = entry.provider.readiness()
            checks.append(Check(f"model:{entry.info.id}", state.ready, state.detail))
        return checks

    def _card(self, name: str, owner: str) -> ModelCard:
        return ModelCard(id=name, created=self._started_at, owned_by=owner)

    # -- the terminal call --

    async def _dispatch(self, ctx: CallContext) -> Result:
        request = ctx.request
        if isinstance(request, EmbeddingRequest):
            embedded = await self.registry.embedding(request.model).embed(request)
            ctx.usage = embedded.usage
            return embedded
        provider = self.registry.chat(request.model)
        ctx.deployment = provider.info.id
        if not request.stream:
            completion = await provider.complete(request)
            ctx.usage = completion.usage
            return completion
        # Always ask the provider for usage, so metering sees it; pass the
        # usage chunk on only when the client asked for it.
        wants_usage = request.include_usage()
        upstream = provider.stream(
            request.model_copy(update={"stream_options": StreamOptions(include_usage=True)})
        )
        return _observe(ctx, upstream, forward_usage=wants_usage)


async def _observe(
    ctx: CallContext, chunks: AsyncIterator[ChatCompletionChunk], *, forward_usage: bool
) -> ChatStream:
    async for chunk in chunks:
        if chunk.usage is not None:
            ctx.usage = chunk.usage
            if not chunk.choices and not forward_usage:
                continue
        elif ctx.first_token_at is None and any(c.delta.content for c in chunk.choices):
            ctx.first_token_at = time.monotonic()
        yield chunk


def _local_context(endpoint: str, request: ChatCompletionRequest | EmbeddingRequest) -> CallContext:
    ctx = CallContext(
        request_id=new_request_id(),
        endpoint="chat" if endpoint == "chat" else "embeddings",
        request=request,
    )
    ctx.principal = LOCAL
    return ctx


def build_gateway(settings: Settings, *, started_at: int) -> Gateway:
    """Wire the providers the settings enable into a gateway. Nothing is loaded yet."""
    from gatehouse.providers.local import LlamaChatProvider, MiniLMEmbeddingProvider

    providers: list[ChatProvider | EmbeddingProvider] = []
    if settings.local.chat.enabled:
        providers.append(LlamaChatProvider(settings.local.chat))
    if settings.local.embeddings.enabled:
        providers.append(MiniLMEmbeddingProvider(settings.local.embeddings))
    return Gateway(ModelRegistry(providers, settings.aliases), started_at=started_at)
