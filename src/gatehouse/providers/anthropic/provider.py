"""Anthropic's Messages API behind the OpenAI-shaped provider contract."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson

from gatehouse.core.config import DeploymentConfig
from gatehouse.core.errors import UpstreamError
from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from gatehouse.providers.anthropic import translate
from gatehouse.providers.base import ModelInfo, Readiness
from gatehouse.providers.transport import HTTPTransport

API_VERSION = "2023-06-01"


class AnthropicProvider:
    def __init__(self, config: DeploymentConfig, *, info: ModelInfo, api_key: str | None) -> None:
        self.info = info
        self._model = config.model
        self._url = f"{(config.base_url or 'https://api.anthropic.com').rstrip('/')}/v1/messages"
        headers = {"anthropic-version": config.api_version or API_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        self._transport = HTTPTransport.for_deployment(
            config, deployment=info.id, dialect="anthropic", headers=headers
        )

    def readiness(self) -> Readiness:
        return Readiness(True, f"remote ({self._url})")

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        body = translate.request_to_wire(request.model_copy(update={"stream": False}), self._model)
        data, _ = await self._transport.post_json(self._url, body)
        return translate.response_from_wire(data, int(time.time()))

    async def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        body = translate.request_to_wire(request.model_copy(update={"stream": True}), self._model)
        translator = translate.StreamTranslator(int(time.time()))
        async for data in self._transport.stream_events(self._url, body):
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise UpstreamError("Anthropic sent a malformed stream event") from None
            for chunk in translator.feed(event):
                yield chunk
        if not translator.finished:
            raise UpstreamError(f"Upstream {self.info.id} ended the stream before it finished")
