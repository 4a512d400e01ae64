"""Embeddings through the gateway, batched: the RAG engine is a gateway client."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from gatehouse.core.types import EmbeddingRequest
from gatehouse.gateway import Gateway

BATCH_SIZE = 64


class Embedder(Protocol):
    async def embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """L2-normalised vectors, one row per text."""


class GatewayEmbedder:
    """Sends batches of texts to ``model`` through the gateway's pipeline."""

    def __init__(self, gateway: Gateway, model: str, *, batch_size: int = BATCH_SIZE) -> None:
        self.gateway = gateway
        self.model = model
        self.batch_size = batch_size

    async def embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            response = await self.gateway.embed(EmbeddingRequest(model=self.model, input=batch))
            for item in sorted(response.data, key=lambda e: e.index):
                assert isinstance(item.embedding, list)
                rows.append(item.embedding)
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)
