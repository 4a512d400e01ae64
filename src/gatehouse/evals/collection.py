"""Evaluating a collection: run labelled queries through the RAG engine, rank documents.

The engine ranks chunks; a document ranks where its best chunk does (its
first appearance in the hit list), which is how the qrels of BEIR-style sets
judge documents. ``top_k`` is the number of chunks asked for, so a query may
get fewer than ``top_k`` documents when several of its hits share a document.
"""

from __future__ import annotations

from collections.abc import Mapping

from gatehouse.core.principal import LOCAL, Principal
from gatehouse.rag import RagEngine
from gatehouse.rag.retrieval import Mode


async def search_ranking(
    engine: RagEngine,
    collection: str,
    queries: Mapping[str, str],
    *,
    top_k: int = 100,
    mode: Mode = "hybrid",
    caller: Principal = LOCAL,
) -> dict[str, list[str]]:
    """Query id -> document ids, best first, for every query in ``queries``, in turn."""
    ranking: dict[str, list[str]] = {}
    for query, text in queries.items():
        hits = await engine.search(collection, text, top_k=top_k, mode=mode, caller=caller)
        ranking[query] = list(dict.fromkeys(hit.document_id for hit in hits))
    return ranking
