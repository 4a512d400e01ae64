"""Caching stages: the exact cache, the semantic cache and request coalescing.

:func:`build_caches` builds the ones the settings turn on. Where they go in
the pipeline is set with every other stage, in
:func:`gatehouse.gateway.service.pipeline_stages`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gatehouse.core.config import CacheConfig
from gatehouse.core.types import EmbeddingRequest, EmbeddingResponse
from gatehouse.gateway.cache.coalesce import COALESCED_HEADER, Coalescer
from gatehouse.gateway.cache.exact import ExactCache
from gatehouse.gateway.cache.keys import cache_key, fingerprint, is_deterministic, scope_id
from gatehouse.gateway.cache.policy import HEADER, Decision, decide
from gatehouse.gateway.cache.redis_store import RedisStore
from gatehouse.gateway.cache.semantic import SemanticCache
from gatehouse.gateway.cache.store import CacheStore, CacheUnavailable, MemoryStore

__all__ = [
    "COALESCED_HEADER",
    "HEADER",
    "CacheStages",
    "CacheStore",
    "CacheUnavailable",
    "Coalescer",
    "Decision",
    "ExactCache",
    "MemoryStore",
    "RedisStore",
    "SemanticCache",
    "build_caches",
    "cache_key",
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


@dataclass(frozen=True, slots=True)
class CacheStages:
    """The caching stages the settings turn on; ``None`` for one turned off."""

    exact: ExactCache | None = None
    semantic: SemanticCache | None = None
    coalescer: Coalescer | None = None


def build_caches(
    config: CacheConfig, embed_call: EmbedCall, *, max_ttl: float | None = None
) -> CacheStages:
    """The caching stages the settings turn on, sharing one store.

    ``embed_call`` reaches the embedding model for the semantic cache (through
    the router, outside the pipeline, so the lookup is not itself cached);
    ``max_ttl`` (``retention.cache_entries_seconds``) caps every entry's TTL.
    """
    needs_store = config.enabled or bool(config.semantic.groups)
    store = build_store(config) if needs_store else None
    exact = semantic = coalescer = None
    if config.enabled and store is not None:
        exact = ExactCache(
            store,
            ttl=config.ttl_seconds,
            scope=config.scope,
            only_deterministic=config.only_deterministic,
            max_ttl=max_ttl,
        )
    if config.semantic.groups and store is not None:
        model = config.semantic.embedding_model

        async def embed(text: str) -> list[float]:
            response = await embed_call(EmbeddingRequest(model=model, input=text))
            vector = response.data[0].embedding
            assert isinstance(vector, list)  # float encoding is the default
            return vector

        semantic = SemanticCache(
            store,
            embed,
            groups=config.semantic.groups,
            threshold=config.semantic.threshold,
            max_entries=config.semantic.max_entries,
            ttl=config.ttl_seconds,
            scope=config.scope,
            only_deterministic=config.only_deterministic,
            max_ttl=max_ttl,
        )
    if config.coalesce:
        coalescer = Coalescer(scope=config.scope, only_deterministic=config.only_deterministic)
    return CacheStages(exact, semantic, coalescer)
