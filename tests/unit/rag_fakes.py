"""A deterministic bag-of-words embedding provider for RAG tests without the real model."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from gatehouse.core.errors import ServiceUnavailableError
from gatehouse.core.types import Embedding, EmbeddingRequest, EmbeddingResponse, Usage
from gatehouse.providers.base import ModelInfo, Readiness

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


class ScriptedChat:
    """A chat model that always replies with ``reply`` and records the prompts it saw."""

    def __init__(self, reply: str, model_id: str = "test/scripted") -> None:
        from tests.unit.fakes import EchoChat

        self._echo = EchoChat(model_id)
        self.info = self._echo.info
        self.reply = reply
        self.prompts: list[str] = []

    def readiness(self) -> Readiness:
        return Readiness(True, "fake")

    async def aclose(self) -> None:
        pass

    async def complete(self, request):  # type: ignore[no-untyped-def]
        self.prompts.append(request.messages[-1].text())
        last = request.messages[-1].model_copy(update={"content": self.reply})
        return await self._echo.complete(request.model_copy(update={"messages": [last]}))

    def stream(self, request):  # type: ignore[no-untyped-def]
        last = request.messages[-1].model_copy(update={"content": self.reply})
        return self._echo.stream(request.model_copy(update={"messages": [last]}))
