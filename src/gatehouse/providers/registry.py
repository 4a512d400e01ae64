"""Which adapter serves a deployment's ``provider:`` name.

The built-in adapters are registered here by name; any installed package can
add its own through the ``gatehouse.providers`` entry-point group, without a
line changed in gatehouse::

    # the plugin's pyproject.toml
    [project.entry-points."gatehouse.providers"]
    acme = "acme_gatehouse:AcmeProvider"

The entry point names a :class:`ProviderBuilder`: a callable (often the
provider class itself) taking the deployment's config, the model info the
gateway lists it under, and the resolved API key. Entry points are read only
when a name is not a built-in one, and loaded only when a deployment names them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Protocol

from gatehouse.core.config import DeploymentConfig
from gatehouse.core.errors import ConfigError
from gatehouse.providers.base import AnyProvider, ModelInfo
from gatehouse.providers.rerank.translate import RerankApi

ENTRY_POINT_GROUP = "gatehouse.providers"
Provider = AnyProvider


class ProviderBuilder(Protocol):
    def __call__(
        self, config: DeploymentConfig, *, info: ModelInfo, api_key: str | None
    ) -> Provider: ...


def _openai_compat(config: DeploymentConfig, *, info: ModelInfo, api_key: str | None) -> Provider:
    from gatehouse.providers.openai_compat import OpenAICompatProvider, OpenAIResponsesProvider

    if config.api == "responses":
        return OpenAIResponsesProvider(config, info=info, api_key=api_key)
    return OpenAICompatProvider(config, info=info, api_key=api_key)


def _anthropic(config: DeploymentConfig, *, info: ModelInfo, api_key: str | None) -> Provider:
    from gatehouse.providers.anthropic import AnthropicProvider

    return AnthropicProvider(config, info=info, api_key=api_key)


def _gemini(config: DeploymentConfig, *, info: ModelInfo, api_key: str | None) -> Provider:
    from gatehouse.providers.gemini import GeminiProvider

    return GeminiProvider(config, info=info, api_key=api_key)


def _reranker(api: RerankApi) -> ProviderBuilder:
    """Cohere, Jina and vLLM rerank endpoints, for groups of ``mode: rerank``; vLLM
    also serves chat and embeddings, through the OpenAI-compatible adapter."""

    def build(config: DeploymentConfig, *, info: ModelInfo, api_key: str | None) -> Provider:
        if info.kind != "rerank":
            if api == "vllm":
                return _openai_compat(config, info=info, api_key=api_key)
            raise ConfigError(f"provider {api} serves model groups of mode: rerank only")
        from gatehouse.providers.rerank import RerankUpstreamProvider

        return RerankUpstreamProvider(config, info=info, api_key=api_key, api=api)

    return build


# The in-process models ("local") are built by the factory, which shares them.
BUILTIN: Mapping[str, ProviderBuilder] = {
    "openai_compat": _openai_compat,
    "azure": _openai_compat,
    "anthropic": _anthropic,
    "gemini": _gemini,
    "cohere": _reranker("cohere"),
    "jina": _reranker("jina"),
    "vllm": _reranker("vllm"),
}


class ProviderRegistry:
    """Provider names to builders: the built-ins, then installed plugins."""

    def __init__(
        self,
        builders: Mapping[str, ProviderBuilder] = BUILTIN,
        *,
        discover: Callable[[], list[EntryPoint]] | None = None,
    ) -> None:
        """``discover`` lists the plugins' entry points (default: the installed ones)."""
        self._builders: dict[str, ProviderBuilder] = dict(builders)
        self._plugins: dict[str, EntryPoint] | None = None
        self._discover = discover or _installed

    def register(self, name: str, builder: ProviderBuilder) -> None:
        """Serve ``provider: name`` with ``builder`` (replacing any earlier one)."""
        self._builders[name] = builder

    def names(self) -> list[str]:
        return sorted({*self._builders, *self._entry_points(), "local"})

    def builder(self, name: str, *, where: str) -> ProviderBuilder:
        """The builder for ``name``; a :class:`ConfigError` naming ``where`` if none."""
        found = self._builders.get(name)
        if found is not None:
            return found
        entry = self._entry_points().get(name)
        if entry is None:
            raise ConfigError(
                f"{where}.provider: unknown provider {name!r}; known: {', '.join(self.names())} "
                f"(a plugin adds one through the {ENTRY_POINT_GROUP!r} entry-point group)"
            )
        try:
            loaded: ProviderBuilder = entry.load()
        except Exception as exc:
            raise ConfigError(
                f"{where}.provider: the plugin for {name!r} ({entry.value}) failed to load: {exc}"
            ) from exc
        self._builders[name] = loaded
        return loaded

    def _entry_points(self) -> dict[str, EntryPoint]:
        if self._plugins is None:
            self._plugins = {entry.name: entry for entry in self._discover()}
        return self._plugins


def _installed() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))
