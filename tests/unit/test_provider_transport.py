"""Providers driven end to end through a MockTransport: no socket, no server.

What the transport seam promises: a provider sends everything through the
transport it is given (headers, body, stream flag), and the protocol logic on
top of it (JSON, SSE, error classification, first-token timeout, retryable
flags) behaves the same whatever carries the bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson
import pytest

from gatehouse.core.config import DeploymentConfig, TimeoutConfig
from gatehouse.core.errors import (
    RateLimitError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gatehouse.core.types import ChatCompletionChunk, ChatCompletionRequest
from gatehouse.providers import MockTransport, UpstreamRequest, UpstreamResponse
from gatehouse.providers.anthropic import AnthropicProvider
from gatehouse.providers.base import ModelInfo
from gatehouse.providers.gemini import GeminiProvider
from gatehouse.providers.mock_transport import streamed
from gatehouse.providers.openai_compat import OpenAICompatProvider

REQUEST = ChatCompletionRequest.model_validate(
    {"model": "public", "messages": [{"role": "user", "content": "hello there"}]}
)
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "up-model",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}
    ],
    "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
}


def chunk(content: str | None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    payload = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "up-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


SSE = chunk("hello") + chunk(" there") + chunk(None, "stop") + b"data: [DONE]\n\n"


def openai(handler: Any, **deployment: Any) -> OpenAICompatProvider:
    config = DeploymentConfig.model_validate(
        {
            "provider": "openai_compat",
            "model": "up-model",
            "base_url": "http://up.test/v1",
            "headers": {"x-team": "blue"},
            **deployment,
        }
    )
    info = ModelInfo(id="up#0", kind="chat", owned_by="openai_compat", context_window=0)
    return OpenAICompatProvider(
        config, info=info, api_key="sk-up", transport=MockTransport(handler)
    )


async def text_of(chunks: AsyncIterator[ChatCompletionChunk]) -> str:
    return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


async def test_a_json_answer_and_the_request_that_asked_for_it() -> None:
    sent: list[UpstreamRequest] = []

    def handler(request: UpstreamRequest) -> UpstreamResponse:
        sent.append(request)
        return UpstreamResponse(200, {"x-request-id": "up-1"}, orjson.dumps(COMPLETION))

    provider = openai(handler)
    completion = await provider.complete(REQUEST)
    assert completion.choices[0].message.content == "hi"
    [request] = sent
    assert (request.method, request.url, request.stream) == (
        "POST",
        "http://up.test/v1/chat/completions",
        False,
    )
    assert request.headers["authorization"] == "Bearer sk-up"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-team"] == "blue"  # the deployment's configured headers
    assert orjson.loads(request.body)["model"] == "up-model"
    await provider.aclose()  # a transport passed in is the caller's: nothing to close


async def test_an_sse_stream_event_by_event() -> None:
    sent: list[UpstreamRequest] = []

    async def handler(request: UpstreamRequest) -> UpstreamResponse:  # may be a coroutine
        sent.append(request)
        return UpstreamResponse(200, {"content-type": "text/event-stream"}, lines=streamed(SSE))

    assert await text_of(openai(handler).stream(REQUEST)) == "hello there"
    assert sent[0].stream
    assert orjson.loads(sent[0].body)["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_429_with_retry_after_is_a_retryable_rate_limit(stream: bool) -> None:
    body = orjson.dumps({"error": {"message": "slow down", "type": "rate_limit_exceeded"}})

    def handler(request: UpstreamRequest) -> UpstreamResponse:
        headers = {"Retry-After": "7", "X-Request-Id": "up-429"}  # as a server writes them
        if request.stream:
            return UpstreamResponse(429, headers, lines=streamed(body))
        return UpstreamResponse(429, headers, body)

    provider = openai(handler)
    call = text_of(provider.stream(REQUEST)) if stream else provider.complete(REQUEST)
    with pytest.raises(RateLimitError) as caught:
        await call
    assert caught.value.retry_after == 7
    assert caught.value.retryable
    assert caught.value.upstream_request_id == "up-429"
    assert "slow down" in caught.value.message


async def test_a_stream_cut_before_its_first_event_may_be_retried() -> None:
    def handler(request: UpstreamRequest) -> UpstreamResponse:
        cut = streamed(b": keep-alive\n\n", then=ConnectionError("reset by peer"))
        return UpstreamResponse(200, {}, lines=cut)

    with pytest.raises(UpstreamConnectionError, match="ended the stream early: reset") as caught:
        await text_of(openai(handler).stream(REQUEST))
    assert caught.value.retryable


async def test_a_stream_cut_after_its_first_event_may_not() -> None:
    def handler(request: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(200, {}, lines=streamed(chunk("hello"), then=ConnectionError()))

    chunks = openai(handler).stream(REQUEST)
    assert (await anext(chunks)).choices[0].delta.content == "hello"
    with pytest.raises(UpstreamError, match="ended the stream early: ConnectionError") as caught:
        await anext(chunks)
    assert not isinstance(caught.value, UpstreamConnectionError)
    assert not caught.value.retryable  # the client already has part of an answer


@pytest.mark.parametrize(
    ("failure", "error"),
    [(TimeoutError(), UpstreamTimeoutError), (ConnectionError(), UpstreamConnectionError)],
    ids=["timeout", "connection"],
)
async def test_no_answer_at_all_is_retryable(failure: Exception, error: type[Exception]) -> None:
    def handler(request: UpstreamRequest) -> UpstreamResponse:
        raise failure

    provider = openai(handler)
    with pytest.raises(error) as caught:
        await provider.complete(REQUEST)
    assert getattr(caught.value, "retryable", False)
    with pytest.raises(error) as caught:
        await text_of(provider.stream(REQUEST))
    assert getattr(caught.value, "retryable", False)


async def test_the_first_token_timeout_bounds_the_wait_for_the_first_event() -> None:
    async def stalled() -> AsyncIterator[bytes]:
        await asyncio.sleep(5)
        yield chunk("late")

    def handler(request: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(200, {}, lines=stalled())

    provider = openai(handler, timeout=TimeoutConfig(first_token=0.05))
    with pytest.raises(UpstreamTimeoutError, match="before the first token") as caught:
        await asyncio.wait_for(text_of(provider.stream(REQUEST)), 2)
    assert caught.value.retryable


async def test_a_stream_left_early_is_released() -> None:
    released = asyncio.Event()

    async def release() -> None:
        released.set()

    def handler(request: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(200, {}, lines=streamed(SSE), release=release)

    chunks = openai(handler).stream(REQUEST)
    assert isinstance(chunks, AsyncGenerator)
    await anext(chunks)
    await chunks.aclose()  # as when the client goes away
    assert released.is_set()


async def test_the_mock_closes_a_generator_left_early() -> None:
    closed: list[bool] = []

    async def body() -> AsyncIterator[bytes]:
        try:
            for line in SSE.splitlines(keepends=True):
                yield line
        finally:
            closed.append(True)

    chunks = openai(lambda request: UpstreamResponse(200, {}, lines=body())).stream(REQUEST)
    assert isinstance(chunks, AsyncGenerator)
    await anext(chunks)
    await chunks.aclose()
    assert closed == [True]


async def test_invalid_json_is_an_upstream_error() -> None:
    provider = openai(lambda request: UpstreamResponse(200, {}, b"<html>"))
    with pytest.raises(UpstreamError, match="invalid JSON"):
        await provider.complete(REQUEST)


async def test_anthropic_through_a_mock_transport() -> None:
    sent: list[UpstreamRequest] = []
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-up",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }

    def event(data: dict[str, Any]) -> bytes:
        name = str(data["type"]).encode()
        return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {**message, "content": [], "stop_reason": None}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "hi"},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}},
        {"type": "message_stop"},
    ]
    sse = b"".join(event(e) for e in events)

    def handler(request: UpstreamRequest) -> UpstreamResponse:
        sent.append(request)
        if request.stream:
            return UpstreamResponse(200, {}, lines=streamed(sse))
        return UpstreamResponse(200, {}, orjson.dumps(message))

    config = DeploymentConfig(provider="anthropic", model="claude-up", base_url="http://a.test")
    info = ModelInfo(id="claude#0", kind="chat", owned_by="anthropic", context_window=0)
    provider = AnthropicProvider(
        config, info=info, api_key="sk-ant", transport=MockTransport(handler)
    )
    assert (await provider.complete(REQUEST)).choices[0].message.content == "hi"
    assert await text_of(provider.stream(REQUEST)) == "hi"
    assert [r.url for r in sent] == ["http://a.test/v1/messages"] * 2
    assert sent[0].headers["x-api-key"] == "sk-ant"
    assert sent[0].headers["anthropic-version"] == "2023-06-01"


async def test_gemini_through_a_mock_transport() -> None:
    sent: list[UpstreamRequest] = []

    def answer(text: str, finish: str | None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}}
        if finish:
            candidate["finishReason"] = finish
        usage = {"promptTokenCount": 2, "candidatesTokenCount": 1, "totalTokenCount": 3}
        return {"candidates": [candidate], "usageMetadata": usage}

    sse = b"".join(
        b"data: " + orjson.dumps(answer(t, f)) + b"\r\n\r\n"
        for t, f in [("hello", None), (" there", "STOP")]
    )

    def handler(request: UpstreamRequest) -> UpstreamResponse:
        sent.append(request)
        if request.stream:
            return UpstreamResponse(200, {}, lines=streamed(sse))
        return UpstreamResponse(200, {}, orjson.dumps(answer("hello there", "STOP")))

    config = DeploymentConfig(provider="gemini", model="gem-up", base_url="http://g.test")
    info = ModelInfo(id="gem#0", kind="chat", owned_by="gemini", context_window=0)
    provider = GeminiProvider(config, info=info, api_key="g-key", transport=MockTransport(handler))
    assert (await provider.complete(REQUEST)).choices[0].message.content == "hello there"
    assert await text_of(provider.stream(REQUEST)) == "hello there"
    assert [r.url for r in sent] == [
        "http://g.test/v1beta/models/gem-up:generateContent",
        "http://g.test/v1beta/models/gem-up:streamGenerateContent?alt=sse",
    ]
    assert sent[0].headers["x-goog-api-key"] == "g-key"
