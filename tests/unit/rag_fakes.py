"""Fakes for RAG tests without the real models: bag-of-words embeddings, a scripted chat model."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator

import numpy as np

from gatehouse.core.errors import ServiceUnavailableError
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)
from gatehouse.providers.base import ModelInfo, Readiness

from .fakes import EchoChat

DIMENSIONS = 64


def bow_vector(text: str) -> np.ndarray:  # type: ignore[type-arg]
    vector = np.zeros(DIMENSIONS, dtype=np.float32)
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIMENSIONS] += 1.0
    norm = np.linalg.norm(vector)
    return vector / norm if norm else vector


class BagOfWords:
    """Words hashed into 64 buckets: similar texts get similar vectors; can be told to fail."""

    def __init__(self, model_id: str = "test/bow") -> None:
        self.info = ModelInfo(
            id=model_id, kind="embedding", owned_by="test", context_window=512, dimensions=64
        )
        self.calls = 0
        self.fail_after: int | None = None

    def readiness(self) -> Readiness:
        return Readiness(True, "fake")

    async def aclose(self) -> None:
        pass

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise ServiceUnavailableError("embedding backend down")
        data = [
            Embedding(index=i, embedding=[float(x) for x in bow_vector(text)])
            for i, text in enumerate(request.texts())
        ]
        return EmbeddingResponse(
            data=data, model=self.info.id, usage=Usage(prompt_tokens=1, total_tokens=1)
        )


class ScriptedChat(EchoChat):
    """A chat model that always replies with ``reply`` and records the prompts it saw."""

    def __init__(self, reply: str, model_id: str = "test/scripted") -> None:
        super().__init__(model_id)
        self.reply = reply
        self.prompts: list[str] = []

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        self.prompts.append(request.messages[-1].text())
        return await super().complete(self._scripted(request))

    def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        return super().stream(self._scripted(request))

    def _scripted(self, request: ChatCompletionRequest) -> ChatCompletionRequest:
        """``request`` with its last message replaced by the reply, for EchoChat to echo."""
        last = request.messages[-1].model_copy(update={"content": self.reply})
        return request.model_copy(update={"messages": [last]})
