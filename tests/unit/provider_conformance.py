"""What every chat provider adapter must do, checked over a MockTransport.

Each adapter's tests subclass :class:`ProviderConformance` and say how to
build the adapter around a transport and what its upstream sends on the wire:
a whole answer, a stream (with a usage report and a tool call where the
dialect has them) and an error body. The checks then hold every adapter to
the same contract: ``complete`` returns a ChatCompletion with usage;
``stream`` yields chunks ending with a finish_reason and a usage chunk; a 429
with Retry-After, a 500, an auth refusal, a timeout and a cut stream become
the right ``gatehouse.core.errors`` with the right ``retryable`` flag;
``aclose`` closes a transport the provider built, and only that; readiness is
a Readiness. The subclasses are in ``tests/unit/test_provider_conformance.py``;
a new adapter adds one there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from gatehouse.core.config import DeploymentConfig
from gatehouse.core.errors import (
    RateLimitError,
    UpstreamAuthError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from gatehouse.providers import MockTransport, UpstreamRequest, UpstreamResponse
from gatehouse.providers.base import ChatProvider, ModelInfo, Readiness
from gatehouse.providers.http_transport import HTTPTransport
from gatehouse.providers.mock_transport import Handler, streamed

REQUEST = ChatCompletionRequest.model_validate(
    {"model": "public", "messages": [{"role": "user", "content": "hello there"}]}
)
STREAM_REQUEST = ChatCompletionRequest.model_validate(
    {
        **REQUEST.model_dump(exclude_none=True),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
)


async def collect(chunks: AsyncIterator[ChatCompletionChunk]) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in chunks]


class ProviderConformance:
    """The contract's checks; a subclass fills in the class attributes and ``error_body``."""

    provider_name: ClassVar[str]  # the registry's name, as in a config's ``provider:``
    provider_class: ClassVar[Any]  # built as ``cls(config, info=..., api_key=..., transport=...)``
    answer: ClassVar[bytes]  # the whole JSON answer to a call without ``stream``
    stream: ClassVar[bytes]  # the SSE body of a streamed answer, usage and finish included
    auth_header: ClassVar[tuple[str, str]]  # how the key "sk-conf" goes on the wire
    has_tool_call: ClassVar[bool] = False  # whether ``answer`` calls a tool

    def error_body(self, status: int, message: str) -> bytes:
        """The dialect's structured error body for ``status``."""
        raise NotImplementedError

    def build(self, handler: Handler | None, **deployment: Any) -> ChatProvider:
        config = DeploymentConfig.model_validate(
            {
                "provider": self.provider_name,
                "model": "up-model",
                "base_url": "http://up.test",
                **deployment,
            }
        )
        info = ModelInfo(id="up#0", kind="chat", owned_by=self.provider_name, context_window=0)
        transport = None if handler is None else MockTransport(handler)
        provider: ChatProvider = self.provider_class(
            config, info=info, api_key="sk-conf", transport=transport
        )
        return provider

    def answering(self, status: int, body: bytes, **headers: str) -> Handler:
        """A handler that gives every call ``status`` and ``body``, streamed when asked."""

        def handler(request: UpstreamRequest) -> UpstreamResponse:
            if request.stream:
                return UpstreamResponse(status, dict(headers), lines=streamed(body))
            return UpstreamResponse(status, dict(headers), body)

        return handler

    # -- answers ---------------------------------------------------------------

    async def test_complete_returns_a_completion_with_usage(self) -> None:
        sent: list[UpstreamRequest] = []

        def handler(request: UpstreamRequest) -> UpstreamResponse:
            sent.append(request)
            return UpstreamResponse(200, {}, self.answer)

        completion = await self.build(handler).complete(REQUEST)
        assert isinstance(completion, ChatCompletion)
        assert completion.choices
        assert completion.choices[0].finish_reason
        assert completion.usage.prompt_tokens > 0
        assert completion.usage.completion_tokens > 0
        [request] = sent
        assert not request.stream
        name, value = self.auth_header
        assert request.headers[name] == value

    async def test_a_tool_call_comes_back_in_openai_shape(self) -> None:
        if not self.has_tool_call:
            pytest.skip("this adapter's fixture answers without a tool call")
        completion = await self.build(self.answering(200, self.answer)).complete(REQUEST)
        choice = completion.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls
        assert choice.message.tool_calls[0]["type"] == "function"

    async def test_stream_ends_with_a_finish_reason_then_usage(self) -> None:
        sent: list[UpstreamRequest] = []

        def handler(request: UpstreamRequest) -> UpstreamResponse:
            sent.append(request)
            return UpstreamResponse(200, {}, lines=streamed(self.stream))

        chunks = await collect(self.build(handler).stream(STREAM_REQUEST))
        assert all(isinstance(chunk, ChatCompletionChunk) for chunk in chunks)
        finishes = [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]
        assert len(finishes) == 1
        usage = chunks[-1].usage
        assert chunks[-1].choices == []
        assert usage is not None
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
        assert sent[0].stream

    async def test_readiness_is_a_readiness(self) -> None:
        readiness = self.build(self.answering(200, self.answer)).readiness()
        assert isinstance(readiness, Readiness)
        assert readiness.ready

    # -- errors ----------------------------------------------------------------

    @pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
    async def test_a_429_with_retry_after_is_a_retryable_rate_limit(self, stream: bool) -> None:
        handler = self.answering(
            429, self.error_body(429, "slow down"), **{"Retry-After": "7", "X-Request-Id": "r-1"}
        )
        with pytest.raises(RateLimitError) as caught:
            await self.call(self.build(handler), stream)
        assert caught.value.retryable
        assert caught.value.retry_after == 7
        assert caught.value.upstream_request_id == "r-1"
        assert "slow down" in caught.value.message

    @pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
    async def test_a_500_is_a_retryable_upstream_error(self, stream: bool) -> None:
        handler = self.answering(500, self.error_body(500, "overloaded"))
        with pytest.raises(UpstreamError) as caught:
            await self.call(self.build(handler), stream)
        assert type(caught.value) is UpstreamError
        assert caught.value.retryable
        assert "500" in caught.value.message

    @pytest.mark.parametrize("status", [401, 403])
    async def test_a_refused_key_is_an_auth_error_not_retried(self, status: int) -> None:
        handler = self.answering(status, self.error_body(status, "bad key"))
        with pytest.raises(UpstreamAuthError) as caught:
            await self.call(self.build(handler), False)
        assert not caught.value.retryable

    @pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
    async def test_a_timeout_is_retryable(self, stream: bool) -> None:
        def handler(request: UpstreamRequest) -> UpstreamResponse:
            raise TimeoutError

        with pytest.raises(UpstreamTimeoutError) as caught:
            await self.call(self.build(handler), stream)
        assert caught.value.retryable

    async def test_a_stream_cut_before_its_first_event_may_be_retried(self) -> None:
        def handler(request: UpstreamRequest) -> UpstreamResponse:
            cut = streamed(b": keep-alive\n\n", then=ConnectionError("reset by peer"))
            return UpstreamResponse(200, {}, lines=cut)

        with pytest.raises(UpstreamConnectionError) as caught:
            await self.call(self.build(handler), True)
        assert caught.value.retryable

    async def test_a_stream_cut_midway_is_an_error_not_retried(self) -> None:
        first_event = self.stream.split(b"\n\n")[0] + b"\n\n"

        def handler(request: UpstreamRequest) -> UpstreamResponse:
            cut = streamed(first_event, then=ConnectionError("reset by peer"))
            return UpstreamResponse(200, {}, lines=cut)

        with pytest.raises(UpstreamError, match="ended the stream early") as caught:
            await self.call(self.build(handler), True)
        assert not caught.value.retryable  # the client may have part of an answer

    async def test_a_stream_that_stops_short_is_an_error(self) -> None:
        events = self.stream.split(b"\n\n")
        handler = self.answering(200, b"\n\n".join(events[:2]) + b"\n\n")
        with pytest.raises(UpstreamError, match="before it finished"):
            await self.call(self.build(handler), True)

    # -- resources -------------------------------------------------------------

    async def test_aclose_closes_a_transport_it_built(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        closed: list[HTTPTransport] = []

        async def aclose(transport: HTTPTransport) -> None:
            closed.append(transport)

        monkeypatch.setattr(HTTPTransport, "aclose", aclose)
        await self.build(None).aclose()
        assert len(closed) == 1

    async def test_aclose_leaves_a_transport_passed_in_to_its_owner(self) -> None:
        class Owned(MockTransport):
            closed = False

            async def aclose(self) -> None:
                self.closed = True

        transport = Owned(self.answering(200, self.answer))
        config = DeploymentConfig(provider=self.provider_name, model="m", base_url="http://x.test")
        info = ModelInfo(id="x#0", kind="chat", owned_by=self.provider_name, context_window=0)
        provider = self.provider_class(config, info=info, api_key=None, transport=transport)
        await provider.aclose()
        assert not transport.closed

    @staticmethod
    async def call(provider: ChatProvider, stream: bool) -> object:
        if stream:
            return await collect(provider.stream(STREAM_REQUEST))
        return await provider.complete(REQUEST)
