"""The cache section of the settings and the stages it builds."""

from __future__ import annotations

import pytest

from gatehouse.core.config import CacheConfig, load_settings
from gatehouse.core.errors import ConfigError
from gatehouse.core.types import EmbeddingRequest, EmbeddingResponse
from gatehouse.gateway.cache import (
    CacheStages,
    Coalescer,
    ExactCache,
    RedisStore,
    SemanticCache,
    build_caches,
)


async def no_embeddings(request: EmbeddingRequest) -> EmbeddingResponse:
    raise AssertionError("not called while building stages")


def test_defaults_build_the_exact_cache_and_coalescing() -> None:
    caches = build_caches(CacheConfig(), no_embeddings)
    assert isinstance(caches.exact, ExactCache)
    assert caches.semantic is None
    assert isinstance(caches.coalescer, Coalescer)


def test_semantic_groups_and_switches() -> None:
    config = CacheConfig.model_validate(
        {"enabled": False, "coalesce": False, "semantic": {"groups": ["faq"]}}
    )
    caches = build_caches(config, no_embeddings)
    stage = caches.semantic
    assert isinstance(stage, SemanticCache)
    assert (caches.exact, caches.coalescer) == (None, None)
    assert stage.groups == {"faq"}
    assert stage.threshold == 0.98
    assert build_caches(CacheConfig(enabled=False, coalesce=False), no_embeddings) == CacheStages()


def test_redis_backend_is_built_from_the_url() -> None:
    config = CacheConfig(backend="redis", redis_url="redis://127.0.0.1:1/0", coalesce=False)
    caches = build_caches(config, no_embeddings)
    stage = caches.exact
    assert isinstance(stage, ExactCache)
    assert caches.coalescer is None
    assert isinstance(stage.store, RedisStore)


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("GATEHOUSE_CACHE__SCOPE", "everyone", "cache.scope"),
        ("GATEHOUSE_CACHE__BACKEND", "memcached", "cache.backend"),
        ("GATEHOUSE_CACHE__SEMANTIC__THRESHOLD", "1.5", "cache.semantic.threshold"),
        ("GATEHOUSE_CACHE__TTL", "5", "cache.ttl"),
    ],
)
def test_bad_cache_settings_name_the_key(name: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(environ={name: value})
