"""Every HTTP adapter against the fake upstream, over real sockets and the real transport.

``tests/unit/test_provider_conformance.py`` holds each adapter to the provider
contract through ``MockTransport``; this runs the same promises end to end,
through the pooled HTTP/1.1 client and aiohttp streams, against
``fake_upstream.py`` speaking each dialect and told to fail: answers with
usage, streams with one finish reason, rate limits honouring Retry-After,
server errors, connection resets, a stall before the first token and a
stream cut midway, each classified with the right retry flag.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gatehouse.core.config import DeploymentConfig
from gatehouse.core.errors import (
    RateLimitError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gatehouse.core.types import ChatCompletionChunk, ChatCompletionRequest, StreamOptions
from gatehouse.providers.base import ChatProvider, ModelInfo
from gatehouse.providers.registry import ProviderRegistry

from .fake_upstream import Behaviour, FakeUpstream

DIALECTS = ["openai_compat", "anthropic", "gemini"]
TEXT = "four words to echo"


@pytest.fixture(params=DIALECTS)
async def provider(
    request: pytest.FixtureRequest, upstream: FakeUpstream
) -> AsyncIterator[ChatProvider]:
    dialect: str = request.param
    upstream.reset()
    base = f"{upstream.base_url}/v1" if dialect == "openai_compat" else upstream.base_url
    config = DeploymentConfig.model_validate(
        {
            "provider": dialect,
            "model": f"up-{dialect}",
            "base_url": base,
            "timeout": {"connect": 2, "read": 5, "total": 10, "first_token": 0.5},
        }
    )
    info = ModelInfo(id=f"conformance-{dialect}", kind="chat", owned_by=dialect, context_window=0)
    built = ProviderRegistry().builder(dialect, where="test")(config, info=info, api_key="k")
    assert isinstance(built, ChatProvider)
    yield built
    await built.aclose()


def _request(*, stream: bool = False) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": TEXT}],
            "max_tokens": 20,
            "stream": stream,
            **({"stream_options": StreamOptions(include_usage=True)} if stream else {}),
        }
    )


async def _drain(provider: ChatProvider) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in provider.stream(_request(stream=True))]


async def test_an_answer_carries_text_and_usage(provider: ChatProvider) -> None:
    completion = await provider.complete(_request())
    assert (completion.choices[0].message.content or "").split() == ["echo:", *TEXT.split()]
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0


async def test_a_stream_has_the_text_one_finish_and_usage(provider: ChatProvider) -> None:
    chunks = await _drain(provider)
    text = "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices)
    assert text.split() == ["echo:", *TEXT.split()]
    finishes = [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]
    assert len(finishes) == 1
    assert chunks[-1].usage is not None


async def test_a_rate_limit_is_retryable_after_what_the_upstream_asked(
    provider: ChatProvider, upstream: FakeUpstream
) -> None:
    upstream.then(Behaviour("status", status=429, retry_after=2))
    with pytest.raises(RateLimitError) as caught:
        await provider.complete(_request())
    assert caught.value.retryable
    assert caught.value.retry_after == 2


async def test_a_server_error_is_retryable(provider: ChatProvider, upstream: FakeUpstream) -> None:
    upstream.then(Behaviour("status", status=500))
    with pytest.raises(UpstreamError) as caught:
        await provider.complete(_request())
    assert caught.value.retryable
    assert caught.value.http_status >= 500


async def test_a_reset_connection_is_retryable(
    provider: ChatProvider, upstream: FakeUpstream
) -> None:
    upstream.then(Behaviour("reset"))
    with pytest.raises(UpstreamConnectionError) as caught:
        await provider.complete(_request())
    assert caught.value.retryable


async def test_a_stall_before_the_first_token_times_out_retryably(
    provider: ChatProvider, upstream: FakeUpstream
) -> None:
    upstream.then(Behaviour("stall"))
    with pytest.raises(UpstreamTimeoutError) as caught:
        await _drain(provider)
    assert caught.value.retryable


async def test_a_stream_cut_midway_is_not_retried(
    provider: ChatProvider, upstream: FakeUpstream
) -> None:
    upstream.then(Behaviour("cut", cut_after=2))
    with pytest.raises(UpstreamError) as caught:
        await _drain(provider)
    assert not caught.value.retryable
