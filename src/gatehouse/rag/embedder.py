"""Embeddings through the gateway, batched: the RAG engine is a gateway client."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from gatehouse.core.errors import UpstreamError
from gatehouse.core.types import EmbeddingRequest
from gatehouse.gateway import ModelClient

BATCH_SIZE = 64
CONCURRENCY = 8


class Embedder(Protocol):
    async def embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """L2-normalised vectors, one row per text."""


class GatewayEmbedder:
    """Sends batches of texts to ``model`` through the gateway's pipeline.

    Texts are sent shortest first, so each batch holds texts of similar length
    and a model pads little, and up to ``concurrency`` batches are in flight at
    once, so a local model's micro-batcher can run one while the next is
    tokenised, and several deployments of a remote model share the work.
    """

    def __init__(
        self,
        client: ModelClient,
        model: str,
        *,
        batch_size: int = BATCH_SIZE,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.client = client
        self.model = model
        self.batch_size = batch_size
        self.concurrency = concurrency

    async def embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = [order[a : a + self.batch_size] for a in range(0, len(order), self.batch_size)]
        slots = asyncio.Semaphore(self.concurrency)

        async def send(batch: list[int]) -> list[list[float]]:
            async with slots:
                request = EmbeddingRequest(model=self.model, input=[texts[i] for i in batch])
                response = await self.client.embed(request)
            if len(response.data) != len(batch):
                raise UpstreamError(
                    f"{self.model} returned {len(response.data)} embeddings for {len(batch)} inputs"
                )
            rows = []
            for item in sorted(response.data, key=lambda e: e.index):
                assert isinstance(item.embedding, list)
                rows.append(item.embedding)
            return rows

        tasks = [asyncio.ensure_future(send(batch)) for batch in batches]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # one batch failed: the others are wasted work now
                task.cancel()
            raise
        matrix = np.zeros((len(texts), 0), dtype=np.float32)
        if results:
            matrix = np.empty((len(texts), len(results[0][0])), dtype=np.float32)
            for batch, rows in zip(batches, results, strict=True):
                matrix[batch] = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)


class PrefixedEmbedder:
    """Puts ``prefix`` before every text (e5's ``query: ``) and embeds with ``inner``."""

    def __init__(self, inner: Embedder, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    async def embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        return await self.inner.embed([self.prefix + text for text in texts])
