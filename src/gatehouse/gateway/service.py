"""The gateway: what the server and the CLI call to reach models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from gatehouse.core.config import Settings
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelCard,
)
from gatehouse.gateway.registry import ModelRegistry
from gatehouse.providers.base import ChatProvider, EmbeddingProvider, Readiness


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


class Gateway:
    def __init__(self, registry: ModelRegistry, *, started_at: int) -> None:
        self.registry = registry
        self._started_at = started_at

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        return await self.registry.chat(request.model).complete(request)

    def chat_stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        """Resolve the model now (so a bad name fails before any byte is sent), stream later."""
        return self.registry.chat(request.model).stream(request)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        return await self.registry.embedding(request.model).embed(request)

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


def build_gateway(settings: Settings, *, started_at: int) -> Gateway:
    """Wire the providers the settings enable into a gateway. Nothing is loaded yet."""
    from gatehouse.providers.local import LlamaChatProvider, MiniLMEmbeddingProvider

    providers: list[ChatProvider | EmbeddingProvider] = []
    if settings.local.chat.enabled:
        providers.append(LlamaChatProvider(settings.local.chat))
    if settings.local.embeddings.enabled:
        providers.append(MiniLMEmbeddingProvider(settings.local.embeddings))
    return Gateway(ModelRegistry(providers, settings.aliases), started_at=started_at)
