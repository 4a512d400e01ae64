"""Gemini's generateContent / streamGenerateContent behind the provider contract."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Final

import orjson

from gatehouse.core.config import DeploymentConfig
from gatehouse.core.errors import UpstreamError
from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from gatehouse.providers.base import ModelInfo, Readiness
from gatehouse.providers.gemini import translate
from gatehouse.providers.transport import Transport
from gatehouse.providers.upstream import Upstream
from gatehouse.providers.wire import token_count


class GeminiProvider:
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
        base = (config.base_url or "https://generativelanguage.googleapis.com").rstrip("/")
        version = config.api_version or "v1beta"
        self._base = f"{base}/{version}/models/{config.model}"
        headers: dict[str, str] = {}
        if api_key:
            headers["x-goog-api-key"] = api_key
        self._upstream = Upstream.for_deployment(
            config, deployment=info.id, dialect="gemini", headers=headers, transport=transport
        )

    def readiness(self) -> Readiness:
        return Readiness(True, f"remote ({self._base})")

    async def aclose(self) -> None:
        await self._upstream.aclose()

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        data, _ = await self._upstream.post_json(
            f"{self._base}:generateContent", translate.request_to_wire(request, self._model)
        )
        return translate.response_from_wire(data, self._model, int(time.time()))

    async def count_tokens(self, request: ChatCompletionRequest) -> int:
        """The tokens Gemini counts for ``request`` (``models/...:countTokens``), system
        instruction and tools included (so the whole generateContent request goes)."""
        whole = {
            "model": f"models/{self._model}",
            **translate.request_to_wire(request, self._model),
        }
        data, _ = await self._upstream.post_json(
            f"{self._base}:countTokens", {"generateContentRequest": whole}
        )
        return token_count(data, "totalTokens")

    async def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        translator = translate.StreamTranslator(self._model, int(time.time()))
        url = f"{self._base}:streamGenerateContent?alt=sse"
        async with aclosing(
            self._upstream.stream_events(url, translate.request_to_wire(request, self._model))
        ) as events:
            async for data in events:
                try:
                    payload = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise UpstreamError("Gemini sent a malformed stream event") from None
                for chunk in translator.feed(payload):
                    yield chunk
        if not translator.finished:
            raise UpstreamError(f"Upstream {self.info.id} ended the stream before it finished")
        for chunk in translator.close():
            yield chunk
