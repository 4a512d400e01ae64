"""Every rerank adapter (Cohere, Jina, vLLM) against the fake upstream, over real sockets.

The rerank counterpart of ``test_provider_conformance_http.py``: built through
the provider registry as a deployment of a ``mode: rerank`` group would be,
each answers ranked with usage, and a rate limit, a server error, a reset and
a refused key are classified as for chat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gatehouse.core.config import DeploymentConfig
from gatehouse.core.errors import (
    RateLimitError,
    UpstreamAuthError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gatehouse.core.rerank import RerankRequest
from gatehouse.providers.base import ModelInfo, RerankProvider
from gatehouse.providers.registry import ProviderRegistry

from .fake_upstream import Behaviour, FakeUpstream

REQUEST = RerankRequest(
    model="public-rerank",
    query="red apples",
    documents=["green pears", "red apples and red cherries", "apples"],
    top_n=2,
)


@pytest.fixture(params=["cohere", "jina", "vllm"])
async def provider(
    request: pytest.FixtureRequest, upstream: FakeUpstream
) -> AsyncIterator[RerankProvider]:
    name: str = request.param
    upstream.reset()
    config = DeploymentConfig.model_validate(
        {
            "provider": name,
            "model": f"up-{name}",
            "base_url": upstream.base_url,
            "timeout": {"connect": 2, "read": 1, "total": 5},
        }
    )
    info = ModelInfo(id=f"conformance-{name}", kind="rerank", owned_by=name, context_window=0)
    built = ProviderRegistry().builder(name, where="test")(config, info=info, api_key="k")
    assert isinstance(built, RerankProvider)
    yield built
    await built.aclose()


async def test_an_answer_is_ranked_cut_and_has_usage(
    provider: RerankProvider, upstream: FakeUpstream
) -> None:
    answer = await provider.rerank(REQUEST)
    assert [r.index for r in answer.results] == [1, 2]
    assert answer.results[0].relevance_score >= answer.results[1].relevance_score
    assert answer.model == "public-rerank"
    assert answer.usage.search_units >= 1
    assert upstream.requests[-1].headers["Authorization"] == "Bearer k"


async def test_a_rate_limit_is_retryable_after_what_the_upstream_asked(
    provider: RerankProvider, upstream: FakeUpstream
) -> None:
    upstream.then(Behaviour("status", status=429, retry_after=2))
    with pytest.raises(RateLimitError) as caught:
        await provider.rerank(REQUEST)
    assert caught.value.retryable
    assert caught.value.retry_after == 2


async def test_a_server_error_is_retryable(
    provider: RerankProvider, upstream: FakeUpstream
) -> None:
    upstream.then(Behaviour("status", status=500))
    with pytest.raises(UpstreamError) as caught:
        await provider.rerank(REQUEST)
    assert caught.value.retryable
    assert caught.value.http_status >= 500


async def test_a_refused_key_is_not_retried(
    provider: RerankProvider, upstream: FakeUpstream
) -> None:
    upstream.then(Behaviour("status", status=401))
    with pytest.raises(UpstreamAuthError) as caught:
        await provider.rerank(REQUEST)
    assert not caught.value.retryable


async def test_a_reset_connection_is_retryable(
    provider: RerankProvider, upstream: FakeUpstream
) -> None:
    upstream.then(Behaviour("reset"))
    with pytest.raises(UpstreamConnectionError) as caught:
        await provider.rerank(REQUEST)
    assert caught.value.retryable


async def test_a_silent_upstream_times_out_retryably(
    provider: RerankProvider, upstream: FakeUpstream
) -> None:
    upstream.then(Behaviour("delay", delay=3))
    with pytest.raises(UpstreamTimeoutError) as caught:
        await provider.rerank(REQUEST)
    assert caught.value.retryable
