"""A cross-encoder reranker: a local sentence-transformers ``CrossEncoder`` grades each hit.

A collection names one by path in its ``cross_encoder`` setting (see
:mod:`gatehouse.providers.local.cross_encoder` for what such a folder holds
and why it is checked). The model scores ``(query, passage)`` pairs in a
worker thread so the event loop keeps serving; hits are sorted by the score
(ties keep retrieval order), which becomes their ``score``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gatehouse.providers.local.cross_encoder import (
    BATCH_SIZE,
    MAX_PASSAGE_CHARS,
    SETTING,
    CrossEncoderModel,
    problem_with,
)
from gatehouse.rag.models import SearchHit

__all__ = ["BATCH_SIZE", "SETTING", "CrossEncoderReranker", "problem_with"]


class CrossEncoderReranker(CrossEncoderModel):
    """Reorders hits by a local cross-encoder's score of ``(query, hit text)``."""

    async def rerank(self, query: str, hits: Sequence[SearchHit]) -> list[SearchHit]:
        if not hits:
            return []
        pairs = [(query, hit.text[:MAX_PASSAGE_CHARS]) for hit in hits]
        scores = await asyncio.to_thread(self.score, pairs)
        order = sorted(range(len(hits)), key=lambda i: -scores[i])
        return [hits[i].model_copy(update={"score": scores[i]}) for i in order]
