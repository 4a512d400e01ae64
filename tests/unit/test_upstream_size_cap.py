"""The bound on an upstream's answer (``deployments[].max_response_bytes``), above the transport.

Through a MockTransport, which bounds nothing itself: the :class:`Upstream`
refuses a whole answer, an error body and a whole stream past the bound, for
each dialect, with the same 502. The socket side (a body refused while it
arrives, the connection closed) is ``tests/integration/test_http1_size_cap.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from gatehouse.core.config import DEFAULT_MAX_RESPONSE_BYTES, DeploymentConfig
from gatehouse.core.errors import UpstreamError
from gatehouse.providers import MockTransport, UpstreamRequest, UpstreamResponse
from gatehouse.providers.anthropic import AnthropicProvider
from gatehouse.providers.base import ModelInfo
from gatehouse.providers.gemini import GeminiProvider
from gatehouse.providers.mock_transport import streamed

from .test_provider_transport import COMPLETION, REQUEST, chunk, openai, text_of

LIMIT = 4096


def test_the_default_bound_is_32_mib() -> None:
    config = DeploymentConfig(provider="openai_compat", model="m", base_url="http://up.test")
    assert config.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 32 * 1024 * 1024


async def test_a_whole_answer_past_the_bound_is_a_502_not_retried() -> None:
    padded = {**COMPLETION, "padding": "x" * LIMIT}

    def handler(request: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(200, {}, orjson.dumps(padded))

    with pytest.raises(UpstreamError) as caught:
        await openai(handler, max_response_bytes=LIMIT).complete(REQUEST)
    error = caught.value
    assert (error.http_status, error.error_code) == (502, "upstream_response_too_large")
    assert f"more than {LIMIT} bytes" in error.message
    assert "max_response_bytes" in error.message
    # It came, and may be billed: not tried again on the group (a fallback group is).
    assert not error.retryable
    # Just under the bound, the same answer passes.
    roomy = openai(handler, max_response_bytes=len(orjson.dumps(padded)))
    assert (await roomy.complete(REQUEST)).choices[0].message.content == "hi"


async def test_an_error_body_past_the_bound_is_not_read_whole() -> None:
    pulled: list[int] = []

    async def lines() -> AsyncIterator[bytes]:
        for n in range(1000):  # a 1000-line error page: far past the bound
            pulled.append(n)
            yield b"x" * 100 + b"\n"

    def handler(request: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(500, {}, lines=lines())

    with pytest.raises(UpstreamError) as caught:
        await text_of(openai(handler, max_response_bytes=LIMIT).stream(REQUEST))
    assert caught.value.error_code == "upstream_response_too_large"
    assert len(pulled) <= LIMIT // 100 + 1  # read up to the bound, no further


async def test_a_stream_whose_events_together_pass_the_bound_ends_in_an_error() -> None:
    events = b"".join(chunk("x" * 100) for _ in range(200)) + chunk(None, "stop")
    seen: list[str] = []

    def handler(request: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(200, {}, lines=streamed(events + b"data: [DONE]\n\n"))

    async def collect() -> None:
        async for piece in openai(handler, max_response_bytes=LIMIT).stream(REQUEST):
            seen.append(piece.choices[0].delta.content or "")

    with pytest.raises(UpstreamError) as caught:
        await collect()
    error = caught.value
    assert error.error_code == "upstream_response_too_large"
    assert "of its stream" in error.message
    assert not error.retryable  # the client has the first events
    assert 0 < len("".join(seen)) < LIMIT
    # The same stream within a roomy bound is whole.
    whole = await text_of(openai(handler, max_response_bytes=len(events) + 64).stream(REQUEST))
    assert whole == "x" * 100 * 200


def _anthropic(transport: MockTransport, limit: int) -> AnthropicProvider:
    config = DeploymentConfig(
        provider="anthropic", model="claude-x", base_url="http://up.test", max_response_bytes=limit
    )
    info = ModelInfo(id="claude#0", kind="chat", owned_by="anthropic", context_window=0)
    return AnthropicProvider(config, info=info, api_key="sk-ant", transport=transport)


def _gemini(transport: MockTransport, limit: int) -> GeminiProvider:
    config = DeploymentConfig(
        provider="gemini", model="gemini-x", base_url="http://up.test", max_response_bytes=limit
    )
    info = ModelInfo(id="gem#0", kind="chat", owned_by="gemini", context_window=0)
    return GeminiProvider(config, info=info, api_key="gk", transport=transport)


@pytest.mark.parametrize("dialect", ["anthropic", "gemini"])
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_every_dialect_has_the_same_bound(dialect: str, stream: bool) -> None:
    big = b"data: " + b"x" * 2 * LIMIT + b"\n\n" if stream else b"{" + b" " * 2 * LIMIT + b"}"

    def handler(request: UpstreamRequest) -> UpstreamResponse:
        if request.stream:
            return UpstreamResponse(200, {}, lines=streamed(big))
        return UpstreamResponse(200, {}, big)

    build = _anthropic if dialect == "anthropic" else _gemini
    provider = build(MockTransport(handler), LIMIT)
    with pytest.raises(UpstreamError) as caught:
        await (text_of(provider.stream(REQUEST)) if stream else provider.complete(REQUEST))
    assert caught.value.error_code == "upstream_response_too_large"
    assert caught.value.http_status == 502
