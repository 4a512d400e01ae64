"""Build a provider for a configured deployment: the in-process models here,
every other provider name through the :class:`ProviderRegistry`."""

from __future__ import annotations

import os

from gatehouse.core.config import DeploymentConfig, Settings
from gatehouse.core.errors import ConfigError, MissingExtraError
from gatehouse.core.extras import has_extra
from gatehouse.providers.base import (
    AnyProvider,
    EmbeddingProvider,
    ModelInfo,
    ModelKind,
    RerankProvider,
)
from gatehouse.providers.registry import ProviderRegistry


class ProviderFactory:
    """Makes providers; the in-process models are shared by every deployment naming them."""

    def __init__(self, settings: Settings, registry: ProviderRegistry | None = None) -> None:
        self._settings = settings
        self._registry = registry or ProviderRegistry()
        self._local: dict[str, AnyProvider] = {}

    def local(self, model: str) -> AnyProvider:
        if model == "local/e5-small" and model not in self._local:
            # Its own extra, not 'local': the engine and weights are one package.
            if not has_extra("e5"):
                raise ConfigError(MissingExtraError(model, "e5").message)
            from gatehouse.providers.local.e5 import E5EmbeddingProvider

            self._local[model] = E5EmbeddingProvider(self._settings.local.e5)
        if model not in self._local:
            if not has_extra("local"):
                raise ConfigError(MissingExtraError(model, "local").message)
            from gatehouse.providers.local import (
                LlamaChatProvider,
                LocalReranker,
                MiniLMEmbeddingProvider,
            )

            if model == "local/smollm2":
                self._local[model] = LlamaChatProvider(self._settings.local.chat)
            elif model == "local/minilm":
                self._local[model] = MiniLMEmbeddingProvider(self._settings.local.embeddings)
            elif model == "local/rerank":
                self._local[model] = LocalReranker(self._settings.local.rerank, self._embedder())
            else:
                raise ConfigError(
                    f"unknown local model {model!r} (local/smollm2, local/minilm, local/rerank, "
                    "local/e5-small)"
                )
        return self._local[model]

    def _embedder(self) -> EmbeddingProvider | None:
        """``local/minilm``, shared, for local/rerank's cosine; ``None`` when it is off."""
        if not self._settings.local.embeddings.enabled:
            return None
        embedder = self.local("local/minilm")
        assert isinstance(embedder, EmbeddingProvider)
        return embedder

    def build(
        self, config: DeploymentConfig, *, deployment_id: str, kind: ModelKind, where: str
    ) -> AnyProvider:
        if config.provider == "local":
            provider = self.local(config.model)
        else:
            builder = self._registry.builder(config.provider, where=where)
            info = ModelInfo(
                id=deployment_id,
                kind=kind,
                owned_by=config.provider,
                context_window=config.context_window or 0,
            )
            provider = builder(config, info=info, api_key=_api_key(config, where))
        # Said at start-up, not on the first call: a rerank group needs rerankers.
        if kind == "rerank" and not isinstance(provider, RerankProvider):
            raise ConfigError(
                f"{where}.provider: {config.provider} ({config.model}) cannot serve a group of "
                "mode: rerank (cohere, jina, vllm, local with local/rerank, or a plugin's)"
            )
        return provider


def _api_key(config: DeploymentConfig, where: str) -> str | None:
    if config.api_key_env:
        value = os.environ.get(config.api_key_env)
        if not value:
            raise ConfigError(
                f"{where}.api_key_env: environment variable {config.api_key_env} is not set"
            )
        return value
    return config.api_key.get_secret_value() if config.api_key else None
