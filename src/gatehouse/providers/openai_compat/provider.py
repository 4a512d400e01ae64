"""Any OpenAI-style server: OpenAI, Azure OpenAI, vLLM, llama.cpp server, Ollama, ..."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import orjson

from gatehouse.core.config import DeploymentConfig
from gatehouse.core.errors import UpstreamError
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)
from gatehouse.providers.base import ModelInfo, Readiness
from gatehouse.providers.openai_compat import translate
from gatehouse.providers.transport import Transport
from gatehouse.providers.upstream import Upstream


class OpenAICompatProvider:
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
        base = (config.base_url or "").rstrip("/")
        headers: dict[str, str] = {}
        if config.provider == "azure":
            # Azure names the deployment in the path and wants api-key, not Bearer.
            base = f"{base}/openai/deployments/{config.model}"
            self._query = f"?api-version={config.api_version or '2024-10-21'}"
            if api_key:
                headers["api-key"] = api_key
        else:
            self._query = ""
            if api_key:
                headers["authorization"] = f"Bearer {api_key}"
        self._base = base
        self._upstream = Upstream.for_deployment(
            config, deployment=info.id, dialect="openai", headers=headers, transport=transport
        )

    def readiness(self) -> Readiness:
        return Readiness(True, f"remote ({self._base})")

    async def aclose(self) -> None:
        await self._upstream.aclose()

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        data, _ = await self._upstream.post_json(
            self._url("/chat/completions"), translate.chat_to_wire(request, self._model)
        )
        return translate.chat_from_wire(data)

    async def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        body = translate.chat_to_wire(request.model_copy(update={"stream": True}), self._model)
        finished = False
        async with aclosing(
            self._upstream.stream_events(self._url("/chat/completions"), body)
        ) as events:
            async for data in events:
                chunk = translate.chunk_from_wire(data)
                finished = finished or any(c.finish_reason for c in chunk.choices)
                yield chunk
        if not finished:
            raise UpstreamError(f"Upstream {self.info.id} ended the stream before it finished")

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        data, _ = await self._upstream.post_json(
            self._url("/embeddings"), translate.embeddings_to_wire(request, self._model)
        )
        return translate.embeddings_from_wire(data)

    def _url(self, path: str) -> str:
        return f"{self._base}{path}{self._query}"


class OpenAIResponsesProvider(OpenAICompatProvider):
    """An OpenAI-style upstream that also speaks the Responses API (``api: responses``):
    Responses calls go to its ``/responses`` as they are; chat calls as above."""

    async def respond(self, body: dict[str, Any]) -> dict[str, Any]:
        data, _ = await self._upstream.post_json(
            self._url("/responses"), {**body, "model": self._model, "stream": False}
        )
        if not isinstance(data, dict) or data.get("object") != "response":
            raise UpstreamError(f"Upstream {self.info.id} did not answer with a Response")
        return data

    async def stream_respond(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        wire = {**body, "model": self._model, "stream": True}
        async with aclosing(self._upstream.stream_events(self._url("/responses"), wire)) as events:
            async for data in events:
                event = orjson.loads(data)
                if not isinstance(event, dict):
                    raise UpstreamError(f"Upstream {self.info.id} sent an event that is not one")
                yield event
