"""Any OpenAI-style server: OpenAI, Azure OpenAI, vLLM, llama.cpp server, Ollama, ..."""

from __future__ import annotations

from collections.abc import AsyncIterator

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
from gatehouse.providers.transport import HTTPTransport


class OpenAICompatProvider:
    def __init__(self, config: DeploymentConfig, *, info: ModelInfo, api_key: str | None) -> None:
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
        self._transport = HTTPTransport.for_deployment(
            config, deployment=info.id, dialect="openai", headers=headers
        )

    def readiness(self) -> Readiness:
        return Readiness(True, f"remote ({self._base})")

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        data, _ = await self._transport.post_json(
            self._url("/chat/completions"), translate.chat_to_wire(request, self._model)
        )
        return translate.chat_from_wire(data)

    async def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        body = translate.chat_to_wire(request.model_copy(update={"stream": True}), self._model)
        finished = False
        async for data in self._transport.stream_events(self._url("/chat/completions"), body):
            chunk = translate.chunk_from_wire(data)
            finished = finished or any(c.finish_reason for c in chunk.choices)
            yield chunk
        if not finished:
            raise UpstreamError(f"Upstream {self.info.id} ended the stream before it finished")

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        data, _ = await self._transport.post_json(
            self._url("/embeddings"), translate.embeddings_to_wire(request, self._model)
        )
        return translate.embeddings_from_wire(data)

    def _url(self, path: str) -> str:
        return f"{self._base}{path}{self._query}"
