"""Search over a collection: query preparation, expansion, retrieval, reranking.

The query is embedded through the gateway as the caller (tagged
``rag.search``, or ``rag.answer`` when answering), analysed for keywords, and
handed to :meth:`~gatehouse.rag.collection.Collection.search` (fusion and
filtering live there and in :mod:`gatehouse.rag.retrieval`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gatehouse.core.errors import ValidationFailedError
from gatehouse.core.principal import LOCAL, Principal
from gatehouse.gateway import ModelClient
from gatehouse.rag.catalog import Catalog
from gatehouse.rag.collection import Collection
from gatehouse.rag.cross_encoder import CrossEncoderReranker
from gatehouse.rag.fusion import rrf
from gatehouse.rag.model_calls import ModelCalls
from gatehouse.rag.models import Expansion, Rerank, SearchHit
from gatehouse.rag.query import hypothetical_document, multi_query
from gatehouse.rag.rerank import LLMReranker, Reranker
from gatehouse.rag.retrieval import Mode, Query
from gatehouse.rag.text import analyze
from gatehouse.rag.tokenizer import tokenizer_for


@dataclass(frozen=True, slots=True)
class Wanted:
    """What one search asks the collection for."""

    top_k: int
    mode: Mode
    where: dict[str, object] | None = None
    diversity: float | None = None


class Searcher:
    """Searches the collections of ``catalog``; query rewriting and LLM reranking
    ask ``chat_model``."""

    def __init__(self, catalog: Catalog, models: ModelCalls, *, chat_model: str) -> None:
        self.catalog = catalog
        self.models = models
        self.chat_model = chat_model
        self._cross_encoders: dict[str, CrossEncoderReranker] = {}

    async def search(
        self,
        name: str,
        query: str,
        *,
        top_k: int = 10,
        mode: Mode = "hybrid",
        where: dict[str, object] | None = None,
        diversity: float | None = None,
        expansion: Expansion = "none",
        rerank: Rerank = "none",
        caller: Principal = LOCAL,
    ) -> list[SearchHit]:
        """Best chunks of collection ``name`` for ``query``, as ``caller``
        (see :meth:`gatehouse.rag.RagEngine.search`)."""
        collection = self.catalog.open(name, caller=caller)
        client = self.models.client(caller, "rag.search")
        wanted = Wanted(top_k, mode, where, diversity)
        hits = await self.retrieve(collection, query, wanted, expansion, client)
        if rerank == "none":
            return hits
        return await self._reranker(collection, rerank, client).rerank(query, hits)

    async def retrieve(
        self,
        collection: Collection,
        query: str,
        wanted: Wanted,
        expansion: Expansion,
        client: ModelClient,
    ) -> list[SearchHit]:
        """The hits of one search in an open collection, model calls made through ``client``."""
        spec = collection.spec
        if expansion == "multi_query":
            return await self._multi_query(collection, query, wanted, client)
        vector = None
        if wanted.mode != "keyword":
            texts = [query]
            if expansion == "hyde":
                texts.append(await hypothetical_document(client, self.chat_model, query))
            vectors = await self.models.embedder(spec, client, "query").embed(texts)
            mean = vectors.mean(axis=0)
            vector = mean / max(float(np.linalg.norm(mean)), 1e-12)
        tokens = tokenizer_for(spec.embedding_model)
        prepared = Query(
            text=query,
            terms=analyze(query, spec.language),
            vector=vector,
            coverage=tokens.coverage(query),
        )
        return await asyncio.to_thread(
            collection.search,
            prepared,
            top_k=wanted.top_k,
            mode=wanted.mode,
            where=wanted.where,
            diversity=wanted.diversity,
        )

    async def _multi_query(
        self, collection: Collection, query: str, wanted: Wanted, client: ModelClient
    ) -> list[SearchHit]:
        queries = await multi_query(client, self.chat_model, query)
        lists: dict[str, list[tuple[str, float]]] = {}
        hits: dict[str, SearchHit] = {}
        for index, text in enumerate(queries):
            found = await self.retrieve(collection, text, wanted, "none", client)
            lists[str(index)] = [(h.chunk_id, h.score) for h in found]
            hits.update((h.chunk_id, h) for h in found if h.chunk_id not in hits)
        return [
            hits[chunk_id].model_copy(update={"score": score})
            for chunk_id, score in rrf(lists)[: wanted.top_k]
        ]

    def _reranker(self, collection: Collection, kind: Rerank, client: ModelClient) -> Reranker:
        if kind == "llm":
            return LLMReranker(client, self.chat_model)
        configured = collection.spec.cross_encoder
        if configured is None:
            raise ValidationFailedError(
                f"collection '{collection.spec.name}' has no cross_encoder setting (no "
                "cross-encoder ships with gatehouse): create the collection with cross_encoder "
                "set to the folder of a sentence-transformers CrossEncoder",
                param="rerank",
            )
        reranker = self._cross_encoders.get(configured)
        if reranker is None:
            reranker = self._cross_encoders[configured] = CrossEncoderReranker(Path(configured))
        return reranker
