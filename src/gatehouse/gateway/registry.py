"""Model names to providers: canonical ids, aliases and kinds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gatehouse.core.errors import ConfigError, InvalidRequestError, ModelNotFoundError
from gatehouse.providers.base import ChatProvider, EmbeddingProvider, ModelInfo


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A public model name and what answers it."""

    name: str
    info: ModelInfo
    provider: ChatProvider | EmbeddingProvider


class ModelRegistry:
    def __init__(
        self,
        providers: Iterable[ChatProvider | EmbeddingProvider],
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self._entries: dict[str, ModelEntry] = {}
        for provider in providers:
            self._entries[provider.info.id] = ModelEntry(provider.info.id, provider.info, provider)
        for alias, target in (aliases or {}).items():
            if target not in self._entries:
                # An alias to a disabled model is dropped, not an error: turning a
                # model off should not require editing every alias that names it.
                continue
            if alias in self._entries:
                raise ConfigError(f"aliases.{alias}: the alias hides a model of the same name")
            entry = self._entries[target]
            self._entries[alias] = ModelEntry(alias, entry.info, entry.provider)

    def entries(self) -> list[ModelEntry]:
        return list(self._entries.values())

    def get(self, name: str) -> ModelEntry:
        entry = self._entries.get(name)
        if entry is None:
            raise ModelNotFoundError(name)
        return entry

    def chat(self, name: str) -> ChatProvider:
        entry = self.get(name)
        if not isinstance(entry.provider, ChatProvider) or entry.info.kind != "chat":
            raise InvalidRequestError(
                f"The model '{name}' is an embedding model and cannot be used for chat.",
                param="model",
            )
        return entry.provider

    def embedding(self, name: str) -> EmbeddingProvider:
        entry = self.get(name)
        if not isinstance(entry.provider, EmbeddingProvider) or entry.info.kind != "embedding":
            raise InvalidRequestError(
                f"The model '{name}' is a chat model and cannot create embeddings.",
                param="model",
            )
        return entry.provider
