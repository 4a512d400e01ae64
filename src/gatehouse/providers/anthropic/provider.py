"""Anthropic's Messages API behind the OpenAI-shaped provider contract."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Final

import orjson

from gatehouse.core.config import DeploymentConfig
from gatehouse.core.errors import UpstreamError
from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from gatehouse.providers.anthropic import translate
from gatehouse.providers.base import ModelInfo, Readiness
from gatehouse.providers.transport import Transport
from gatehouse.providers.upstream import Upstream
from gatehouse.providers.wire import token_count

API_VERSION = "2023-06-01"
# What /v1/messages/count_tokens accepts of a Messages body (it refuses the rest).
_COUNTED = ("model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers")


class AnthropicProvider:
    count_method: Final = "provider"

    def __init__(
        self,
        config: DeploymentConfig,
        *,
        info: ModelInfo,
        api_key: str | None,
        transport: Transport | None = None,
    ) -> None:
        """``transport`` carries the calls (default: pooled HTTP, built from ``config``)."""
        self.info = info
        self._model = config.model
        self._url = f"{(config.base_url or 'https://api.anthropic.com').rstrip('/')}/v1/messages"
        headers = {"anthropic-version": config.api_version or API_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        self._upstream = Upstream.for_deployment(
            config, deployment=info.id, dialect="anthropic", headers=headers, transport=transport
        )

    def readiness(self) -> Readiness:
        return Readiness(True, f"remote ({self._url})")

    async def aclose(self) -> None:
        await self._upstream.aclose()

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        body = translate.request_to_wire(request.model_copy(update={"stream": False}), self._model)
        data, _ = await self._upstream.post_json(self._url, body)
        return translate.response_from_wire(data, int(time.time()))

    async def count_tokens(self, request: ChatCompletionRequest) -> int:
        """The input tokens Anthropic counts for ``request`` (``/v1/messages/count_tokens``)."""
        # A count takes no max_tokens, so none may refuse the thinking budget.
        uncapped = {"stream": False, "max_tokens": None, "max_completion_tokens": None}
        body = translate.request_to_wire(request.model_copy(update=uncapped), self._model)
        counted = {key: body[key] for key in _COUNTED if key in body}
        data, _ = await self._upstream.post_json(f"{self._url}/count_tokens", counted)
        return token_count(data, "input_tokens")

    async def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        body = translate.request_to_wire(request.model_copy(update={"stream": True}), self._model)
        translator = translate.StreamTranslator(int(time.time()))
        async with aclosing(self._upstream.stream_events(self._url, body)) as events:
            async for data in events:
                try:
                    event = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise UpstreamError("Anthropic sent a malformed stream event") from None
                for chunk in translator.feed(event):
                    yield chunk
        if not translator.finished:
            raise UpstreamError(f"Upstream {self.info.id} ended the stream before it finished")
