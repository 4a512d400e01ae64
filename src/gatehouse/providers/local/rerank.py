"""``local/rerank``: reranking in process, with no upstream.

With ``local.rerank.cross_encoder`` set, a local cross-encoder scores each
``(query, document)`` pair (:mod:`gatehouse.providers.local.cross_encoder`);
the score is the model's (a sigmoid for the usual one-output rerankers, so
0 to 1). Without one, documents are ranked by the cosine of their
``local/minilm`` embedding with the query's: no model to configure, weaker
than a cross-encoder (it compares meanings, not whether a passage answers).
"""

from __future__ import annotations

import asyncio

import numpy as np

from gatehouse.core.config import LocalRerankConfig
from gatehouse.core.errors import (
    ConfigError,
    ServiceUnavailableError,
    UpstreamError,
    ValidationFailedError,
)
from gatehouse.core.ids import new_id
from gatehouse.core.rerank import RerankRequest, RerankResponse, RerankResult, RerankUsage
from gatehouse.core.types import EmbeddingRequest
from gatehouse.providers.base import EmbeddingProvider, ModelInfo, Readiness
from gatehouse.providers.local.cross_encoder import MAX_PASSAGE_CHARS, CrossEncoderModel

MODEL_ID = "local/rerank"


class LocalReranker:
    """The ``local/rerank`` model: a cross-encoder when configured, else the cosine
    of ``embedder``'s embeddings (``None`` when local/minilm is off)."""

    def __init__(self, config: LocalRerankConfig, embedder: EmbeddingProvider | None) -> None:
        self.info = ModelInfo(id=MODEL_ID, kind="rerank", owned_by="gatehouse", context_window=0)
        self._cross = None
        if config.cross_encoder is not None:
            try:
                self._cross = CrossEncoderModel(config.cross_encoder)
            except ValidationFailedError as exc:
                raise ConfigError(f"local.rerank.{exc.message}") from None
        self._embedder = embedder

    def readiness(self) -> Readiness:
        if self._cross is not None:
            return Readiness(True, f"cross-encoder {self._cross.path} (loads on first request)")
        if self._embedder is None:
            return Readiness(False, "no cross_encoder configured and local/minilm is off")
        state = self._embedder.readiness()
        return Readiness(state.ready, f"cosine of {self._embedder.info.id}: {state.detail}")

    async def aclose(self) -> None:
        """Nothing of its own to release: the embedder is closed with its own group."""

    async def rerank(self, request: RerankRequest) -> RerankResponse:
        texts = request.texts()
        if self._cross is not None:
            pairs = [(request.query, text[:MAX_PASSAGE_CHARS]) for text in texts]
            scores, tokens = await asyncio.to_thread(self._score, self._cross, pairs)
        else:
            scores, tokens = await self._cosine(request.query, texts)
        answer = RerankResponse(
            id=new_id("rerank"),
            model=MODEL_ID,
            results=[RerankResult(index=i, relevance_score=s) for i, s in enumerate(scores)],
            usage=RerankUsage(prompt_tokens=tokens, total_tokens=tokens),
        )
        return answer.ranked(request)

    @staticmethod
    def _score(model: CrossEncoderModel, pairs: list[tuple[str, str]]) -> tuple[list[float], int]:
        return model.score(pairs), model.tokens(pairs)

    async def _cosine(self, query: str, texts: list[str]) -> tuple[list[float], int]:
        if self._embedder is None:
            raise ServiceUnavailableError(
                f"{MODEL_ID} has neither a cross-encoder (local.rerank.cross_encoder) nor "
                "local/minilm (local.embeddings.enabled) to rank with"
            )
        embedded = await self._embedder.embed(
            EmbeddingRequest(model=self._embedder.info.id, input=[query, *texts])
        )
        vectors = [item.embedding for item in sorted(embedded.data, key=lambda e: e.index)]
        if len(vectors) != len(texts) + 1 or not all(isinstance(v, list) for v in vectors):
            raise UpstreamError(f"{self._embedder.info.id} did not embed every document")
        matrix = np.asarray(vectors, dtype=np.float64)
        norms = np.linalg.norm(matrix, axis=1)
        norms[norms == 0] = 1.0
        unit = matrix / norms[:, None]
        scores = unit[1:] @ unit[0]
        return [float(s) for s in scores], embedded.usage.prompt_tokens
