"""Caching stages: the exact cache, the semantic cache and request coalescing.

:func:`cache_stages` builds them from settings, in their order: exact cache
first (cheapest), then the semantic cache (costs an embedding), then
coalescing (only what neither cache answered reaches it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gatehouse.core.config import CacheConfig
from gatehouse.core.types import EmbeddingRequest, EmbeddingResponse
from gatehouse.gateway.cache.coalesce import COALESCED_HEADER, Coalescer
from gatehouse.gateway.cache.exact import ExactCache
from gatehouse.gateway.cache.keys import cache_key, fingerprint, is_deterministic, scope_id
from gatehouse.gateway.cache.policy import HEADER, Decision, decide
from gatehouse.gateway.cache.redis_store import RedisStore
from gatehouse.gateway.cache.semantic import SemanticCache
from gatehouse.gateway.cache.store import CacheStore, CacheUnavailable, MemoryStore
from gatehouse.gateway.pipeline import Stage

__all__ = [
    "COALESCED_HEADER",
    "HEADER",
    "CacheStore",
    "CacheUnavailable",
    "Coalescer",
    "Decision",
    "ExactCache",
    "MemoryStore",
    "RedisStore",
    "SemanticCache",
    "cache_key",
    "cache_stages",
    "decide",
    "fingerprint",
    "is_deterministic",
    "scope_id",
]


def build_store(config: CacheConfig) -> CacheStore:
    if config.backend == "redis":
        return RedisStore.from_url(config.redis_url)
    return MemoryStore(max_entries=config.max_entries, max_bytes=config.max_bytes)


EmbedCall = Callable[[EmbeddingRequest], Awaitable[EmbeddingResponse]]


def cache_stages(config: CacheConfig, embed_call: EmbedCall) -> list[Stage]:
    """The caching stages the settings turn on, in pipeline order.

    ``embed_call`` reaches the embedding model for the semantic cache (through
    the router, outside the pipeline, so the lookup is not itself cached).
    """
    stages: list[Stage] = []
    needs_store = config.enabled or bool(config.semantic.groups)
    store = build_store(config) if needs_store else None
    if config.enabled and store is not None:
        stages.append(
            ExactCache(
                store,
                ttl=config.ttl_seconds,
                scope=config.scope,
                only_deterministic=config.only_deterministic,
            )
        )
    if config.semantic.groups and store is not None:
        model = config.semantic.embedding_model

        async def embed(text: str) -> list[float]:
            response = await embed_call(EmbeddingRequest(model=model, input=text))
            vector = response.data[0].embedding
            assert isinstance(vector, list)  # float encoding is the default
            return vector

        stages.append(
            SemanticCache(
                store,
                embed,
                groups=config.semantic.groups,
                threshold=config.semantic.threshold,
                max_entries=config.semantic.max_entries,
                ttl=config.ttl_seconds,
                scope=config.scope,
                only_deterministic=config.only_deterministic,
            )
        )
    if config.coalesce:
        stages.append(Coalescer(scope=config.scope, only_deterministic=config.only_deterministic))
    return stages
